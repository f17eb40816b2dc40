"""A fake OpenAI-compatible HTTP server for tests and benchmarks.

Why a real HTTP server rather than mocking the client: the code under test talks to LLMs through
``openai`` / ``httpx``, and the behaviour we care about (timeouts, retries on 429/5xx, Retry-After,
connection pooling, real concurrency limits) lives in that transport stack.  Mocking below it
would hide exactly the bugs these tests exist to catch, so this module answers over a loopback
socket like a real endpoint would.

It is stdlib-only on purpose: the benchmark runs it as a separate process
(``python tests/fakes/openai_server.py --latency 0.1``), and it must not depend on the package
or on anything that might not be installed.

Scripting model: each ``POST /v1/chat/completions`` takes its answer from, in order,

1. the FIFO queue filled by :meth:`FakeOpenAIServer.enqueue` (one reply per request),
2. the first matching rule added with :meth:`FakeOpenAIServer.add_rule`,
3. :attr:`FakeOpenAIServer.default`.

Every request is recorded (:attr:`FakeOpenAIServer.requests`) and the number of chat requests
being handled at once is tracked (:attr:`FakeOpenAIServer.peak_in_flight`), so tests can assert
both on what was sent and on how concurrently it was sent.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

if __package__:
    from tests.fakes.loopback import DISCONNECT_ERRORS, LoopbackServer, TrackedHandler
else:  # run as a script by the benchmarks: its own folder is on sys.path
    from loopback import DISCONNECT_ERRORS, LoopbackServer, TrackedHandler

__all__ = ["FakeOpenAIServer", "RecordedRequest", "Reply"]

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"

# Error "type" strings roughly as the real API sends them; clients mostly key on the status code,
# but a realistic type makes error messages in test failures easier to read.
_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

# Errors that only mean "the client went away"; they are expected (e.g. after a client timeout
# on a hanging reply, or when stop() closes idle keep-alive connections) and must stay quiet.


@dataclass
class Reply:
    """One scripted answer to a chat-completion request.

    Kept as plain data (plus small constructors) so a test reads like a transcript of what the
    "LLM" will say, and so the same object can be queued several times.
    """

    status: int = 200
    content: str | None = "ok"
    tool_calls: list[dict] | None = None
    reasoning_content: str | None = None
    usage: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    raw_body: bytes | None = None
    error_message: str | None = None

    @classmethod
    def text(cls, content: str | None, **kw: Any) -> Reply:
        """A plain assistant message."""
        return cls(content=content, **kw)

    @classmethod
    def tools(cls, *calls: tuple[str, dict | str], content: str | None = None, **kw: Any) -> Reply:
        """An assistant message with tool calls, given as ``(name, arguments)`` pairs.

        ``dict`` arguments are JSON-encoded; ``str`` arguments are sent verbatim so a test can
        send truncated or otherwise invalid JSON, as real models sometimes do.  Call ids are
        ``call_1``, ``call_2``, ... in the order given.
        """
        tool_calls = [
            {
                "id": f"call_{k}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for k, (name, args) in enumerate(calls, start=1)
        ]
        return cls(content=content, tool_calls=tool_calls, **kw)

    @classmethod
    def error(
        cls, status: int, *, retry_after: float | None = None, message: str | None = None
    ) -> Reply:
        """An HTTP error with an OpenAI-style error body, optionally with ``Retry-After``."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        return cls(status=status, content=None, headers=headers, error_message=message)

    @classmethod
    def malformed(cls, raw: bytes = b'{"choices": [{"message": ') -> Reply:
        """A 200 whose body is not valid JSON (or not a valid completion), sent verbatim."""
        return cls(raw_body=raw)

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """A normal answer that arrives only after ``seconds`` (to trip client timeouts)."""
        return cls(delay_s=seconds)


ReplySource = Reply | Callable[[dict], Reply]


