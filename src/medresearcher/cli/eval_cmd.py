"""``medresearcher eval``: run the agent on a benchmark, grade it, report (paper §5).

This module holds ``eval run``; ``ask`` (:mod:`.eval_ask_cmd`), ``report`` and ``compare``
(:mod:`.eval_report_cmd`) are registered on the same app at the bottom.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from medresearcher.cli import eval_ask_cmd, eval_report_cmd
from medresearcher.cli.agent_cmd import _tool_names, _toolbox
from medresearcher.cli.eval_endpoints import judge_label, judge_of, make_judge, require_model
from medresearcher.cli.executor_opts import ADDRESS, EXECUTOR, executor_kind
from medresearcher.cli.state import CliState, console, state_of
from medresearcher.errors import MedResearcherError
from medresearcher.schema import EvalResult, QARecord, Trajectory
from medresearcher.workspace import JsonlWriter, Run, Workspace, progress_bar, read_jsonl

if TYPE_CHECKING:  # the runner imports the agent and the openai SDK: only when a command runs
    from medresearcher.evaluation.runner import EvalCounts

app = typer.Typer(help="Evaluate the agent on benchmarks and report.", no_args_is_help=True)

POLICIES = ("llm", "path_guided")
_RUN_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@app.command("run")
def run(
    ctx: typer.Context,
    benchmark: str = typer.Option(
        ..., "--benchmark", "-b", help="qa, medbrowsecomp, gaia, xbench, pubmedqa or jsonl."
    ),
    file: Path = typer.Option(..., "--file", "-f", help="The benchmark file (gaia: its folder)."),
    endpoint: str = typer.Option("agent", "--endpoint", "-e", help="\\[llm.*] of the llm policy."),
    policy: str = typer.Option(
        "llm", "--policy", help="llm (a model endpoint) or path_guided (offline; benchmark qa)."
    ),
    rollouts: int = typer.Option(3, "--rollouts", min=1, help="Runs of every item."),
    workers: int = typer.Option(16, "--workers", min=1, help="Runs at once."),
    timeout_s: float = typer.Option(600.0, "--timeout", min=0.001, help="Seconds per run."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N items."),
    judge: str | None = typer.Option(
        None,
        "--judge",
        help="\\[llm.*] endpoint judging what the rules cannot decide; 'none' for rules only. "
        "Default: \\[llm.judge] when configured.",
    ),
    run_name: str | None = typer.Option(
        None, "--run", help="Run name (default: <benchmark>-<file>-<policy>); re-run resumes."
    ),
    question_field: str | None = typer.Option(None, "--question-field", help="jsonl/csv field."),
    answer_field: str | None = typer.Option(None, "--answer-field", help="jsonl/csv field."),
    id_field: str | None = typer.Option(None, "--id-field", help="jsonl/csv field."),
    tools: str | None = typer.Option(
        None, "--tools", help="Comma-separated tool names, or 'none'; default: every tool."
    ),
    max_turns: int | None = typer.Option(None, "--max-turns", min=1, help="Default: \\[agent]."),
    language: str | None = typer.Option(None, "--language", help="en or zh. Default: \\[agent]."),
    executor: str | None = EXECUTOR,
    ray_address: str | None = ADDRESS,
) -> None:
    """Run every item of a benchmark ROLLOUTS times, grade each answer, write results.jsonl."""
    from medresearcher.agent import AgentLimits
    from medresearcher.evaluation.loaders import load_benchmark
    from medresearcher.evaluation.runner import (
        check_run_config,
        load_results,
        path_guided_turns,
    )

    if policy not in POLICIES:
        raise typer.BadParameter(f"--policy is one of {', '.join(POLICIES)}")
    if policy == "path_guided" and benchmark.strip().lower() != "qa":
        raise typer.BadParameter("--policy path_guided follows QA records: use --benchmark qa")
    if language is not None and language not in ("en", "zh"):
        raise typer.BadParameter("--language is en or zh")
    state = state_of(ctx)
    settings = state.settings
    if policy == "llm":
        require_model(settings, endpoint)
    judge_endpoint = judge_of(settings, judge)
    items = load_benchmark(
        benchmark,
        file,
        question_field=question_field,
        answer_field=answer_field,
        id_field=id_field,
    )
    chosen = items[:limit] if limit else items
    records: dict[str, QARecord] = {}
    if policy == "path_guided":
        records = {r.id: r for r in read_jsonl(file, QARecord)}  # type: ignore[union-attr]
        max_turns = max_turns or path_guided_turns(
            (records[i.item_id] for i in chosen if i.item_id in records), settings.agent.max_turns
        )
    limits = AgentLimits.from_settings(settings.agent, max_turns=max_turns, timeout_s=timeout_s)
    label = policy if policy == "path_guided" else endpoint
    name = run_name or default_run_name(benchmark, file, label)
    ws = state.ws
    results_path = ws.eval_dir(name) / "results.jsonl"
    trajectories_path = ws.trajectories_path(name)
    check_run_config(
        ws.eval_dir(name) / "run.json",
        {
            "benchmark": benchmark.strip().lower(),
            "items": items_fingerprint(items),
            "policy": "path_guided" if policy == "path_guided" else f"llm:{endpoint}",
            "model": settings.endpoint(endpoint).model if policy == "llm" else None,
            "judge": judge_label(settings, judge_endpoint),
        },
    )
    console.print(
        f"[bold]eval run {escape(name)}[/]: {len(chosen)} items × {rollouts} rollouts of "
        f"{escape(benchmark)} ({escape(str(file))}), policy {escape(label)}, grading "
        f"{escape(judge_label(settings, judge_endpoint))}",
        highlight=False,
    )
    if policy == "path_guided" and rollouts > 1:
        console.print("[dim]The path-guided policy is deterministic: its rollouts agree.[/]")
    entry = manifest_entry(ws, name, benchmark, file, label, results_path, trajectories_path)
    kind = executor_kind(settings, executor)
    if kind == "ray":
        from medresearcher.cli.eval_sharded import evaluate_sharded

        counts, usage = evaluate_sharded(
            state,
            chosen,
            kind=kind,
            address=ray_address,
            benchmark=benchmark.strip().lower(),
            file=file,
            results_path=results_path,
            trajectories_path=trajectories_path,
            manifest_entry=entry,
            policy=policy,
            endpoint=endpoint,
            judge_endpoint=judge_endpoint,
            tool_names=_tool_names(tools),
            limits=limits,
            rollouts=rollouts,
            workers=workers,
            language=language or settings.agent.language,
        )
    else:
        counts, usage = _evaluate_local(
            state,
            name,
            chosen,
            benchmark,
            entry,
            results_path,
            trajectories_path,
            policy=policy,
            endpoint=endpoint,
            records=records,
            judge_endpoint=judge_endpoint,
            tools=tools,
            limits=limits,
            rollouts=rollouts,
            workers=workers,
            language=language or settings.agent.language,
        )
    chosen_ids = {item.item_id for item in chosen}
    finished = [
        r for r in load_results(results_path) if r.item_id in chosen_ids and r.rollout < rollouts
    ]
    _print_summary(name, finished, counts, usage)
    if counts.written or not (ws.eval_dir(name) / "report.html").is_file():
        _write_report(state, name)
    if counts.failed:
        raise MedResearcherError(
            f"{counts.failed} of {counts.pairs} runs were not graded; run the same command "
            f"again to retry them (first: {counts.failures[0]})"
        )


def _evaluate_local(  # type: ignore[no-untyped-def]
    state,
    name,
    chosen,
    benchmark,
    entry,
    results_path,
    trajectories_path,
    *,
    policy,
    endpoint,
    records,
    judge_endpoint,
    tools,
    limits,
    rollouts,
    workers,
    language,
):
    """``--executor local``: the runner in this process, as before."""
    from medresearcher.evaluation.runner import results_writer

    ws = state.ws
    settings = state.settings
    with (
        Run(ws, "eval-run", settings) as manifest,
        results_writer(results_path) as results,
        JsonlWriter(trajectories_path) as trajectories,
        progress_bar(console) as progress,
    ):
        manifest.manifest["eval"] = entry
        task = progress.add_task(f"eval {name}", total=None)
        where = {"done": 0, "total": None}

        def plan(total: int, done: int) -> None:
            progress.update(task, total=total, completed=done)
            where.update(done=done, total=total)
            manifest.progress(done, total, label="runs")

        def advance(result: Any) -> None:
            progress.advance(task)
            where["done"] += 1
            manifest.progress(where["done"], where["total"], label="runs")

        counts, usage = asyncio.run(
            _evaluate(
                state,
                chosen,
                benchmark=benchmark.strip().lower(),
                results=results,
                trajectories=trajectories,
                policy=policy,
                endpoint=endpoint,
                records=records,
                judge_endpoint=judge_endpoint,
                tool_names=_tool_names(tools),
                limits=limits,
                rollouts=rollouts,
                workers=workers,
                language=language,
                on_plan=plan,
                on_result=advance,
            )
        )
        for key, value in counts.to_dict().items():
            manifest.count(key, value)
        manifest.record_usage(usage)
    return counts, usage


async def _evaluate(
    state: CliState,
    items: list[Any],
    *,
    policy: str,
    endpoint: str,
    records: dict[str, QARecord],
    judge_endpoint: str | None,
    tool_names: list[str] | None,
    **options: Any,
) -> tuple[EvalCounts, dict[str, Any]]:
    from medresearcher.evaluation.runner import (
        llm_policies,
        make_grader,
        path_guided_policies,
        run_eval,
    )
    from medresearcher.llm import LLMGateway

    settings = state.settings
    async with LLMGateway(settings) as gateway:
        toolbox = await _toolbox(state, gateway, tool_names)
        try:
            factory = (
                llm_policies(gateway, endpoint)
                if policy == "llm"
                else path_guided_policies(records, settings)
            )
            counts = await run_eval(
                items,
                policy_factory=factory,
                toolbox=toolbox,
                grade_fn=make_grader(make_judge(gateway, judge_endpoint)),
                timeout_s=None,
                **options,
            )
        finally:
            await toolbox.aclose()
        return counts, gateway.usage_report()


def manifest_entry(
    ws: Workspace,
    name: str,
    benchmark: str,
    file: Path,
    label: str,
    results_path: Path,
    trajectories_path: Path,
) -> dict[str, Any]:
    """The ``eval`` part of an ``eval run`` manifest, the same on every executor: the run,
    its benchmark and policy, where its files are, and which training sets were checked
    against the benchmark for contamination (so a score can be read with that in mind)."""
    from medresearcher.synthesis.decontaminate import checked_training_sets

    return {
        "run": name,
        "benchmark": benchmark.strip().lower(),
        "file": str(file),
        "policy": label,
        "results": str(results_path),
        "trajectories": str(trajectories_path),
        "decontamination": checked_training_sets(ws.root, file),
    }


def items_fingerprint(items: list[Any]) -> str:
    """What a resumed run must still evaluate: the items' ids, questions and golds."""
    digest = hashlib.sha256()
    for item in items:
        digest.update("\x1f".join((item.item_id, item.question, item.gold)).encode() + b"\x1e")
    return f"{len(items)} items, sha256 {digest.hexdigest()[:16]}"


