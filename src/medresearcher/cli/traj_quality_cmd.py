"""``medresearcher traj filter | rewrite | stats``: quality passes over a run's trajectories.

Each reads ``<workspace>/trajectories/<run>.jsonl`` (or a file beside it) and writes new files
beside it — ``<run>.filtered.jsonl`` and ``<run>.rejected.jsonl``, ``<run>.rewritten.jsonl``
and ``<run>.rewrite_rejected.jsonl``, ``<run>.stats.png`` — append-only and resumable: a record
whose id is already in an output is skipped. The ``traj`` app (``cli/traj_cmd.py``) registers
these plain functions as its commands; their ``--executor ray`` paths are in
:mod:`medresearcher.cli.traj_sharded`.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from medresearcher.cli.executor_opts import ADDRESS, EXECUTOR, executor_kind
from medresearcher.cli.state import CliState, console, state_of
from medresearcher.cli.traj_sharded import filter_sharded, rewrite_sharded
from medresearcher.errors import ConfigError, InputError
from medresearcher.schema import QARecord, Trajectory
from medresearcher.workspace import JsonlWriter, Run, progress_bar, read_jsonl

__all__ = ["filter", "rewrite", "stats"]

_NEEDS_RECORD = ("judge_correct", "no_scaffold_leak")


def _run_file(state: CliState, run: str, suffix: str = "") -> Path:
    """``<workspace>/trajectories/<run><suffix>.jsonl``."""
    path = state.ws.trajectories_path(run)
    return path.with_name(f"{run}{suffix}.jsonl")


def _require(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise InputError(f"{path} does not exist: {hint}")
    return path


def _names(option: str | None) -> list[str]:
    return [name.strip() for name in (option or "").split(",") if name.strip()]


def _ids(*paths: Path) -> set[str]:
    ids: set[str] = set()
    for path in paths:
        if path.is_file():
            ids.update(str(row["id"]) for row in read_jsonl(path))
    return ids


# -- filter -----------------------------------------------------------------------------------


def filter(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="The run: <workspace>/trajectories/<RUN>.jsonl."),
    qa_file: Path | None = typer.Option(
        None, "--qa", dir_okay=False, help="QA records (default: <workspace>/qa.jsonl)."
    ),
    rules: str | None = typer.Option(
        None, "--rules", help="Comma-separated rules to run (default: every rule)."
    ),
    skip: str | None = typer.Option(None, "--skip", help="Comma-separated rules to turn off."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, help="token_length."),
    min_tool_calls: int | None = typer.Option(None, "--min-tool-calls", min=0),
    max_identical_calls: int | None = typer.Option(None, "--max-identical-calls", min=1),
    allow_forced_answer: bool = typer.Option(
        False, "--allow-forced-answer", help="Accept answers forced by a spent budget."
    ),
    accept_undecided: bool = typer.Option(
        False, "--accept-undecided", help="Pass answers neither rules nor a judge could decide."
    ),
    judge: str | None = typer.Option(
        None, "--judge", help="\\[llm.*] endpoint that grades what the rules cannot decide."
    ),
    workers: int = typer.Option(8, "--workers", min=1, help="Concurrent judge calls."),
    executor: str | None = EXECUTOR,
    ray_address: str | None = ADDRESS,
) -> None:
    """Apply the quality rules → <RUN>.filtered.jsonl and <RUN>.rejected.jsonl, with reasons."""
    from medresearcher.executor.stage_traj import filter_trajectories
    from medresearcher.kg import graph_exists, graph_location
    from medresearcher.synthesis.filters import RULES, FilterConfig

    state = state_of(ctx)
    settings = state.settings
    source = _require(
        _run_file(state, run), "generate trajectories first (`medresearcher traj generate`)"
    )
    chosen = _names(rules) or list(RULES)
    unknown = [name for name in [*chosen, *_names(skip)] if name not in RULES]
    if unknown:
        raise InputError(f"unknown rule(s) {', '.join(unknown)}; the rules: {', '.join(RULES)}")
    limits = {
        "max_tokens": max_tokens,
        "min_tool_calls": min_tool_calls,
        "max_identical_calls": max_identical_calls,
    }
    config = FilterConfig(
        rules=[name for name in chosen if name not in _names(skip)],
        allow_forced_answer=allow_forced_answer,
        accept_undecided=accept_undecided,
        **{key: value for key, value in limits.items() if value is not None},
    )
    if judge:
        settings.endpoint(judge)  # an unknown name fails here, listing the configured ones
    records = _qa_records(state, qa_file, config.rules)
    passed_path, rejected_path = (
        _run_file(state, run, ".filtered"),
        _run_file(state, run, ".rejected"),
    )
    if not graph_exists(settings):
        console.print(
            f"[yellow]no knowledge graph at {graph_location(settings)}: the leak rule looks for "
            "entity ids and the answer's names only[/]"
        )
    kind = executor_kind(settings, executor)
    if kind == "ray":
        new = filter_sharded(
            state,
            source,
            records,
            config,
            passed_path,
            rejected_path,
            judge,
            workers,
            kind,
            ray_address,
        )
        _print_filter_summary(passed_path, rejected_path, new)
        return
    done = _ids(passed_path, rejected_path)
    todo = [t for t in read_jsonl(source, Trajectory) if t.id not in done]
    with (
        Run(state.ws, "traj-filter", settings) as manifest,
        JsonlWriter(passed_path) as passed_out,
        JsonlWriter(rejected_path) as rejected_out,
        progress_bar(console) as progress,
    ):
        manifest.manifest["filter_config"] = config.model_dump()
        task = progress.add_task("filtering", total=len(todo))
        finished = [0]

        def write(trajectory: Trajectory) -> None:
            ok = bool(trajectory.filters and trajectory.filters["passed"])
            (passed_out if ok else rejected_out).write(trajectory)
            manifest.count("passed" if ok else "rejected")
            progress.advance(task)
            finished[0] += 1
            manifest.progress(finished[0], len(todo), label="filtering")

        usage = asyncio.run(
            filter_trajectories(
                todo,
                settings=settings,
                records=records,
                config=config,
                judge_endpoint=judge,
                workers=workers,
                write=write,
            )
        )
        if usage:
            manifest.record_usage(usage)
    _print_filter_summary(passed_path, rejected_path, len(todo))


def _qa_records(state: CliState, qa_file: Path | None, rules: Sequence[str]) -> dict[str, QARecord]:
    path = qa_file or state.ws.qa_path
    if not path.is_file():
        needed = [rule for rule in _NEEDS_RECORD if rule in rules]
        if needed:
            raise InputError(
                f"{path} does not exist, and the rules {', '.join(needed)} need each "
                "trajectory's QA record: pass --qa FILE, or --skip " + ",".join(needed)
            )
        return {}
    return {record.id: record for record in read_jsonl(path, QARecord)}


def _print_filter_summary(passed_path: Path, rejected_path: Path, new: int) -> None:
    passed = sum(1 for _ in read_jsonl(passed_path)) if passed_path.is_file() else 0
    reasons: Counter[str] = Counter()
    rejected = 0
    if rejected_path.is_file():
        for row in read_jsonl(rejected_path):
            rejected += 1
            reasons.update({r["rule"] for r in (row.get("filters") or {}).get("reasons", [])})
    total = passed + rejected
    console.print(
        f"{new} trajectories filtered now; in all {passed} of {total} passed → {passed_path}, "
        f"{rejected} rejected → {rejected_path}"
    )
    table = Table("rule", "rejected", "share", title="rejections by rule", title_justify="left")
    for rule, count in reasons.most_common():
        table.add_row(rule, str(count), f"{count / total:.0%}" if total else "–")
    console.print(table)


# -- rewrite ----------------------------------------------------------------------------------


def rewrite(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="The run: <workspace>/trajectories/<RUN>.jsonl."),
    endpoint: str = typer.Option(
        "rewriter", "--endpoint", "-e", help="\\[llm.*] endpoint of the rewriting model."
    ),
    input_file: Path | None = typer.Option(
        None, "--input", dir_okay=False, help="Default: <RUN>.filtered.jsonl."
    ),
    workers: int = typer.Option(4, "--workers", min=1, help="Trajectories rewritten at once."),
    executor: str | None = EXECUTOR,
    ray_address: str | None = ADDRESS,
) -> None:
    """Rewrite each thought into self-contained reasoning → <RUN>.rewritten.jsonl."""
    state = state_of(ctx)
    settings = state.settings
    if not settings.llm:
        where = settings.source or "./medresearcher.toml"
        raise ConfigError(
            f"rewriting needs a model and none is configured: add an [llm.{endpoint}] table "
            f"(base_url, model) to {where} — `medresearcher config init` writes an example — "
            "or pass --endpoint NAME of a configured one. Offline, nothing rewrites thoughts."
        )
    settings.endpoint(endpoint)  # an unknown name fails here, listing the configured ones
    source = input_file or _run_file(state, run, ".filtered")
    _require(source, f"run `medresearcher traj filter {run}` first, or pass --input FILE")
    kept_path = _run_file(state, run, ".rewritten")
    rejected_path = _run_file(state, run, ".rewrite_rejected")
    kind = executor_kind(settings, executor)
    if kind == "ray":
        new, reasons = rewrite_sharded(
            state, source, kept_path, rejected_path, endpoint, workers, kind, ray_address
        )
        _print_rewrite_summary(new, reasons, kept_path, rejected_path)
        return
    done = _ids(kept_path, rejected_path)
    todo = [t for t in read_jsonl(source, Trajectory) if t.id not in done]
    reasons: Counter[str] = Counter()
    with (
        Run(state.ws, "traj-rewrite", settings) as manifest,
        JsonlWriter(kept_path) as kept_out,
        JsonlWriter(rejected_path) as rejected_out,
        progress_bar(console) as progress,
    ):
        task = progress.add_task("rewriting", total=len(todo))
        finished = [0]

        def write(outcome: Any) -> None:
            if isinstance(outcome, Trajectory):
                kept_out.write(outcome)
                manifest.count("rewritten")
            else:
                rejected_out.write(outcome)
                manifest.count("rejected")
                reasons[outcome.reason] += 1
            progress.advance(task)
            finished[0] += 1
            manifest.progress(finished[0], len(todo), label="rewriting")

        usage = asyncio.run(_rewrite_all(state, todo, endpoint, workers, write))
        manifest.record_usage(usage)
    _print_rewrite_summary(len(todo), reasons, kept_path, rejected_path)


def _print_rewrite_summary(
    new: int, reasons: Counter[str], kept_path: Path, rejected_path: Path
) -> None:
    rejected = sum(reasons.values())
    console.print(
        f"{new - rejected} of {new} trajectories rewritten → {kept_path}; "
        f"{rejected} rejected → {rejected_path}"
    )
    if reasons:
        table = Table("reason", "rejected", title="rewrites rejected", title_justify="left")
        for reason, count in reasons.most_common():
            table.add_row(reason, str(count))
        console.print(table)


async def _rewrite_all(
    state: CliState,
    todo: list[Trajectory],
    endpoint: str,
    workers: int,
    write: Callable[[Any], None],
) -> dict[str, Any]:
    from medresearcher.llm import LLMGateway
    from medresearcher.synthesis.rewrite import rewrite_all

    async with LLMGateway(state.settings) as gateway:
        await rewrite_all(todo, gateway=gateway, endpoint=endpoint, workers=workers, write=write)
        return gateway.usage_report()


# -- stats ------------------------------------------------------------------------------------


def stats(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="The run: <workspace>/trajectories/<RUN>.jsonl."),
    png: Path | None = typer.Option(
        None, "--png", dir_okay=False, help="The chart (default: <RUN>.stats.png beside it)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
) -> None:
    """Behaviour statistics of the run (paper §4.1): a table and a PNG chart."""
    from medresearcher.synthesis.stats import summarise, write_chart

    state = state_of(ctx)
    source = _require(
        _run_file(state, run), "generate trajectories first (`medresearcher traj generate`)"
    )
    trajectories = list(read_jsonl(source, Trajectory))
    verdict_files = [_run_file(state, run, ".filtered"), _run_file(state, run, ".rejected")]
    filtered = [t for path in verdict_files if path.is_file() for t in read_jsonl(path, Trajectory)]
    summary = summarise(trajectories, filtered=filtered if filtered else None)
    kept = summarise(list(read_jsonl(verdict_files[0], Trajectory))) if filtered else None
    chart = write_chart(
        summary,
        png or _run_file(state, run, ".stats").with_suffix(".png"),
        title=f"{run}: {summary.trajectories} trajectories",
    )
    if as_json:
        payload = {"run": run, "all": summary.model_dump(mode="json"), "chart": str(chart)}
        if kept is not None:
            payload["passed"] = kept.model_dump(mode="json")
        console.print_json(json.dumps(payload))
        return
    _print_stats(summary, kept)
    console.print(f"chart → {chart}")


def _print_stats(summary: Any, kept: Any | None) -> None:
    from medresearcher.synthesis.stats import PAPER_REFERENCE

    columns = ["", "all"] + (["passed"] if kept is not None else []) + ["paper §4.1"]
    table = Table(*columns, title="trajectory behaviour", title_justify="left")
    sets = [summary] + ([kept] if kept is not None else [])

    def row(label: str, value: Callable[[Any], str], paper: str = "") -> None:
        table.add_row(label, *(value(s) for s in sets), paper)

    row("trajectories", lambda s: str(s.trajectories))
    row(
        "tool calls / trajectory",
        lambda s: f"{s.tool_calls_mean:.2f} (median {s.tool_calls_median:g})",
        f"{PAPER_REFERENCE['tool_calls_mean']:g}",
    )
    row(
        "start with medical_retriever",
        lambda s: f"{s.start_medical_retriever:.0%}",
        f"{PAPER_REFERENCE['start_medical_retriever']:.0%}",
    )
    row(
        "switch general ↔ medical",
        lambda s: f"{s.switching:.0%}",
        f"{PAPER_REFERENCE['switching']:.0%}",
    )
    row(
        "recover from an error",
        lambda s: f"{s.error_recovery:.0%}",
        f"{PAPER_REFERENCE['error_recovery']:.0%}",
    )
    row("with a tool error", lambda s: f"{s.with_errors:.0%}")
    row("termination", lambda s: ", ".join(f"{k} {v}" for k, v in s.terminations.items()))
    row("guidance", lambda s: ", ".join(f"{k} {v}" for k, v in s.guidance.items()))
    console.print(table)
    if summary.filtered:
        rejections = Table(
            "rule",
            "rejected",
            title=f"rejections ({summary.rejected} of {summary.filtered} filtered)",
            title_justify="left",
        )
        for rule, count in summary.rejections_by_rule.items():
            rejections.add_row(rule, str(count))
        console.print(rejections)
