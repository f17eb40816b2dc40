"""``medresearcher traj mix``: a training set with target shares (paper §4.1, §3.2).

Reads the trajectories that passed ``traj filter`` (``<workspace>/trajectories/<run>.filtered
.jsonl``, or ``--input``), chooses ``--size`` of them without replacement to match the target
shares by specialty, paradigm, hop count, guidance (α) and tool-failure augmentation
(:func:`medresearcher.synthesis.mixing.mix_trajectories`), and writes them to
``<run>.mix.jsonl`` with the report in ``<run>.mix.report.json``. Both files are replaced
atomically; the choice is a pure function of the input, targets, size and seed, so a re-run
with the same ones leaves the files as they are. The ``traj`` app registers :func:`mix`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from medresearcher.cli.state import console, state_of
from medresearcher.errors import InputError
from medresearcher.schema import Trajectory
from medresearcher.workspace import Run, read_jsonl

if TYPE_CHECKING:
    from medresearcher.synthesis.mixing import MixResult

__all__ = ["mix"]


def mix(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="The run: <workspace>/trajectories/<RUN>.jsonl."),
    size: int = typer.Option(..., "--size", "-n", min=1, help="Trajectories in the mix."),
    target: list[str] = typer.Option(
        [],
        "--target",
        "-t",
        help="DIMENSION=value:share,… with DIMENSION specialty, paradigm, hops, guidance "
        "(mtg/none) or augmented (yes/no); repeat per dimension. Overrides --targets.",
    ),
    targets_file: Path | None = typer.Option(
        None, "--targets", dir_okay=False, help="Targets as a TOML, JSON or YAML table."
    ),
    input_file: Path | None = typer.Option(
        None, "--input", dir_okay=False, help="Default: <RUN>.filtered.jsonl."
    ),
    seed: int = typer.Option(0, "--seed", help="Breaks ties and draws within equal profiles."),
    include_unfiltered: bool = typer.Option(
        False, "--include-unfiltered", help="Also draw trajectories that were never filtered."
    ),
) -> None:
    """Choose --size filtered trajectories to hit target shares → <RUN>.mix.jsonl."""
    from medresearcher.synthesis.mixing import MixTargets, mix_trajectories

    state = state_of(ctx)
    goal = MixTargets.from_file(targets_file) if targets_file else MixTargets()
    goal = goal.merged(MixTargets.from_strings(target))
    raw = state.ws.trajectories_path(run)
    source = input_file or raw.with_name(f"{run}.filtered.jsonl")
    if not source.is_file():
        hint = "check the path" if input_file else "run `medresearcher traj filter` first"
        raise InputError(f"{source} does not exist: {hint}")
    out_path = raw.with_name(f"{run}.mix.jsonl")
    report_path = raw.with_name(f"{run}.mix.report.json")
    records = list(read_jsonl(source, Trajectory))
    trajectories = {t.id: t for t in reversed(records)}  # the first of a repeated id
    with Run(state.ws, "traj-mix", state.settings) as manifest:
        result = mix_trajectories(
            records,
            goal,
            size=size,
            seed=seed,
            require_passed=not include_unfiltered,
        )
        params = {
            "input": str(source),
            "size": size,
            "seed": seed,
            "targets": result.targets,
            "include_unfiltered": include_unfiltered,
            "output": str(out_path),
        }
        manifest.manifest["params"] = params
        report = {"params": params, **result.model_dump(mode="json")}
        unchanged = _same_ids(out_path, result.selected_ids) and _same_report(report_path, report)
        if not unchanged:
            lines = (trajectories[tid].model_dump_json() + "\n" for tid in result.selected_ids)
            _write_atomic(out_path, "".join(lines))
            report_text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
            _write_atomic(report_path, report_text)
        manifest.count("selected", len(result.selected_ids))
        manifest.count("eligible", result.eligible)
        manifest.count("shortfall", result.shortfall)
    _print_report(result)
    status = "unchanged" if unchanged else "written"
    console.print(
        f"{len(result.selected_ids)} of {result.eligible} eligible trajectories → "
        f"{escape(str(out_path))} ({status})",
        highlight=False,
    )
    unmet = sum(1 for row in result.shares if row.shortfall) + bool(result.size_shortfall)
    if unmet:
        console.print(
            f"[yellow]shortfall:[/] the supply could not meet {unmet} target(s); "
            "see the shortfall column",
            highlight=False,
        )


def _same_ids(path: Path, ids: list[str]) -> bool:
    if not path.is_file():
        return False
    try:
        return [str(row["id"]) for row in read_jsonl(path)] == ids
    except (InputError, KeyError):
        return False


def _same_report(path: Path, report: dict[str, object]) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")) == report
    except (OSError, ValueError):
        return False


def _write_atomic(path: Path, text: str) -> None:
    """Write beside ``path`` and rename over it: a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _print_report(result: MixResult) -> None:
    table = Table(
        "dimension",
        "value",
        "target",
        "achieved",
        "count",
        "supply",
        "shortfall",
        title=f"mix of {len(result.selected_ids)} (asked {result.size}, seed {result.seed})",
        title_justify="left",
    )
    for row in result.shares:
        if row.target_share is None and row.dimension not in result.targets and row.count == 0:
            continue  # a free dimension's unused values say nothing
        target = "free" if row.target_share is None else f"{row.target_share:.1%}"
        short = f"[yellow]{row.shortfall}[/]" if row.shortfall else "0"
        table.add_row(
            row.dimension,
            escape(row.value),
            target,
            f"{row.share:.1%}",
            str(row.count),
            str(row.supply),
            short,
        )
    if result.size_shortfall:
        selected = len(result.selected_ids)
        table.add_row(
            "size",
            "all",
            str(result.size),
            str(selected),
            str(selected),
            str(result.eligible),
            f"[yellow]{result.size_shortfall}[/]",
        )
    console.print(table)
