"""The FastAPI application: one router per page family, templates rendered on the server,
small scripts served from the package."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from medresearcher import __version__
from medresearcher.config import Settings
from medresearcher.web import routes_browse, routes_graph, routes_home, routes_qa, routes_runs
from medresearcher.web.state import WebState
from medresearcher.web.templating import STATIC_DIR

__all__ = ["create_app"]


def create_app(settings: Settings) -> FastAPI:
    """The web UI over ``settings.workspace``; no interactive docs, no debug tracebacks."""
    app = FastAPI(
        title="medresearcher",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.web = WebState(settings=settings)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    for module in (routes_home, routes_graph, routes_qa, routes_runs, routes_browse):
        app.include_router(module.router)
    return app