def default_run_name(benchmark: str, file: Path, label: str) -> str:
    """``<benchmark>-<file stem>-<policy>``: the same command resumes the same run."""
    stem = file.name.split(".")[0] or file.name
    name = _RUN_NAME_CHARS.sub("-", f"{benchmark}-{stem}-{label}").strip("-.")
    return name or "eval"


def _print_summary(
    name: str, results: list[EvalResult], counts: EvalCounts, usage: dict[str, Any]
) -> None:
    verdicts = Counter(r.verdict for r in results)
    graders = Counter(r.grader.split(":", 1)[0] for r in results)
    table = Table(title=f"eval {name}", show_header=False)
    table.add_row("results", f"{len(results)} ({counts.written} now, {counts.skipped} before)")
    for verdict in ("correct", "incorrect", "unjudgeable"):
        table.add_row(verdict, str(verdicts.get(verdict, 0)))
    accuracy = verdicts.get("correct", 0) / len(results) if results else 0.0
    table.add_row("[bold]accuracy[/] (avg pass@1)", f"[bold]{accuracy:.1%}[/]")
    table.add_row("graded by", ", ".join(f"{g} {n}" for g, n in sorted(graders.items())) or "-")
    if counts.timeouts or counts.errors:
        table.add_row(
            "timeouts / failed runs",
            f"{counts.timeouts} / {counts.errors} this call (graded; see the trajectories)",
        )
    cost = usage.get("total", {}).get("cost_usd")
    if cost:
        table.add_row("cost", f"${cost:.4f}")
    console.print(table)
    console.print(
        f"metrics with confidence intervals: [bold]medresearcher eval report {escape(name)}[/]",
        highlight=False,
    )


def _write_report(state: CliState, name: str) -> None:
    """Write metrics.json, report.md and report.html (with plots) of the whole run."""
    from medresearcher.evaluation.metrics import compute_metrics
    from medresearcher.evaluation.report import write_report

    folder = state.ws.eval_dir(name)
    results = list(read_jsonl(folder / "results.jsonl", EvalResult))
    path = state.ws.trajectories_path(name)
    linked = list(read_jsonl(path, Trajectory)) if path.is_file() else []
    if not results:
        return
    paths = write_report(folder, compute_metrics(results, linked), results, linked)
    console.print(f"report written: {escape(str(paths['html']))}", highlight=False)


app.command("ask")(eval_ask_cmd.ask)
app.command("report")(eval_report_cmd.report)
app.command("compare")(eval_report_cmd.compare)
