"""``medresearcher traj``: agent trajectories for training (paper §3.2).

``traj generate`` rolls the agent out over QA records — a share α with the Masked Trajectory
Guidance scaffold, the rest exploring — into ``<workspace>/trajectories/<run>.jsonl``.
The quality stages (``traj filter``, ``traj rewrite``, ``traj stats``) and ``traj export``
live in their own modules and are registered at the end of this one.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from medresearcher.cli.executor_opts import ADDRESS, EXECUTOR, executor_kind
from medresearcher.cli.state import CliState, console, require_model, state_of
from medresearcher.errors import InputError
from medresearcher.schema import QARecord
from medresearcher.synthesis.mix import DEFAULT_ALPHA
from medresearcher.workspace import JsonlWriter, Run, progress_bar, read_jsonl

if TYPE_CHECKING:  # generation imports the agent and the openai SDK: only when a command runs
    from medresearcher.synthesis.generate import GenerationCounts, ItemOutcome

__all__ = ["app", "trajectories_file"]

app = typer.Typer(
    help="Generate, filter, rewrite, export and inspect agent trajectories.",
    no_args_is_help=True,
)

# medresearcher.synthesis.augment.DEFAULT_RATE, spelled out so that --help need not import
# the augmentation module (it loads the agent and the openai SDK).
_DEFAULT_AUGMENT_RATE = 0.05


def trajectories_file(state: CliState, run: str | None, file: Path | None) -> Path:
    """The trajectories of ``--file``, else of run ``--run``, which must exist."""
    path = file or state.ws.trajectories_path(run or "path_guided")
    if not path.is_file():
        raise InputError(f"{path} does not exist: run `medresearcher traj generate` first")
    return path


@app.command("generate")
def generate(
    ctx: typer.Context,
    qa: Path | None = typer.Option(
        None, "--qa", dir_okay=False, help="QA records (default: <workspace>/qa.jsonl)."
    ),
    policy: str = typer.Option(
        "llm", "--policy", help="llm (a model endpoint) or path_guided (offline, follows chains)."
    ),
    rollouts: int = typer.Option(1, "--rollouts", min=1, help="Rollouts per question."),
    workers: int = typer.Option(4, "--workers", min=1, help="Rollouts run at once."),
    alpha: float = typer.Option(
        DEFAULT_ALPHA, "--alpha", min=0.0, max=1.0, help="Share of rollouts with MTG guidance."
    ),
    endpoint: str = typer.Option("agent", "--endpoint", "-e", help="\\[llm.*] of the llm policy."),
    run_name: str | None = typer.Option(
        None, "--run", help="Output <workspace>/trajectories/<run>.jsonl (default: the policy)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the guided split and augmentation."),
    augment_rate: float = typer.Option(
        _DEFAULT_AUGMENT_RATE,
        "--augment-rate",
        min=0.0,
        max=1.0,
        help="Share of trajectories given one simulated, recovered tool failure.",
    ),
    augment_method: str = typer.Option(
        "auto", "--augment-method", help="auto, replace or insert (see synthesis/augment.py)."
    ),
    include_failed: bool = typer.Option(
        False, "--include-failed-checks", help="Also use QA records that failed a check."
    ),
    language: str | None = typer.Option(
        None, "--language", help="en or zh prompts (default: each question's language)."
    ),
    executor: str | None = EXECUTOR,
    ray_address: str | None = ADDRESS,
) -> None:
    """Roll the agent out over QA records; a share α gets the masked-chain scaffold."""
    from medresearcher.synthesis.augment import METHODS
    from medresearcher.synthesis.generate import POLICIES

    if policy not in POLICIES:
        raise typer.BadParameter(f"--policy is one of {', '.join(POLICIES)}")
    if augment_method not in METHODS:
        raise typer.BadParameter(f"--augment-method is one of {', '.join(METHODS)}")
    if language not in (None, "en", "zh"):
        raise typer.BadParameter("--language is en or zh")
    state = state_of(ctx)
    settings = state.settings
    if policy == "llm":
        require_model(
            state.settings,
            endpoint,
            offline="`--policy path_guided` follows each QA record's chain with the real "
            "tools instead",
        )
    ws = state.ws.ensure()
    qa_path = qa or ws.qa_path
    if not qa_path.is_file():
        raise InputError(f"no QA records at {qa_path}: run `medresearcher qa generate` first")
    records = list(read_jsonl(qa_path, QARecord))
    name = run_name or ("path_guided" if policy == "path_guided" else f"llm-{endpoint}")
    out_path = ws.trajectories_path(name)
    options: dict[str, Any] = {
        "rollouts": rollouts,
        "workers": workers,
        "alpha": alpha,
        "seed": seed,
        "augment_rate": augment_rate,
        "augment_method": augment_method,
        "include_failed_checks": include_failed,
        "language": language,
    }
    kind = executor_kind(settings, executor)
    if kind == "ray":
        counts = _generate_sharded(
            state, records, out_path, policy, endpoint, kind, ray_address, options
        )
        _print_summary(counts, out_path)
        return
    with (
        Run(ws, f"traj-generate-{policy}", settings) as run,
        JsonlWriter(out_path) as out,
        progress_bar(console) as progress,
    ):
        run.manifest["params"] = {
            "qa": str(qa_path),
            "policy": policy,
            "endpoint": endpoint if policy == "llm" else None,
            "rollouts": rollouts,
            "alpha": alpha,
            "seed": seed,
            "augment_rate": augment_rate,
            "augment_method": augment_method,
            "output": str(out_path),
        }
        usable = {r.id for r in records if r.passed or include_failed}
        total = len(usable) * rollouts
        task = progress.add_task(f"trajectories ({policy})", total=total)
        finished = [0]

        def advance(outcome: ItemOutcome) -> None:
            progress.advance(task)
            finished[0] += 1
            run.progress(finished[0], total, label="trajectories")
            if outcome.status == "failed" and outcome.detail:
                progress.console.print(f"[yellow]no trajectory[/] {escape(outcome.detail)}")

        counts, usage = asyncio.run(
            _generate(
                state,
                records,
                policy=policy,
                endpoint=endpoint,
                rollouts=rollouts,
                workers=workers,
                alpha=alpha,
                seed=seed,
                out=out,
                on_item=advance,
                augment_rate=augment_rate,
                augment_method=augment_method,
                include_failed_checks=include_failed,
                language=language,
            )
        )
        for key, value in counts.as_dict().items():
            if isinstance(value, int):
                run.count(key, value)
        run.manifest["terminations"] = dict(counts.terminations)
        run.record_usage(usage)
    _print_summary(counts, out_path)


async def _generate(
    state: CliState, records: list[QARecord], *, policy: str, **options: Any
) -> tuple[GenerationCounts, dict[str, Any]]:
    """The batch, with a gateway for the llm policy (and its usage for the manifest)."""
    from medresearcher.llm import LLMGateway
    from medresearcher.synthesis.generate import generate_trajectories

    async with LLMGateway(state.settings) as gateway:
        counts = await generate_trajectories(
            records,
            policy=policy,  # type: ignore[arg-type]
            settings=state.settings,
            gateway=gateway if policy == "llm" else None,
            **options,
        )
        return counts, gateway.usage_report()


def _generate_sharded(
    state: CliState,
    records: list[QARecord],
    out_path: Path,
    policy: str,
    endpoint: str,
    kind: str,
    address: str | None,
    options: dict[str, Any],
) -> GenerationCounts:
    """``--executor ray``: the pending (record, rollout) items as shards, merged by id."""
    from medresearcher.cli.executor_opts import run_sharded
    from medresearcher.executor.stage_traj import generate_counts, generate_job

    job, items = generate_job(
        records,
        settings=state.settings,
        out_path=out_path,
        policy=policy,
        endpoint=endpoint,
        **options,
    )
    with run_sharded(
        state,
        f"traj-generate-{policy}",
        job,
        items,
        kind=kind,
        address=address,
        task=f"trajectories ({policy}, {kind})",
        label="trajectories",
        manifest={"params": {"policy": policy, "output": str(out_path), **options}},
    ) as (run, report):
        counts = generate_counts(records, report.counts, pending=len(items), **options)
        for key, value in counts.as_dict().items():
            if isinstance(value, int):
                run.count(key, value)
    return counts


def _print_summary(counts: GenerationCounts, path: Path) -> None:
    table = Table("", "items", title="trajectories", title_justify="left")
    data = counts.as_dict()
    for key in ("items", "written", "guided_written", "exploration_written", "skipped"):
        table.add_row(key.replace("_", " "), str(data[key]))
    table.add_row("failed to start", str(data["failed"]))
    table.add_row("with a simulated tool failure", str(data["augmented"]))
    for termination, count in data["terminations"].items():
        table.add_row(f"termination: {termination}", str(count))
    console.print(table)
    left_out = (
        f"; {counts.records_failing_checks} QA records that failed a check left out"
        if counts.records_failing_checks
        else ""
    )
    console.print(
        f"{counts.written} new trajectories in {escape(str(path))} "
        f"({counts.guided_planned} of {counts.items} items guided{left_out})",
        highlight=False,
    )


# Registered last: the quality and export commands may import helpers from this module.
# A module not written yet is left out; an import error inside one is raised as usual.
def _register(module_name: str, commands: tuple[str, ...]) -> None:
    qualified = f"medresearcher.cli.{module_name}"
    try:
        module = importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name != qualified:
            raise
        return
    for command in commands:
        app.command(command)(getattr(module, command))


_register("traj_quality_cmd", ("filter", "rewrite", "stats"))
_register("traj_export_cmd", ("export",))
_register("traj_mix_cmd", ("mix",))
