"""``medresearcher runs``: what ran in this workspace, and what it cost."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from medresearcher.cli.state import console, state_of
from medresearcher.workspace import list_runs, load_manifest

app = typer.Typer(help="List and inspect recorded runs.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: int = typer.Option(20, help="Show the newest N runs."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """The runs recorded in the workspace, newest last."""
    runs = list_runs(state_of(ctx).ws)[-limit:]
    if as_json:
        console.print_json(json.dumps(runs))
        return
    if not runs:
        console.print("no runs yet in this workspace")
        return
    table = Table(title="runs", title_justify="left")
    for column in ("run", "command", "status", "started", "duration", "tokens", "cost"):
        table.add_column(column)
    for m in runs:
        total = (m.get("usage") or {}).get("total") or {}
        duration = m.get("duration_s")
        table.add_row(
            m["run_id"],
            m.get("command", ""),
            _status(m.get("status", "")),
            (m.get("started_at") or "")[:19].replace("T", " "),
            f"{duration:.1f} s" if isinstance(duration, (int, float)) else "-",
            str(total.get("total_tokens", "-")),
            f"${total['cost_usd']:.4f}" if total.get("cost_usd") else "-",
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="Run id, as `runs list` shows it."),
) -> None:
    """One run's manifest: config (secrets removed), versions, counts, timings, usage."""
    manifest = load_manifest(state_of(ctx).ws, run)
    console.print_json(json.dumps(manifest))


def _status(status: str) -> str:
    colour = {"ok": "green", "failed": "red", "interrupted": "yellow"}.get(status, "cyan")
    return f"[{colour}]{status}[/]"
