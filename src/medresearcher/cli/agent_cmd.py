"""``medresearcher agent``: ask the research agent a question and watch it work (paper §2.2)."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from medresearcher.cli.state import CliState, console, require_model, state_of
from medresearcher.errors import InputError, MedResearcherError
from medresearcher.schema import QARecord, Trajectory
from medresearcher.workspace import Run, read_jsonl

if TYPE_CHECKING:  # the agent, gateway and tools import the openai SDK: only when a command runs
    from medresearcher.agent import AgentLimits, Policy, Step
    from medresearcher.llm import LLMGateway
    from medresearcher.tools.base import ToolBox

app = typer.Typer(help="Ask the medical research agent a question.", no_args_is_help=True)

DISCLAIMER = "Research software, not clinical advice."
POLICIES = ("llm", "path_guided")
_ARGS_SHOWN = 300
_ANSWER_TAGS = re.compile(r"<answer>.*?(?:</answer>|$)", re.DOTALL | re.IGNORECASE)


@app.command("ask")
def ask(
    ctx: typer.Context,
    question: str | None = typer.Argument(
        None, help="The question (path_guided: default the QA record's own question)."
    ),
    endpoint: str = typer.Option(
        "agent", "--endpoint", "-e", help="Endpoint of the llm policy (\\[llm.<name>])."
    ),
    policy: str = typer.Option(
        "llm", "--policy", help="llm (a model endpoint) or path_guided (offline; needs --qa-id)."
    ),
    qa_id: str | None = typer.Option(None, "--qa-id", help="QA record to follow (path_guided)."),
    qa_file: Path | None = typer.Option(
        None, "--qa", dir_okay=False, help="QA records (default: <workspace>/qa.jsonl)."
    ),
    tools: str | None = typer.Option(
        None, "--tools", help="Comma-separated tool names, or 'none'; default: every tool."
    ),
    max_turns: int | None = typer.Option(None, "--max-turns", min=1, help="Default: \\[agent]."),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", min=256, help="Default: \\[agent]."
    ),
    timeout_s: float | None = typer.Option(
        None, "--timeout", min=0.001, help="Seconds for the whole run. Default: \\[agent]."
    ),
    language: str | None = typer.Option(None, "--language", help="en or zh. Default: \\[agent]."),
    json_out: Path | None = typer.Option(
        None, "--json-out", dir_okay=False, help="Write the Trajectory record here as JSON."
    ),
) -> None:
    """Answer QUESTION with the ReAct agent, showing each thought, call and observation."""
    from medresearcher.agent import AgentLimits

    if policy not in POLICIES:
        raise typer.BadParameter(f"--policy is one of {', '.join(POLICIES)}")
    if language is not None and language not in ("en", "zh"):
        raise typer.BadParameter("--language is en or zh")
    state = state_of(ctx)
    settings = state.settings
    record: QARecord | None = None
    if policy == "llm":
        if not question:
            raise typer.BadParameter("give the QUESTION to ask")
        require_model(
            state.settings,
            endpoint,
            offline="`--policy path_guided --qa-id ID` follows a QA record's chain with the "
            "real tools instead",
        )
    else:
        record = _qa_record(state, qa_id, qa_file)
        if question and question != record.question:  # the walk searches with this wording
            record = record.model_copy(update={"question": question})
        question = record.question
        # Up to four calls per hop before the walk gives up: give it the turns to say why.
        max_turns = max_turns or max(settings.agent.max_turns, 4 * record.hops + 8)
    names = _tool_names(tools)
    limits = AgentLimits.from_settings(
        settings.agent, max_turns=max_turns, max_tokens=max_tokens, timeout_s=timeout_s
    )
    language = language or settings.agent.language

    console.print(f"[bold]Question[/] {escape(question)}", highlight=False)
    with Run(state.ws, "agent-ask", settings) as run:
        trajectory, usage = asyncio.run(
            _ask(state, question, policy, endpoint, record, names, limits, language)
        )
        run.count("turns", trajectory.stats.get("turns", 0))
        run.count("tool_calls", trajectory.stats.get("tool_calls", 0))
        run.manifest["termination"] = trajectory.termination
        run.record_usage(usage)
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(trajectory.model_dump_json(indent=2) + "\n", encoding="utf-8")
        _print_summary(trajectory, json_out)
        if trajectory.termination == "error":
            raise MedResearcherError(trajectory.termination_detail or "the agent run failed")


async def _ask(
    state: CliState,
    question: str,
    policy_name: str,
    endpoint: str,
    record: QARecord | None,
    names: list[str] | None,
    limits: AgentLimits,
    language: str,
) -> tuple[Trajectory, dict[str, Any]]:
    from medresearcher.agent import LLMPolicy, run_agent
    from medresearcher.llm import LLMGateway

    settings = state.settings
    printer = StepPrinter()
    async with LLMGateway(settings) as gateway:
        toolbox = await _toolbox(state, gateway, names)
        try:
            policy: Policy
            if record is not None:
                policy = _path_guided_policy(record, state)
            else:
                policy = LLMPolicy(gateway, endpoint)
            trajectory = await run_agent(
                question,
                policy=policy,
                toolbox=toolbox,
                limits=limits,
                language=language,
                qa_id=record.id if record is not None else None,
                on_step=printer,
            )
        finally:
            await toolbox.aclose()
        return trajectory, gateway.usage_report()


def _tool_names(option: str | None) -> list[str] | None:
    """``None`` for every tool, ``[]`` for none, else the names given."""
    if option is None:
        return None
    names = [name.strip() for name in option.split(",") if name.strip()]
    return [] if names in ([], ["none"]) else names


async def _toolbox(state: CliState, gateway: LLMGateway, names: list[str] | None) -> ToolBox:
    from medresearcher.tools.base import ToolBox

    settings = state.settings
    if names == []:
        return ToolBox([], max_observation_tokens=settings.tools.max_observation_tokens)
    from medresearcher.tools import build_toolbox  # the tools load indexes and data: lazily

    return build_toolbox(settings, state.ws, gateway=gateway, names=names)


def _qa_record(state: CliState, qa_id: str | None, qa_file: Path | None) -> QARecord:
    """The QA record a path-guided run follows."""
    if not qa_id:
        raise typer.BadParameter("--policy path_guided follows a QA record: give its --qa-id")
    path = qa_file or state.ws.qa_path
    if not path.is_file():
        raise InputError(
            f"no QA records at {path}: run `medresearcher qa generate` first, or pass --qa"
        )
    for record in read_jsonl(path, QARecord):
        if record.id == qa_id:
            return record
    raise InputError(f"{path}: no QA record with id {qa_id!r}")


def _path_guided_policy(record: QARecord, state: CliState) -> Policy:
    """The offline policy for ``record``: ``path_guided.policy_for(record, settings)``."""
    from medresearcher.agent.path_guided import policy_for

    return policy_for(record, state.settings)


class StepPrinter:
    """Shows each step of a run as it happens (the ``on_step`` callback of ``run_agent``)."""

    def __call__(self, step: Step) -> None:
        show = getattr(self, f"_{step.kind}")
        show(step)

    def _thought(self, step: Any) -> None:
        console.print(f"\n[bold]Turn {step.turn}[/]")
        if step.reasoning:
            console.print(f"  [dim]reasoning[/] [dim]{escape(step.reasoning.strip())}[/]")
        if step.text.strip():
            console.print(f"  [cyan]thought[/] {escape(step.text.strip())}", highlight=False)

    def _call(self, step: Any) -> None:
        arguments = step.arguments
        if len(arguments) > _ARGS_SHOWN:
            arguments = arguments[: _ARGS_SHOWN - 1] + "…"
        console.print(f"  [yellow]→ {escape(step.name)}[/] {escape(arguments)}", highlight=False)

    def _observation(self, step: Any) -> None:
        colour = "red" if step.error else "green"
        cut = " [dim](cut)[/]" if step.truncated else ""
        console.print(
            f"  [{colour}]← {escape(step.name)}[/] {escape(step.summary)}{cut} "
            f"[dim]{step.elapsed_s:.2f} s[/]",
            highlight=False,
        )
        if step.sources:
            shown = ", ".join(step.sources[:5]) + (" …" if len(step.sources) > 5 else "")
            console.print(f"    [dim]sources: {escape(shown)}[/]", highlight=False)

    def _malformed(self, step: Any) -> None:
        for error in step.errors:
            console.print(f"  [red]unreadable call[/] {escape(error)}", highlight=False)

    def _budget(self, step: Any) -> None:
        console.print(f"\n[magenta]budget spent[/] {step.reason}: {escape(step.detail)}")

    def _answer(self, step: Any) -> None:
        forced = " (forced)" if step.forced else ""
        console.print(f"\n[bold]Turn {step.turn}: final answer{forced}[/]")
        body = _ANSWER_TAGS.sub("", step.text).strip()
        if body and body != step.answer:
            console.print(textwrap.indent(f"[dim]{escape(body)}[/]", "  "), highlight=False)
        answer = escape(step.answer) if step.answer else "[red](no answer)[/]"
        console.print(f"[bold green]Answer:[/] {answer}", highlight=False)

    def _error(self, step: Any) -> None:
        console.print(f"\n[red]stopped[/] {escape(step.detail)}", highlight=False)


def _print_summary(trajectory: Trajectory, json_out: Path | None) -> None:
    stats, usage = trajectory.stats, trajectory.usage
    parts = [
        f"termination: {trajectory.termination}",
        f"{stats.get('turns', 0)} turns",
        f"{stats.get('tool_calls', 0)} tool calls ({stats.get('errors', 0)} errors)",
        f"tokens {usage.get('prompt_tokens', 0)} in / {usage.get('completion_tokens', 0)} out",
    ]
    if usage.get("cost_usd") is not None:
        parts.append(f"${usage['cost_usd']:.4f}")
    parts.append(f"{stats.get('elapsed_s', 0):.1f} s")
    console.print("\n" + " · ".join(parts), highlight=False)
    if trajectory.termination_detail and trajectory.termination != "error":
        console.print(f"[dim]{escape(trajectory.termination_detail)}[/]", highlight=False)
    if json_out is not None:
        console.print(f"record {trajectory.id} written to {escape(str(json_out))}")
    console.print(f"[dim]{DISCLAIMER}[/]")
