"""``medresearcher web``: the web UI on 127.0.0.1.

The public release ran Flask's debugger on 0.0.0.0, so anyone on the network could run code
on the machine. This binds the loopback interface unless ``--host`` says otherwise (with a
warning), and never runs with a debugger or auto-reload.
"""

from __future__ import annotations

import ipaddress

import typer

from medresearcher.cli.state import console, err_console, state_of
from medresearcher.errors import ConfigError, InputError

__all__ = ["is_loopback", "web"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web(
    ctx: typer.Context,
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Interface to bind; anything but loopback is reachable "
        "from the network (there is no login).",
    ),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port."),
) -> None:
    """Serve the web UI (graph explorer, QA lab, runs, browsers) for the workspace."""
    try:
        import uvicorn

        from medresearcher.web import create_app
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"the web UI needs the web extra ({exc.name} is not installed): "
            "pip install 'medresearcher[web]'"
        ) from None

    state = state_of(ctx)
    ws = state.ws
    if not ws.root.is_dir():
        raise InputError(f"{ws.root} is not a workspace folder: run `medresearcher demo` first")
    if not is_loopback(host):
        err_console.print(
            f"[bold yellow]warning:[/] binding {host}: the web UI has no login, so anyone who "
            "can reach this port can read the workspace and start work on it. Prefer the "
            "default 127.0.0.1 (with an SSH tunnel for remote use).",
            highlight=False,
        )
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"medresearcher web UI for {ws.root.resolve()} at [bold]http://{shown}:{port}/[/] "
        "(Ctrl-C stops it)",
        highlight=False,
    )
    uvicorn.run(
        create_app(state.settings),
        host=host,
        port=port,
        log_level="warning",
        reload=False,
        access_log=False,
        server_header=False,
    )
