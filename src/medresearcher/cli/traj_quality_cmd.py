"""``medresearcher traj filter | rewrite | stats``: quality passes over a run's trajectories.

Each reads ``<workspace>/trajectories/<run>.jsonl`` (or a file beside it) and writes new files
beside it — ``<run>.filtered.jsonl`` and ``<run>.rejected.jsonl``, ``<run>.rewritten.jsonl``
and ``<run>.rewrite_rejected.jsonl``, ``<run>.stats.png`` — append-only and resumable: a record
whose id is already in an output is skipped. The ``traj`` app (``cli/traj_cmd.py``) registers
these plain functions as its commands.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from medresearcher.cli.state import CliState, console, state_of
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
) -> None:
    """Apply the quality rules → <RUN>.filtered.jsonl and <RUN>.rejected.jsonl, with reasons."""
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
    done = _ids(passed_path, rejected_path)
    todo = [t for t in read_jsonl(source, Trajectory) if t.id not in done]
    names = _NameLookup(state)
    with (
        Run(state.ws, "traj-filter", settings) as manifest,
        JsonlWriter(passed_path) as passed_out,
        JsonlWriter(rejected_path) as rejected_out,
        progress_bar(console) as progress,
    ):
        manifest.manifest["filter_config"] = config.model_dump()
        task = progress.add_task("filtering", total=len(todo))

        def write(trajectory: Trajectory) -> None:
            ok = bool(trajectory.filters and trajectory.filters["passed"])
            (passed_out if ok else rejected_out).write(trajectory)
            manifest.count("passed" if ok else "rejected")
            progress.advance(task)

        usage = asyncio.run(_filter_all(state, todo, records, config, names, judge, workers, write))
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


class _NameLookup:
    """Names and aliases of a chain's entities from the workspace graph, for the leak rule."""

    def __init__(self, state: CliState) -> None:
        self.path = state.ws.kg_path
        self._store: Any = None
        self.warned = False

    def __call__(self, record: QARecord | None) -> Mapping[str, Sequence[str]]:
        if record is None:
            return {}
        if not self.path.is_file():
            if not self.warned:
                console.print(
                    f"[yellow]no knowledge graph at {self.path}: the leak rule looks for "
                    "entity ids and the answer's names only[/]"
                )
                self.warned = True
            return {}
        if self._store is None:
            from medresearcher.kg import GraphStore

            self._store = GraphStore(self.path)
        return self._store.names_of([*record.chain[0::2], *record.placeholders.values()])

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


async def _filter_all(
    state: CliState,
    todo: list[Trajectory],
    records: dict[str, QARecord],
    config: Any,
    names: _NameLookup,
    judge_endpoint: str | None,
    workers: int,
    write: Callable[[Trajectory], None],
) -> dict[str, Any]:
    """Judge (when asked) and filter each trajectory, writing each as soon as it is done."""
    from medresearcher.synthesis.filters import apply_filters, judge_trajectory

    def finish(trajectory: Trajectory) -> None:
        record = records.get(trajectory.qa_id or "")
        write(apply_filters(trajectory, record, config, names_by_id=names(record)))

    try:
        if not judge_endpoint or "judge_correct" not in config.rules:
            for trajectory in todo:
                finish(trajectory)
            return {}
        from medresearcher.grading import Judge
        from medresearcher.llm import LLMGateway

        async with LLMGateway(state.settings) as gateway:
            judge = Judge(gateway, judge_endpoint)
            limit = asyncio.Semaphore(workers)

            async def one(trajectory: Trajectory) -> None:
                record = records.get(trajectory.qa_id or "")
                if record is not None and trajectory.final_answer:
                    async with limit:
                        trajectory = await judge_trajectory(trajectory, record, judge=judge)
                finish(trajectory)

            await asyncio.gather(*(one(t) for t in todo))
            return gateway.usage_report()
    finally:
        names.close()


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

        def write(outcome: Any) -> None:
            if isinstance(outcome, Trajectory):
                kept_out.write(outcome)
                manifest.count("rewritten")
            else:
                rejected_out.write(outcome)
                manifest.count("rejected")
                reasons[outcome.reason] += 1
            progress.advance(task)

        usage = asyncio.run(_rewrite_all(state, todo, endpoint, workers, write))
        manifest.record_usage(usage)
    rejected = sum(reasons.values())
    console.print(
        f"{len(todo) - rejected} of {len(todo)} trajectories rewritten → {kept_path}; "
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
    from medresearcher.synthesis.rewrite import rewrite_trajectory

    async with LLMGateway(state.settings) as gateway:
        limit = asyncio.Semaphore(workers)

        async def one(trajectory: Trajectory) -> None:
            async with limit:
                outcome = await rewrite_trajectory(trajectory, gateway=gateway, endpoint=endpoint)
            write(outcome)

        await asyncio.gather(*(one(t) for t in todo))
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
