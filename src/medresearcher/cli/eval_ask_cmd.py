"""``medresearcher eval ask``: answer one question with the agent and grade it against a gold.

A plain typer-annotated function; ``cli/eval_cmd.py`` registers it on the ``eval`` app. It is
the one-item form of ``eval run``: the agent's steps are printed as they happen, then the
verdict, so a model endpoint and a judge can be tried before a whole benchmark is run.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from medresearcher.cli.agent_cmd import DISCLAIMER, StepPrinter, _tool_names, _toolbox
from medresearcher.cli.eval_endpoints import judge_of, make_judge, require_model
from medresearcher.cli.state import CliState, console, state_of
from medresearcher.errors import MedResearcherError
from medresearcher.workspace import Run

if TYPE_CHECKING:  # the agent and gateway import the openai SDK: only when a command runs
    from medresearcher.agent import AgentLimits

__all__ = ["ask"]


def ask(
    ctx: typer.Context,
    question: str = typer.Argument(..., help="The question."),
    gold: str = typer.Option(..., "--gold", help="The reference answer."),
    aliases: list[str] = typer.Option([], "--alias", help="Another accepted answer (repeat)."),
    endpoint: str = typer.Option("agent", "--endpoint", "-e", help="\\[llm.*] of the agent."),
    judge: str | None = typer.Option(
        None, "--judge", help="Judge endpoint, or 'none'. Default: \\[llm.judge] when configured."
    ),
    tools: str | None = typer.Option(
        None, "--tools", help="Comma-separated tool names, or 'none'; default: every tool."
    ),
    max_turns: int | None = typer.Option(None, "--max-turns", min=1, help="Default: \\[agent]."),
    timeout_s: float | None = typer.Option(None, "--timeout", min=0.001, help="Seconds."),
    language: str | None = typer.Option(None, "--language", help="en or zh. Default: \\[agent]."),
) -> None:
    """Answer QUESTION step by step with the agent, then grade the answer against --gold."""
    from medresearcher.agent import AgentLimits

    if language is not None and language not in ("en", "zh"):
        raise typer.BadParameter("--language is en or zh")
    state = state_of(ctx)
    settings = state.settings
    require_model(settings, endpoint)
    judge_endpoint = judge_of(settings, judge)
    limits = AgentLimits.from_settings(settings.agent, max_turns=max_turns, timeout_s=timeout_s)
    console.print(f"[bold]Question[/] {escape(question)}", highlight=False)
    console.print(f"[bold]Gold[/] {escape(gold)}", highlight=False)
    with Run(state.ws, "eval-ask", settings) as manifest:
        trajectory, graded, usage = asyncio.run(
            _ask(
                state,
                question,
                gold,
                aliases,
                endpoint,
                judge_endpoint,
                _tool_names(tools),
                limits,
                language or settings.agent.language,
            )
        )
        manifest.manifest["verdict"] = graded.verdict
        manifest.manifest["grader"] = graded.grader
        manifest.record_usage(usage)
    colour = {"correct": "green", "incorrect": "red"}.get(graded.verdict, "yellow")
    console.print(
        f"\n[bold {colour}]Verdict: {graded.verdict}[/] (grader {escape(graded.grader)})",
        highlight=False,
    )
    if graded.detail:
        console.print(f"[dim]{escape(str(graded.detail))}[/]", highlight=False)
    total = usage.get("total", {})
    console.print(
        f"termination: {trajectory.termination} · {trajectory.stats.get('turns', 0)} turns · "
        f"{trajectory.stats.get('tool_calls', 0)} tool calls · "
        f"tokens {total.get('prompt_tokens', 0)} in / {total.get('completion_tokens', 0)} out",
        highlight=False,
    )
    console.print(f"[dim]{DISCLAIMER}[/]")
    if trajectory.termination == "error":
        raise MedResearcherError(trajectory.termination_detail or "the agent run failed")


async def _ask(
    state: CliState,
    question: str,
    gold: str,
    aliases: list[str],
    endpoint: str,
    judge_endpoint: str | None,
    tool_names: list[str] | None,
    limits: AgentLimits,
    language: str,
) -> tuple[Any, Any, dict[str, Any]]:
    from medresearcher.agent import LLMPolicy, run_agent
    from medresearcher.grading.grade import grade
    from medresearcher.llm import LLMGateway

    async with LLMGateway(state.settings) as gateway:
        toolbox = await _toolbox(state, gateway, tool_names)
        try:
            trajectory = await run_agent(
                question,
                policy=LLMPolicy(gateway, endpoint),
                toolbox=toolbox,
                limits=limits,
                language=language,
                on_step=StepPrinter(),
            )
        finally:
            await toolbox.aclose()
        graded = await grade(
            trajectory.final_answer,
            gold,
            tuple(aliases),
            question=question,
            judge=make_judge(gateway, judge_endpoint),
        )
        return trajectory, graded, gateway.usage_report()
