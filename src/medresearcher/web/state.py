"""What every route reads: the settings and workspace the server was started with."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from medresearcher.config import Settings
from medresearcher.workspace import Workspace

__all__ = ["WebState", "web_state"]


@dataclass(frozen=True)
class WebState:
    settings: Settings

    @property
    def ws(self) -> Workspace:
        return Workspace(self.settings.workspace)


def web_state(request: Request) -> WebState:
    """The state :func:`medresearcher.web.create_app` stored on the application."""
    return request.app.state.web
