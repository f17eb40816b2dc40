"""A generic fake JSON/XML API on loopback, for the live-source connectors' tests.

Why a real server and not a mocked client: what the connectors must get right (paging, 429 with
``Retry-After``, 5xx storms, truncated bodies, rate pacing, query-string keys) lives in the
HTTP exchange itself, so the tests speak HTTP to this stdlib server on ``127.0.0.1:<port>``.

Scripting: each path has a FIFO queue of :class:`ApiResponse` (one per request) and an
optional fallback (a response or a callable ``ApiRequest -> ApiResponse``) used when the queue
is empty. A path with nothing left answers 404 ``{"error": "fake: no scripted response"}``.
Every request is recorded with its parsed query and arrival time.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import DISCONNECT_ERRORS, LoopbackServer, TrackedHandler

__all__ = ["ApiRequest", "ApiResponse", "FakeApiServer"]


@dataclass
class ApiResponse:
    """One scripted answer. ``truncate_at`` announces the full length but sends only that
    many bytes, then drops the connection (a body cut in transit)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay_s: float = 0.0
    truncate_at: int | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200, **kw: Any) -> ApiResponse:
        return cls(status=status, body=json.dumps(data).encode(), **kw)

    @classmethod
    def raw(cls, body: bytes | str, content_type: str = "text/plain", **kw: Any) -> ApiResponse:
        data = body.encode() if isinstance(body, str) else body
        return cls(body=data, content_type=content_type, **kw)

    @classmethod
    def xml(cls, body: bytes | str, **kw: Any) -> ApiResponse:
        return cls.raw(body, content_type="text/xml; charset=UTF-8", **kw)

    @classmethod
    def error(
        cls, status: int, *, retry_after: float | str | None = None, message: str = "fake error"
    ) -> ApiResponse:
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after}"}
        return cls.json({"error": {"message": message}}, status=status, headers=headers)


@dataclass
class ApiRequest:
    """What the server received; ``query`` maps each name to its values (in order)."""

    method: str
    path: str
    query: dict[str, list[str]]
    raw_query: str
    headers: dict[str, str]
    received_at: float

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


Fallback = ApiResponse | Callable[[ApiRequest], ApiResponse]


class _Handler(TrackedHandler):
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        request = ApiRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            raw_query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            received_at=time.monotonic(),
        )
        fake = self.server.owner
        response = fake._answer(request)
        if response.delay_s and fake._stop_event.wait(response.delay_s):
            self.close_connection = True
            return
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if response.truncate_at is None:
                self.wfile.write(response.body)
                self.wfile.flush()
                return
            self.wfile.write(response.body[: response.truncate_at])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        except DISCONNECT_ERRORS:
            self.close_connection = True


class FakeApiServer(LoopbackServer):
    """A scriptable API on ``127.0.0.1:<random port>``; use it as a context manager."""

    handler = _Handler

    def __init__(self) -> None:
        super().__init__()
        self._queues: dict[str, deque[ApiResponse]] = {}
        self._fallbacks: dict[str, Fallback] = {}
        self._requests: list[ApiRequest] = []

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; add the API's base path to it."""
        return f"http://127.0.0.1:{self.port}"

    def route(self, path: str, *responses: ApiResponse, fallback: Fallback | None = None) -> None:
        """Queue ``responses`` for GET ``path``; ``fallback`` answers once they are used up."""
        with self._lock:
            self._queues.setdefault(path, deque()).extend(responses)
            if fallback is not None:
                self._fallbacks[path] = fallback

    @property
    def requests(self) -> list[ApiRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[ApiRequest]:
        return [r for r in self.requests if r.path == path]

    def _answer(self, request: ApiRequest) -> ApiResponse:
        with self._lock:
            self._requests.append(request)
            queue = self._queues.get(request.path)
            if queue:
                return queue.popleft()
            fallback = self._fallbacks.get(request.path)
        if fallback is None:
            return ApiResponse.json({"error": "fake: no scripted response"}, status=404)
        try:
            return fallback(request) if callable(fallback) else fallback
        except Exception as exc:  # a broken test script surfaces as a readable 500
            return ApiResponse.error(500, message=f"fake script failed: {exc!r}")
