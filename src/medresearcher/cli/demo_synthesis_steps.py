"""The demo's trajectory and evaluation stages, offline with the path-guided policy.

Each step calls the library functions behind the command it names (``traj generate``,
``traj filter``, ``traj export``, ``traj stats``, ``eval run``, ``eval report``), on the
demo's own questions: two thirds make training trajectories, the rest are held back and
evaluated, so no question is both trained on and scored.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from rich.markup import escape
from rich.table import Table

from medresearcher.cli.demo_agent_steps import spread
from medresearcher.cli.state import console
from medresearcher.config import Settings
from medresearcher.kg import open_graph_store
from medresearcher.schema import QARecord, Trajectory
from medresearcher.workspace import JsonlWriter, Run, Workspace, read_jsonl

__all__ = ["evaluation", "trajectories"]

DEMO_RUN = "demo"
DEMO_EVAL_RUN = "demo-eval"


def trajectories(ws: Workspace, settings: Settings, run: Run, records: list[QARecord]) -> None:
    """Step 7: generate (α = 0.7 guided), filter, export every format, behaviour statistics."""
    from medresearcher.synthesis.export import FORMATS, export_trajectories
    from medresearcher.synthesis.filters import FilterConfig, apply_filters
    from medresearcher.synthesis.generate import generate_trajectories
    from medresearcher.synthesis.stats import summarise, write_chart

    console.print(
        "\n[bold cyan]7. Trajectory synthesis[/] (medresearcher traj generate --policy "
        "path_guided --alpha 0.7; traj filter; traj export; traj stats)"
    )
    path = ws.trajectories_path(DEMO_RUN)
    with JsonlWriter(path) as out:
        counts = asyncio.run(
            generate_trajectories(records, policy="path_guided", settings=settings, out=out)
        )
    generated = list(read_jsonl(path, Trajectory))
    by_id = {r.id: r for r in records}
    reasons: Counter[str] = Counter()
    passed: list[Trajectory] = []
    with (
        open_graph_store(settings) as store,
        JsonlWriter(path.with_name(f"{DEMO_RUN}.filtered.jsonl")) as kept,
        JsonlWriter(path.with_name(f"{DEMO_RUN}.rejected.jsonl")) as dropped,
    ):
        for trajectory in generated:
            record = by_id.get(trajectory.qa_id or "")
            ids = [*record.chain[0::2], *record.placeholders.values()] if record else []
            names = store.names_of(ids)
            checked = apply_filters(trajectory, record, FilterConfig(), names_by_id=names)
            verdict = checked.filters or {}
            if verdict.get("passed"):
                passed.append(checked)
                kept.write(checked)
            else:
                dropped.write(checked)
                reasons.update(r["rule"] for r in verdict.get("reasons", []))
    guided = sum(t.guidance == "mtg" for t in generated)
    console.print(
        f"{len(generated)} trajectories in {path} ({guided} with the MTG scaffold, "
        f"{len(generated) - guided} exploring; {counts.written} new); {len(passed)} pass "
        f"every filter; rejected by rule: {spread(dict(reasons.most_common())) or 'none'}"
    )
    if reasons.get("no_scaffold_leak"):
        console.print(
            "[dim]The offline walk cannot identify most chains' starts by search (template "
            "questions describe them by graph facts such as counts), so it takes them from "
            "the guidance and says so; the leak rule rightly keeps those out of training "
            "data. A model policy (traj generate --policy llm) is what the filters are for.[/]"
        )
    out_dir = ws.export_dir / DEMO_RUN
    paths = export_trajectories(passed, records, out_dir, FORMATS)
    console.print(f"exported {len(passed)} trajectories as {', '.join(sorted(paths))} → {out_dir}")
    summary = summarise(generated, filtered=[*passed])
    chart = write_chart(summary, ws.trajectories_dir / f"{DEMO_RUN}.stats.png")
    table = Table("behaviour (paper §4.1)", "ours", "paper", title_justify="left")
    table.add_row("tool calls per trajectory", f"{summary.tool_calls_mean:.1f}", "4.2")
    table.add_row("start with the medical retriever", _pct(summary.start_medical_retriever), "78 %")
    table.add_row("switch general ↔ medical tools", _pct(summary.switching), "42 %")
    table.add_row("recover from a tool error", _pct(summary.error_recovery), "34 %")
    console.print(table)
    console.print(f"[dim]chart: {chart}[/]")
    run.count("trajectories", len(generated))
    run.count("trajectories_passed", len(passed))


def evaluation(ws: Workspace, settings: Settings, run: Run, records: list[QARecord]) -> None:
    """Step 8: evaluate the path-guided policy on held-back questions, with its report."""
    from medresearcher.evaluation.policies import path_guided_turns

    console.print(
        "\n[bold cyan]8. Evaluation[/] (medresearcher eval run --benchmark qa --policy "
        f"path_guided --rollouts 1; eval report {DEMO_EVAL_RUN})"
    )
    max_turns = path_guided_turns(records, settings.agent.max_turns)
    results, metrics, paths = path_guided_evaluation(
        ws, settings, records, DEMO_EVAL_RUN, max_turns=max_turns, workers=4
    )
    accuracy = metrics["accuracy"]
    value, interval = accuracy["avg_pass@1"], accuracy.get("ci") or [None, None]
    shown = f"{value:.0%}" if isinstance(value, float) else "n/a"
    if isinstance(interval[0], float):
        shown += f" (95 % CI {interval[0]:.0%}–{interval[1]:.0%})"
    console.print(
        f"{len(results)} held-back questions graded by rules: avg pass@1 {shown}; "
        f"report {escape(str(paths['html']))}"
    )
    run.count("eval_results", len(results))


def path_guided_evaluation(
    ws: Workspace,
    settings: Settings,
    records: list[QARecord],
    eval_run: str,
    *,
    max_turns: int,
    workers: int,
) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """Run the offline path-guided policy on ``records`` (one rollout, graded by rules) into
    ``eval/<eval_run>/`` with its report; returns the results, metrics and report paths."""
    from medresearcher.agent import AgentLimits
    from medresearcher.evaluation.loaders import load_benchmark
    from medresearcher.evaluation.metrics import compute_metrics
    from medresearcher.evaluation.policies import make_grader, path_guided_policies
    from medresearcher.evaluation.report import write_report
    from medresearcher.evaluation.runner import load_results, results_writer, run_eval
    from medresearcher.tools import build_toolbox

    wanted = {r.id for r in records}
    items = [i for i in load_benchmark("qa", ws.qa_path) if i.item_id in wanted]
    folder = ws.eval_dir(eval_run)
    results_path = folder / "results.jsonl"
    trajectories_path = ws.trajectories_path(eval_run)
    limits = AgentLimits.from_settings(settings.agent, max_turns=max_turns)

    async def go() -> None:
        toolbox = build_toolbox(settings, ws)
        try:
            with (
                results_writer(results_path) as results,
                JsonlWriter(trajectories_path) as linked,
            ):
                await run_eval(
                    items,
                    benchmark="qa",
                    results=results,
                    trajectories=linked,
                    policy_factory=path_guided_policies({r.id: r for r in records}, settings),
                    toolbox=toolbox,
                    limits=limits,
                    grade_fn=make_grader(),
                    rollouts=1,
                    workers=workers,
                )
        finally:
            await toolbox.aclose()

    asyncio.run(go())
    results = load_results(results_path)
    linked = list(read_jsonl(trajectories_path, Trajectory))
    metrics = compute_metrics(results, linked, k=(1,))
    return results, metrics, write_report(folder, metrics, results, linked)


def _pct(share: float) -> str:
    return f"{share:.0%}"
