"""What every command shares: the global options, settings, console and logging."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console
from rich.logging import RichHandler

from medresearcher.config import Settings, load_settings
from medresearcher.errors import ConfigError
from medresearcher.secrets import RedactingFilter, redact, secret_values
from medresearcher.workspace import Workspace

__all__ = [
    "CliState",
    "console",
    "err_console",
    "redact_output",
    "require_model",
    "state_of",
]

console = Console()
err_console = Console(stderr=True)
# The settings of this invocation once loaded, so that error text printed outside any
# command (by ``main``) is masked with the keys the config names, too.
_loaded: list[Settings] = []


@dataclass
class CliState:
    """Global options, resolved into settings on first use (so ``--help`` needs no config)."""

    config_path: Path | None = None
    workspace: Path | None = None
    verbose: int = 0
    json_output: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            overrides = {"workspace": str(self.workspace)} if self.workspace else None
            self._settings = load_settings(self.config_path, overrides=overrides)
            _loaded[:] = [self._settings]
            setup_logging(self._settings, self.verbose)
        return self._settings

    @property
    def ws(self) -> Workspace:
        return Workspace(self.settings.workspace)


def state_of(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliState) else CliState()


def require_model(settings: Settings, endpoint: str, *, offline: str) -> None:
    """Offline, nothing fakes a model: say how to configure one, and ``offline`` — what the
    command can do without one — then stop. An unknown name lists the configured ones."""
    if not settings.llm:
        where = settings.source or "./medresearcher.toml"
        raise ConfigError(
            f"no model endpoint is configured, and the llm policy needs one: add an "
            f"[llm.{endpoint}] table (base_url, model, tool_dialect) to {where} — "
            "`medresearcher config init` writes an example — then check it with "
            f"`medresearcher llm ping`. Offline, {offline}"
        )
    settings.endpoint(endpoint)


def redact_output(text: str) -> str:
    """``text`` with every known secret masked: for messages printed outside a command."""
    return redact(text, secret_values(_loaded[0] if _loaded else None))


def setup_logging(settings: Settings, verbose: int) -> None:
    """Warnings to stderr by default, INFO with -v, DEBUG with -vv; secrets masked."""
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
    handler.addFilter(RedactingFilter(secret_values(settings)))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, RichHandler)]:
        root.removeHandler(old)
    handler.setLevel(level)
    root.addHandler(handler)
    # The root passes everything to the run's log file; the console handler filters.
    root.setLevel(min(level, logging.getLevelName(settings.log_level)))
    for noisy in ("httpx2", "httpcore2", "openai"):
        logging.getLogger(noisy).setLevel(
            max(level, logging.INFO) if verbose < 2 else logging.DEBUG
        )
