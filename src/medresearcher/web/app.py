"""The FastAPI application: one router per page family, templates rendered on the server,
small scripts served from the package.

Every response carries a strict Content-Security-Policy: scripts only from this server's
``/static`` (no inline scripts, no ``eval``, no CDN), nothing fetched from other origins, no
framing. Together with autoescaped templates and ``textContent`` in the scripts, KG, model or
user text cannot run as code in the page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medresearcher import __version__
from medresearcher.config import Settings
from medresearcher.errors import MedResearcherError
from medresearcher.web import routes_browse, routes_graph, routes_home, routes_qa, routes_runs
from medresearcher.web.state import WebState
from medresearcher.web.templating import STATIC_DIR

__all__ = ["CONTENT_SECURITY_POLICY", "create_app"]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response (a plain ASGI
    wrapper, so streamed responses such as server-sent events pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings) -> FastAPI:
    """The web UI over ``settings.workspace``; no interactive docs, no debug tracebacks."""
    state = WebState(settings=settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="medresearcher",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.web = state

    app.add_middleware(SecurityHeaders)

    @app.exception_handler(MedResearcherError)
    async def library_error(request: Request, exc: MedResearcherError) -> JSONResponse:
        """Bad input or configuration met by a route: one clear sentence, status 422."""
        return JSONResponse({"detail": str(exc)}, status_code=422)

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    for module in (routes_home, routes_graph, routes_qa, routes_runs, routes_browse):
        app.include_router(module.router)
    return app
