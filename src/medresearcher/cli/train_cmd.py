"""``medresearcher train``: SFT and GRPO on existing engines (TRL, verl)."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(
    help="Train on the synthesised trajectories with TRL or verl (paper §4).",
    no_args_is_help=True,
)
