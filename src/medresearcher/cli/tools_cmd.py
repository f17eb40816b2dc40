"""``medresearcher tools``: list the agent's tools and call one by hand, as the agent would."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from medresearcher.cli.state import CliState, console, state_of

if TYPE_CHECKING:  # the tools import the openai SDK, bm25s and scipy: only when a command runs
    from medresearcher.tools import Observation, ToolBox

app = typer.Typer(help="List the agent's tools and call one by hand.", no_args_is_help=True)

# medresearcher.tools.TOOL_NAMES, spelled out so that --help need not import the tools.
_TOOL_NAMES_HELP = ("web_search", "document_read", "medical_retriever", "clinical_reasoning")


@app.command("list")
def list_tools(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the tools' JSON schemas."),
) -> None:
    """The tools the agent is given, with what each one does."""
    from medresearcher.tools import build_toolbox

    state = state_of(ctx)
    toolbox = build_toolbox(state.settings, state.ws)
    try:
        if as_json:
            console.print_json(json.dumps(toolbox.schemas(), ensure_ascii=False))
            return
        table = Table(title="agent tools", title_justify="left")
        table.add_column("name", no_wrap=True)
        table.add_column("description", overflow="fold")
        table.add_column("arguments", overflow="fold")
        for schema in toolbox.schemas():
            function = schema["function"]
            arguments = ", ".join(function["parameters"].get("properties", {}))
            table.add_row(function["name"], function["description"], arguments)
        console.print(table)
    finally:
        asyncio.run(toolbox.aclose())


@app.command("call")
def call(
    ctx: typer.Context,
    name: str = typer.Argument(..., help=f"The tool: {', '.join(_TOOL_NAMES_HELP)}."),
    arguments: str = typer.Argument(
        "{}", help='Its arguments as a JSON object, e.g. \'{"queries": ["Fabry disease"]}\'.'
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the whole observation as JSON."),
) -> None:
    """Call one tool as the agent would and show its observation (exit 1 on an error)."""
    state = state_of(ctx)
    observation = asyncio.run(_call(state, name, arguments))
    if as_json:
        console.print_json(observation.model_dump_json())
    else:
        _show(name, observation)
    if observation.error:
        raise typer.Exit(1)


async def _call(state: CliState, name: str, arguments: str) -> Observation:
    from medresearcher.llm import LLMGateway
    from medresearcher.tools import TOOL_NAMES, build_toolbox

    settings = state.settings
    gateway = LLMGateway(settings) if settings.tools.document_read_endpoint else None
    try:
        names = [name] if name in TOOL_NAMES else None  # unknown: the toolbox says so
        toolbox: ToolBox = build_toolbox(settings, state.ws, gateway=gateway, names=names)
        try:
            return await toolbox.call(name, arguments)
        finally:
            await toolbox.aclose()
    finally:
        if gateway is not None:
            await gateway.aclose()


def _show(name: str, observation: Observation) -> None:
    notes = [f"{observation.elapsed_s:.2f} s"]
    if observation.truncated:
        notes.append("cut to the token budget")
    console.print(
        Panel(
            escape(observation.text),
            title=f"{name} · {' · '.join(notes)}",
            title_align="left",
            border_style="red" if observation.error else "green",
        )
    )
    if observation.sources:
        console.print("[bold]sources[/]")
        for source in observation.sources:
            console.print(f"  • {escape(source)}", highlight=False, soft_wrap=True)
