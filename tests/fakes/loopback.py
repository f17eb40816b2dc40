"""What every fake server here shares: a quiet threaded HTTP server on 127.0.0.1:<random
port>, connection tracking, and a start/stop lifecycle that leaves no thread behind.

Stdlib only: ``openai_server.py`` also runs as a standalone process for the benchmarks.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

__all__ = ["DISCONNECT_ERRORS", "LoopbackServer", "TrackedHandler"]

_S = TypeVar("_S", bound="LoopbackServer")

# Errors that only mean "the client went away" (after a client timeout, or at stop()).
DISCONNECT_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class _QuietHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer tuned for tests: big backlog, no reverse DNS, quiet disconnects."""

    daemon_threads = True
    # The default backlog (5) drops or delays connections when a benchmark opens 64-128 at once.
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, owner: LoopbackServer, handler: type[BaseHTTPRequestHandler]) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can take
        # seconds in sandboxes; we know the name already.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (*DISCONNECT_ERRORS, TimeoutError)) or self.owner.stopping:
            return
        super().handle_error(request, client_address)


class TrackedHandler(BaseHTTPRequestHandler):
    """Keep-alive handler whose connections the owning server can close at stop()."""

    protocol_version = "HTTP/1.1"  # keep-alive, like a real API behind a connection pool
    disable_nagle_algorithm = True  # headers and body are separate writes; avoid 40 ms stalls
    server: _QuietHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            with contextlib.suppress(*DISCONNECT_ERRORS):
                super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: per-request access logs would drown test output."""


class LoopbackServer:
    """Start, stop and address a fake server; subclasses set ``handler`` and their state.

    Thread-safe: handler threads and the test thread share state under one re-entrant lock
    (re-entrant so scripted reply callables may inspect the server).
    """

    handler: type[TrackedHandler] = TrackedHandler

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._connections: set[socket.socket] = set()
        self._stop_event = threading.Event()
        self._httpd: _QuietHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self: _S) -> _S:
        """Bind 127.0.0.1:0 and serve in a daemon thread; returns self for chaining."""
        if self._httpd is None:
            self._stop_event.clear()
            self._httpd = _QuietHTTPServer(self, self.handler)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{type(self).__name__}-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; safe to call more than once.

        Sleeping handlers are woken (see :attr:`stopping`) and idle keep-alive connections
        are shut down, so no handler thread outlives the test for long.
        """
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

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` has begun (handler errors after that are expected noise)."""
        return self._stop_event.is_set()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._httpd.server_address[1])

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)
