"""The ``medresearcher`` command line. Modules here only parse, call the library and print."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from medresearcher import __version__
from medresearcher.cli import (
    agent_cmd,
    config_cmd,
    corpus_cmd,
    data_cmd,
    ddx_cmd,
    demo_cmd,
    eval_cmd,
    index_cmd,
    kg_cmd,
    llm_cmd,
    qa_cmd,
    runs_cmd,
    sample_cmd,
    tools_cmd,
    train_cmd,
    traj_cmd,
    web_cmd,
)
from medresearcher.cli.state import CliState, err_console, redact_output
from medresearcher.errors import MedResearcherError

__all__ = ["app", "main"]

app = typer.Typer(
    name="medresearcher",
    help="Build, train and evaluate medical deep-research agents. "
    "Research software, not clinical advice.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(data_cmd.app, name="data")
app.add_typer(corpus_cmd.app, name="corpus")
app.add_typer(index_cmd.app, name="index")
app.add_typer(kg_cmd.app, name="kg")
app.add_typer(sample_cmd.app, name="sample")
app.add_typer(qa_cmd.app, name="qa")
app.add_typer(agent_cmd.app, name="agent")
app.add_typer(tools_cmd.app, name="tools")
app.add_typer(traj_cmd.app, name="traj")
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(llm_cmd.app, name="llm")
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(train_cmd.app, name="train")
app.command("demo")(demo_cmd.demo)
app.command("ddx")(ddx_cmd.ddx)
app.command("web")(web_cmd.web)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medresearcher {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Config file (default: ./medresearcher.toml if present).",
        envvar="MEDRESEARCHER_CONFIG",
    ),
    workspace: Path | None = typer.Option(
        None, "--workspace", "-w", help="Workspace folder (default: ./workspace)."
    ),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="-v info, -vv debug."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = CliState(config_path=config, workspace=workspace, verbose=verbose)


def main() -> None:
    """Console-script entry: our own errors become one red line and exit status 1."""
    try:
        app()
    except MedResearcherError as exc:
        message = escape(redact_output(str(exc)))
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
