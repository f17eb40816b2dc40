"""``medresearcher config``: show the resolved configuration, write an example."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import typer
from rich.table import Table

from medresearcher.cli.state import console, state_of
from medresearcher.secrets import redact_url, redacted_settings

app = typer.Typer(help="Show or create the configuration.", no_args_is_help=True)

EXAMPLE = "medresearcher.example.toml"


@app.command("show")
def show(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Print the resolved configuration (file + MEDRESEARCHER_* environment), secrets redacted."""
    settings = state_of(ctx).settings
    data = redacted_settings(settings)
    if as_json:
        console.print_json(json.dumps(data))
        return
    console.print(f"[bold]config file[/]  {settings.source or '(none: built-in defaults)'}")
    console.print(f"[bold]workspace[/]    {Path(settings.workspace).resolve()}")
    console.print(f"[bold]LLM cache[/]    {settings.cache.mode}")
    if not settings.llm:
        console.print(
            "[bold]LLM endpoints[/] none configured: stages that need a model will say so and "
            f"stop. Run [cyan]medresearcher config init[/] for an example ({EXAMPLE})."
        )
        return
    table = Table(title="LLM endpoints", title_justify="left")
    for column in ("name", "base_url", "model", "dialect", "concurrency", "qps", "api key"):
        table.add_column(column, overflow="fold")
    for name, ep in sorted(settings.llm.items()):
        if ep.api_key_env:
            key = f"${ep.api_key_env} ({'set' if os.environ.get(ep.api_key_env) else 'MISSING'})"
        else:
            key = "none needed"
        table.add_row(
            name,
            "\n".join(redact_url(url) for url in ep.replica_urls()),
            ep.model,
            ep.tool_dialect,
            str(ep.max_concurrency),
            f"{ep.qps:g}" if ep.qps else "-",
            key,
        )
    console.print(table)


@app.command("init")
def init(
    path: Path = typer.Argument(Path("medresearcher.toml"), help="Where to write the file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented example config (vLLM, SGLang and OpenRouter endpoints)."""
    if path.exists() and not force:
        console.print(f"[red]{path} exists[/]; use --force to overwrite it")
        raise typer.Exit(1)
    text = resources.files("medresearcher.resources").joinpath(EXAMPLE).read_text("utf-8")
    path.write_text(text, encoding="utf-8")
    console.print(
        f"wrote {path}; edit the \\[llm.*] tables, then run [cyan]medresearcher llm ping[/]"
    )
