"""The demo's later stages: template QA, the path-guided agent and a differential diagnosis.

Kept apart from :mod:`medresearcher.cli.demo_cmd` so that each stage of the tour stays short;
every step calls the same library functions as the commands it names.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rich.markup import escape
from rich.table import Table

from medresearcher.cli.state import console
from medresearcher.config import Settings
from medresearcher.kg import open_graph_store
from medresearcher.schema import QARecord
from medresearcher.workspace import JsonlWriter, Run, Workspace, read_jsonl

DEMO_QUESTIONS = 20
LEAK_CHECKS = ("answer_not_in_question", "no_intermediate_names")
DEMO_AGENT_RUNS = 3
DEMO_SEED = 7
DEMO_FINDINGS = "splenomegaly, hepatomegaly, bone pain, thrombocytopenia; no fever"

__all__ = ["demo_qa_and_agent", "spread"]


def demo_qa_and_agent(ws: Workspace, settings: Settings, run: Run) -> None:
    """Steps 5–9 of the tour: questions, the agent, trajectories, evaluation and ``ddx``."""
    from medresearcher.cli.demo_synthesis_steps import evaluation, trajectories

    records = _questions(ws, settings, run)
    _agent(ws, settings, run, records)
    # The first questions make training trajectories; the rest are held back for evaluation.
    split = len(records) * 2 // 3
    trajectories(ws, settings, run, records[:split])
    evaluation(ws, settings, run, records[split:])
    _ddx(run)


def _questions(ws: Workspace, settings: Settings, run: Run) -> list[QARecord]:
    from medresearcher.cli.qa_cmd import qa_summary
    from medresearcher.qa.batch import QABatchOptions, generate_qa
    from medresearcher.sampling import GraphView

    console.print(
        "\n[bold cyan]5. QA synthesis[/] (medresearcher qa generate --writer template; "
        "qa stats; qa show ID)"
    )
    options = QABatchOptions(
        n=DEMO_QUESTIONS,
        seed=DEMO_SEED,
        min_hops=settings.qa.min_hops,
        near_duplicate_threshold=settings.qa.near_duplicate_threshold,
    )
    with open_graph_store(settings) as store:
        view = GraphView.from_store(store)
        anchors = sorted(
            e.id for e in store.iter_entities() if e.id.startswith("ORPHA:") and e.attrs.get("rare")
        )
        with (
            JsonlWriter(ws.qa_path) as out,
            JsonlWriter(ws.qa_path.with_name("qa.rejected.jsonl"), key="sample_id") as rejected,
            JsonlWriter(ws.samples_path) as samples,
        ):
            counts = asyncio.run(
                generate_qa(
                    store, view, anchors, options, out=out, rejected=rejected, samples=samples
                )
            )
    records = list(read_jsonl(ws.qa_path, QARecord))
    summary = qa_summary(records)
    run.count("qa_written", counts.written)
    leak_free = sum(
        all(r.checks[name].passed for name in LEAK_CHECKS if name in r.checks) for r in records
    )
    console.print(
        f"{summary['questions']} template questions in {ws.qa_path}: "
        f"{summary['passed_all_checks']} pass every check, {leak_free} leak no name; "
        f"paradigms {spread(summary['paradigm'])}; {len(summary['specialty'])} specialties "
        f"({spread(dict(list(summary['specialty'].items())[:4]))}, …)"
    )
    example = next((r for r in records if r.passed and r.paradigm == "identify"), records[0])
    console.print(f"e.g. [bold]{escape(example.question)}[/]")
    console.print(f"     answer: [green]{escape(example.answer)}[/]   (qa show {example.id})")
    for number, step in enumerate(example.cheat_sheet[:3], start=1):
        console.print(f"     {number}. {escape(step)}")
    console.print(
        "[dim]The LLM writer (qa generate --writer llm) and difficulty calibration "
        "(qa calibrate --panel …) need model endpoints: \\[llm.writer] and a reference "
        "panel.[/]"
    )
    return [r for r in records if r.passed]


def _agent(ws: Workspace, settings: Settings, run: Run, records: list[QARecord]) -> None:
    from medresearcher.agent import run_agent
    from medresearcher.agent.path_guided import policy_for
    from medresearcher.grading.rules import grade_by_rules
    from medresearcher.tools import build_toolbox

    console.print(
        "\n[bold cyan]6. The agent, path-guided[/] (medresearcher agent ask --policy "
        "path_guided --qa-id ID)"
    )
    chosen = records[:DEMO_AGENT_RUNS]
    limits = settings.agent.model_copy(update={"max_turns": 24})
    path = ws.trajectories_path("demo-path-guided")

    async def go() -> list[Any]:
        toolbox = build_toolbox(settings, ws)
        try:
            return [
                await run_agent(
                    r.question,
                    policy=policy_for(r, settings),
                    toolbox=toolbox,
                    limits=limits,
                    qa_id=r.id,
                )
                for r in chosen
            ]
        finally:
            await toolbox.aclose()

    trajectories = asyncio.run(go())
    table = Table("question", "tool calls", "answer", "verdict", title_justify="left")
    correct = 0
    with JsonlWriter(path) as out:
        for record, trajectory in zip(chosen, trajectories, strict=True):
            out.write(trajectory)
            verdict = grade_by_rules(
                trajectory.final_answer or "", record.answer, record.answer_aliases
            )
            correct += verdict.correct
            by_tool = trajectory.stats.get("tool_calls_by_tool", {})
            tools = ", ".join(f"{name} {n}" for name, n in by_tool.items())
            shown = trajectory.final_answer or f"({trajectory.termination_detail})"
            table.add_row(
                record.id,
                escape(tools),
                escape(shown[:60]),
                "[green]correct[/]" if verdict.correct else "[red]wrong[/]",
            )
    console.print(table)
    run.count("agent_runs", len(trajectories))
    run.count("agent_correct", correct)
    console.print(
        f"{correct}/{len(trajectories)} answered correctly from real tool observations; "
        f"trajectories in {path}. [dim]The llm policy (agent ask \\[question]) needs "
        "\\[llm.agent].[/]"
    )


def _ddx(run: Run) -> None:
    from medresearcher.cli.ddx_cmd import ddx

    console.print(
        f'\n[bold cyan]9. Differential diagnosis[/] (medresearcher ddx "{DEMO_FINDINGS}")'
    )
    ddx(
        DEMO_FINDINGS,
        absent=[],
        age=None,
        sex=None,
        onset=None,
        top=5,
        bundle="demo",
        as_json=False,
    )
    run.count("ddx_calls")


def spread(counts: dict[str, int]) -> str:
    """``a 3, b 2``: counts in one line."""
    return ", ".join(f"{key} {value}" for key, value in counts.items())
