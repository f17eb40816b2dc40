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
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["ApiRequest", "ApiResponse", "FakeApiServer"]

_DISCONNECT_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, fake: FakeApiServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer's getfqdn() (a reverse DNS lookup that can stall in sandboxes).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (*_DISCONNECT_ERRORS, TimeoutError)) or self.fake.stopping:
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            with contextlib.suppress(*_DISCONNECT_ERRORS):
                super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: access logs would drown test output."""

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
        fake = self.server.fake
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
        except _DISCONNECT_ERRORS:
            self.close_connection = True


class FakeApiServer:
    """A scriptable API on ``127.0.0.1:<random port>``; use it as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._queues: dict[str, deque[ApiResponse]] = {}
        self._fallbacks: dict[str, Fallback] = {}
        self._requests: list[ApiRequest] = []
        self._connections: set[socket.socket] = set()
        self._stop_event = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeApiServer:
        if self._httpd is None:
            self._stop_event.clear()
            self._httpd = _HTTPServer(self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake delayed handlers and close kept-alive connections."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stop_event.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeApiServer is not started")
        return int(self._httpd.server_address[1])

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

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

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
