"""``medresearcher web``: the web UI on 127.0.0.1."""

from __future__ import annotations

import typer

__all__ = ["web"]


def web(ctx: typer.Context) -> None:
    """Serve the web UI (graph explorer, QA lab, runs, browsers)."""
    raise NotImplementedError