@dataclass
class RecordedRequest:
    """What the server received, kept so tests can assert on prompts, tools, headers, timing.

    ``headers`` keys are lower-cased (HTTP header names are case-insensitive, and this makes
    ``req.headers["authorization"]`` work regardless of how the client spelled it).
    """

    method: str
    path: str
    headers: dict[str, str]
    json: dict | None
    received_at: float


@dataclass
class _Rule:
    predicate: Callable[[dict], bool]
    reply: ReplySource
    remaining: int | None


def _content_chars(content: Any) -> int:
    """Characters of a message ``content`` (a string or a list of typed parts)."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += len(part["text"])
            elif isinstance(part, str):
                total += len(part)
        return total
    return 0


def _default_prompt_tokens(body: dict) -> int:
    messages = body.get("messages")
    chars = 0
    if isinstance(messages, list):
        chars = sum(_content_chars(m.get("content")) for m in messages if isinstance(m, dict))
    return max(1, chars // 4)


def _error_body(status: int, message: str) -> bytes:
    err_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    return json.dumps({"error": {"message": message, "type": err_type, "code": status}}).encode()


class _Handler(TrackedHandler):
    """Per-connection handler; all state lives on the owning :class:`FakeOpenAIServer`."""

    server_version = "FakeOpenAI/1.0"

    # -- plumbing -------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Trailer section ends with an empty line.
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _record(self, path: str, body_json: dict | None) -> None:
        fake = self.server.owner
        rec = RecordedRequest(
            method=self.command,
            path=path,
            headers={k.lower(): v for k, v in self.headers.items()},
            json=body_json,
            received_at=time.monotonic(),
        )
        with fake._lock:
            fake._requests.append(rec)

    # -- verbs ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self._record(path, None)
        try:
            if path.rstrip("/") == MODELS_PATH:
                model = self.server.owner.model
                body = {
                    "object": "list",
                    "data": [{"id": model, "object": "model", "owned_by": "fake"}],
                }
                self._send(200, json.dumps(body).encode())
            else:
                self._send(404, _error_body(404, f"no route for GET {path}"))
        except DISCONNECT_ERRORS:
            self.close_connection = True

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self._read_body()
        if path.rstrip("/") != CHAT_PATH:
            self._record(path, None)
            with contextlib.suppress(*DISCONNECT_ERRORS):
                self._send(404, _error_body(404, f"no route for POST {path}"))
            return
        fake = self.server.owner
        fake._enter()
        try:
            try:
                body = json.loads(raw) if raw else None
            except (ValueError, UnicodeDecodeError):
                body = None
            if not isinstance(body, dict):
                self._record(path, None)
                self._send(400, _error_body(400, "request body is not a JSON object"))
                return
            self._record(path, body)
            status, payload, headers, delay = fake._answer(body)
            if fake._sleep(fake.latency_s + delay):
                # stop() was called while we were waiting: drop the connection unanswered.
                self.close_connection = True
                return
            self._send(status, payload, headers)
        except DISCONNECT_ERRORS:
            # The client gave up (typically a timeout on a hanging reply); nothing to answer.
            self.close_connection = True
        finally:
            fake._leave()

    def _not_found(self) -> None:
        path = urlsplit(self.path).path
        self._read_body()
        self._record(path, None)
        with contextlib.suppress(*DISCONNECT_ERRORS):
            self._send(404, _error_body(404, f"no route for {self.command} {path}"))

    do_PUT = _not_found
    do_PATCH = _not_found
    do_DELETE = _not_found


class FakeOpenAIServer(LoopbackServer):
    """A scriptable OpenAI-compatible chat server on ``127.0.0.1:<random port>``.

    Use as a context manager (or :meth:`start` / :meth:`stop`) and point a client at
    :attr:`base_url`.  Thread-safe: handler threads and the test thread share state under one
    re-entrant lock (re-entrant so reply callables may inspect the server).
    """

    handler = _Handler

    def __init__(
        self,
        *,
        model: str = "fake-model",
        latency_s: float = 0.0,
        default: ReplySource | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.latency_s = latency_s
        self.default: ReplySource = default if default is not None else Reply.text("ok")
        self._queue: deque[Reply] = deque()
        self._rules: list[_Rule] = []
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._peak_in_flight = 0
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ------------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies, consumed one per chat request before rules and default (FIFO)."""
        with self._lock:
            self._queue.extend(replies)

    def add_rule(
        self,
        predicate: Callable[[dict], bool],
        reply: ReplySource,
        *,
        times: int | None = None,
    ) -> None:
        """Answer requests whose JSON matches ``predicate`` (checked in order added).

        Rules apply only when the queue is empty.  ``times=None`` means unlimited; otherwise the
        rule is dropped after matching ``times`` requests.
        """
        if times is not None and times <= 0:
            return
        with self._lock:
            self._rules.append(_Rule(predicate, reply, times))

    def reset(self) -> None:
        """Forget queued replies, rules, recorded requests and the peak counter."""
        with self._lock:
            self._queue.clear()
            self._rules.clear()
            self._requests.clear()
            self._peak_in_flight = self._in_flight

    # -- observations ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (models, chat, 404s), in arrival order (a snapshot copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Only ``POST /v1/chat/completions`` requests, in arrival order."""
        with self._lock:
            return [
                r for r in self._requests if r.method == "POST" and r.path.rstrip("/") == CHAT_PATH
            ]

    @property
    def in_flight(self) -> int:
        """Chat requests currently between "body read" and "response written"."""
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most chat requests ever handled at the same time (since start or reset)."""
        with self._lock:
            return self._peak_in_flight

    # -- internals used by the handler ----------------------------------------------------

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _sleep(self, seconds: float) -> bool:
        """Sleep, but wake early on stop(); returns True if stopping."""
        if seconds > 0:
            return self._stop_event.wait(seconds)
        return self._stop_event.is_set()

    def _pick(self, body: dict) -> ReplySource:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            for rule in self._rules:
                if rule.predicate(body):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    return rule.reply
            return self.default

    def _answer(self, body: dict) -> tuple[int, bytes, dict[str, str], float]:
        """Turn the scripted reply for ``body`` into (status, payload, headers, delay)."""
        try:
            source = self._pick(body)
            reply = source(body) if callable(source) else source
            if not isinstance(reply, Reply):
                raise TypeError(f"reply callable returned {type(reply).__name__}, not Reply")
        except Exception as exc:  # a broken test script should surface as a readable 500
            msg = f"fake server reply script failed: {type(exc).__name__}: {exc}"
            return 500, _error_body(500, msg), {}, 0.0
        if reply.raw_body is not None:
            return reply.status, reply.raw_body, dict(reply.headers), reply.delay_s
        if reply.status >= 400:
            message = reply.error_message or f"fake error {reply.status}"
            err = _error_body(reply.status, message)
            return reply.status, err, dict(reply.headers), reply.delay_s
        return reply.status, self._completion(body, reply), dict(reply.headers), reply.delay_s

    def _completion(self, body: dict, reply: Reply) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        if reply.reasoning_content is not None:
            message["reasoning_content"] = reply.reasoning_content
        if reply.usage is not None:
            prompt = int(reply.usage.get("prompt_tokens", 0))
            completion = int(reply.usage.get("completion_tokens", 0))
        else:
            prompt = _default_prompt_tokens(body)
            completion = max(1, len(reply.content or "") // 4)
        model = body.get("model")
        payload = {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model if isinstance(model, str) and model else self.model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                    "message": message,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        return json.dumps(payload).encode()


def main(argv: list[str] | None = None) -> int:
    """Run standalone for benchmarks: print ``PORT <n>`` once, serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible chat server.")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per chat reply")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--content", default="ok", help="assistant content of every reply")
    args = parser.parse_args(argv)

    stop_requested = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    server = FakeOpenAIServer(
        model=args.model, latency_s=args.latency, default=Reply.text(args.content)
    ).start()
    try:
        print(f"PORT {server.port}", flush=True)
        # Poll rather than block forever so the signal handler always gets to run promptly.
        while not stop_requested.is_set():
            time.sleep(0.05)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
