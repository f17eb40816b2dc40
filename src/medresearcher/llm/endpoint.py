"""One configured endpoint: limits, retries, cache and usage around the OpenAI SDK.

Why these layers and not the SDK's own: the SDK's retries are switched off so that one
policy (tenacity) governs every model call, honours ``Retry-After``, and ends in an
:class:`LLMCallError` that names endpoint, status and cause. Concurrency (a semaphore) and
rate (aiolimiter) are separate limits because servers enforce both. The injected HTTP
client is httpx2's, the SDK's own stack: its connection pool stays cheap at high
concurrency where httpcore 1.x's rescans every connection per request.

An endpoint with several base URLs is a pool of replicas (:mod:`medresearcher.llm.replicas`):
each replica has its own concurrency and rate limit (``max_concurrency`` and ``qps`` are per
replica, what a fleet of vLLM servers wants). A request whose replica drops or refuses the
connection, times out, or is taken out fails over to another replica at once, without using
one of its retries; other failures retry as for one server. The response cache is keyed by
the endpoint's first URL, never by the replica that answered, so adding replicas keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
)

from medresearcher.config import EndpointSettings
from medresearcher.llm.cache import ResponseCache, request_key
from medresearcher.llm.dialects import get_dialect
from medresearcher.llm.errors import CacheMissError, LLMCallError
from medresearcher.llm.replicas import Lease, ReplicaPool, conversation_key
from medresearcher.llm.types import ChatResult, Usage
from medresearcher.secrets import redact_url

__all__ = ["EndpointClient"]

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


class MalformedResponseError(Exception):
    """The server answered 2xx with a body that is not a chat completion."""


@dataclass
class _Server:
    """One replica's client and limits."""

    client: openai.AsyncOpenAI
    semaphore: asyncio.Semaphore
    limiter: AsyncLimiter | None


@dataclass
class _Request:
    """One call's way through the pool: its conversation, the replicas that failed it
    since its last counted retry, and whether the next attempt is a free failover."""

    conversation: str | None
    pinned: int | None = None  # a replica chosen by the caller (llm ping): no failover
    tried: set[int] = field(default_factory=set)
    retries_used: int = 0
    failover: bool = False
    url: str | None = None  # the replica of the last attempt


class EndpointClient:
    """Chat completions against one named endpoint.

    Create it inside a running event loop (the limits are asyncio primitives) and close
    it with :meth:`aclose`; :class:`~medresearcher.llm.LLMGateway` does both for you.
    """

    def __init__(
        self,
        name: str,
        settings: EndpointSettings,
        *,
        cache: ResponseCache | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.url = redact_url(settings.base_url)
        urls = settings.replica_urls()
        self.urls = [redact_url(url) for url in urls]
        self.dialect = get_dialect(settings.tool_dialect)
        self.cache = cache
        self.usage = Usage()
        self.pool = ReplicaPool(
            self.urls,
            failure_threshold=settings.replica_failure_threshold,
            cooldown_s=settings.replica_cooldown_s,
        )
        connections = settings.max_concurrency * len(urls)
        limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._http = httpx2.AsyncClient(
            transport=transport, limits=limits, timeout=httpx2.Timeout(settings.timeout_s)
        )
        api_key = settings.api_key()
        self._servers = [
            _Server(
                client=openai.AsyncOpenAI(
                    base_url=url,
                    api_key=api_key,
                    max_retries=0,
                    timeout=settings.timeout_s,
                    http_client=self._http,
                ),
                semaphore=asyncio.Semaphore(settings.max_concurrency),
                # max_rate=1 per 1/qps seconds: an even pace with no initial burst.
                limiter=AsyncLimiter(1, 1.0 / settings.qps) if settings.qps else None,
            )
            for url in urls
        ]

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        cache_salt: str | int | None = None,
        max_retries: int | None = None,
        conversation_id: str | None = None,
        replica: int | None = None,
        **params: Any,
    ) -> ChatResult:
        """One chat completion, parsed for this endpoint's tool-call dialect.

        Parameters
        ----------
        messages:
            OpenAI chat messages; assistant turns may carry ``tool_calls`` and
            ``reasoning_content``, tool turns ``tool_call_id``.
        tools:
            OpenAI tool schemas; sent natively or rendered into the prompt (hermes).
        cache_salt:
            Part of the cache key, so that rollouts of one question at temperature > 0
            are cached apart (pass the rollout number).
        max_retries:
            Overrides the endpoint's setting for this call.
        conversation_id:
            With several replicas, the calls of one conversation go to one replica, whose
            prefix cache holds the earlier turns. Default: a key of the messages up to the
            first user turn and ``cache_salt`` (see ``replicas.conversation_key``), which
            names an agent run, a rollout, or a structured call with its repair round.
        replica:
            Send to this replica (an index into :attr:`urls`) whatever its state, with no
            failover: ``llm ping`` checks each one.
        params:
            Sampling and request parameters (``temperature``, ``max_tokens``, ``stop``,
            ``seed``, ``response_format``, ``extra_body``...).

        Raises
        ------
        LLMCallError
            After the last attempt, or at once for a non-retryable status.
        CacheMissError
            In replay mode, when the request is not in the cache.
        """
        request = self._request_params(params)
        wire_messages, extra = self.dialect.prepare(messages, tools)
        if self.dialect.name == "hermes" and tools:
            # The model must stop where the tool's answer would begin, not invent it.
            stops = list(request.get("stop") or [])
            request["stop"] = [*stops, "<tool_response>"]
        key = None
        if self.cache is not None and self.cache.mode != "off":
            key = request_key(
                self.settings.base_url,
                self.settings.model,
                wire_messages,
                tools,
                {**request, "salt": cache_salt},
            )
            hit = self.cache.get_response(key)
            if hit is not None:
                self.usage.add(Usage(cached=1))
                return ChatResult.from_dict(hit, endpoint=self.name, cached=True)
            if self.cache.mode == "replay":
                raise CacheMissError(
                    f"endpoint {self.name!r}: replay mode and no cached response for this request "
                    f"(key {key[:12]}); run once with cache mode read-write to record it"
                )

        started = time.perf_counter()
        # Server-specific fields (extra_body) go at the top level of the JSON body, as the
        # SDK would send them; the cache key above keeps them apart from standard params.
        body = {key: value for key, value in request.items() if key != "extra_body"}
        body = {
            "model": self.settings.model,
            "messages": wire_messages,
            **body,
            **request.get("extra_body", {}),
            **extra,
        }
        if replica is not None and not 0 <= replica < len(self._servers):
            raise IndexError(f"endpoint {self.name!r} has {len(self._servers)} replica(s)")
        conversation = None
        if not self.pool.single and replica is None:
            conversation = conversation_id or conversation_key(messages, cache_salt)
        result = await self._call_with_retries(body, max_retries, _Request(conversation, replica))
        result.latency_s = time.perf_counter() - started
        self.usage.add(
            Usage(
                requests=1,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                cost_usd=self._cost(result),
            )
        )
        if key is not None and self.cache is not None:
            self.cache.put_response(key, result.to_dict())
        return result

    def _request_params(self, params: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {}
        if self.settings.temperature is not None:
            request["temperature"] = self.settings.temperature
        if self.settings.max_tokens is not None:
            request["max_tokens"] = self.settings.max_tokens
        extra_body = {**self.settings.extra_body, **(params.pop("extra_body", None) or {})}
        request.update(params)
        if extra_body:
            request["extra_body"] = extra_body
        return request

    def _cost(self, result: ChatResult) -> float:
        price_in = self.settings.price_per_mtok_in or 0.0
        price_out = self.settings.price_per_mtok_out or 0.0
        return (result.prompt_tokens * price_in + result.completion_tokens * price_out) / 1e6

    async def _call_with_retries(
        self, body: dict[str, Any], max_retries: int | None, request: _Request
    ) -> ChatResult:
        retries = self.settings.max_retries if max_retries is None else max_retries
        retrying = AsyncRetrying(
            # A failover to another replica is free; every other failure uses a retry.
            stop=lambda state: request.retries_used > retries,
            wait=lambda state: 0.0 if request.failover else self._wait(state),
            retry=retry_if_exception(_is_retryable),
            before_sleep=lambda state: self._log_retry(state, request),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(body, request)
        except Exception as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise self._final_error(exc, attempts, request) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _lease(self, request: _Request) -> Lease:
        if request.pinned is not None:
            return self.pool.acquire_replica(request.pinned)
        lease = self.pool.acquire(request.conversation, exclude=request.tried)
        if lease is None:  # every replica failed this request once: start the round again
            request.tried.clear()
            lease = self.pool.acquire(request.conversation)
        assert lease is not None
        return lease

    async def _attempt(self, body: dict[str, Any], request: _Request) -> ChatResult:
        request.failover = False
        while True:
            lease = self._lease(request)
            server = self._servers[lease.replica.index]
            request.url = lease.replica.url
            try:
                async with server.semaphore:
                    if request.pinned is None and self.pool.stale(lease, request.tried):
                        continue  # taken out while this request queued for it: choose again
                    if server.limiter is not None:
                        await server.limiter.acquire()
                    try:
                        data = await self._post(server, body)
                        result = self._parse(data)
                    except Exception as exc:
                        self._settle_failure(lease, request, exc)
                        raise
                self.pool.succeeded(lease)
                return result
            finally:
                self.pool.release(lease)

    async def _post(self, server: _Server, body: dict[str, Any]) -> Any:
        # The SDK's documented custom-request path: its auth, base URL and error mapping,
        # without re-walking every message through its TypedDict transform or building
        # pydantic objects for the response, which costs more CPU than the HTTP itself.
        try:
            return await server.client.post("/chat/completions", body=body, cast_to=dict[str, Any])
        except openai.APIError:
            raise
        except Exception as exc:  # the SDK failed to decode the body
            raise MalformedResponseError(f"{type(exc).__name__}: {exc}") from exc

    def _settle_failure(self, lease: Lease, request: _Request, exc: BaseException) -> None:
        """Tell the pool, and decide whether the retry is a free failover or a counted one."""
        if not _is_retryable(exc):
            self.pool.succeeded(lease)  # it answered: a 4xx is the request's fault
            return
        if isinstance(exc, openai.APIStatusError) and exc.status_code < 500:
            self.pool.succeeded(lease)  # 429 and friends: alive, and asks us to wait
            request.retries_used += 1
            return
        _, cause = _describe(exc, self.settings.timeout_s)
        refused = isinstance(exc, openai.APIConnectionError) and isinstance(
            exc.__cause__, httpx2.ConnectError
        )
        taken_out = self.pool.failed(lease, cause, refused=refused)
        request.tried.add(lease.replica.index)
        dropped = isinstance(exc, openai.APIConnectionError)  # timeouts included
        request.failover = (
            request.pinned is None
            and (dropped or taken_out)
            and self.pool.any_in_service(exclude=request.tried)
        )
        if not request.failover:
            request.retries_used += 1

    def _parse(self, data: Any) -> ChatResult:
        try:
            choice = data["choices"][0]
            message = choice["message"]
            if not isinstance(message, dict):
                raise TypeError("message is not an object")
        except (KeyError, IndexError, TypeError) as exc:
            raise MalformedResponseError(
                f"not a chat completion ({exc}): {str(data)[:200]!r}"
            ) from None
        parsed = self.dialect.parse(message)
        usage = data.get("usage") or {}
        return ChatResult(
            content=parsed.content,
            tool_calls=parsed.calls,
            tool_call_errors=parsed.errors,
            reasoning_content=message.get("reasoning_content"),
            finish_reason=choice.get("finish_reason"),
            model=data.get("model") or self.settings.model,
            endpoint=self.name,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = _retry_after(exc)
        if retry_after is not None:
            return min(retry_after, self.settings.retry_max_wait_s)
        # Exponential backoff with full jitter of one base unit (Google's retry strategy).
        base = self.settings.retry_backoff_s
        backoff = base * 2 ** (state.attempt_number - 1) + random.uniform(0, base)
        return min(backoff, self.settings.retry_max_wait_s)

    def _log_retry(self, state: RetryCallState, request: _Request) -> None:
        exc = state.outcome.exception() if state.outcome else None
        status, cause = _describe(exc, self.settings.timeout_s)
        what = f"HTTP {status}" if status is not None else "error"
        where = "" if self.pool.single else f" on {request.url}"
        if request.failover:
            log.warning(
                "endpoint %r attempt %d failed%s (%s: %s); failing over to another replica",
                self.name,
                state.attempt_number,
                where,
                what,
                cause,
            )
            return
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "endpoint %r attempt %d failed%s (%s: %s); retrying in %.2f s",
            self.name,
            state.attempt_number,
            where,
            what,
            cause,
            wait,
        )

    def _final_error(self, exc: BaseException, attempts: int, request: _Request) -> Exception:
        if isinstance(exc, (LLMCallError, CacheMissError)):
            return exc
        status, cause = _describe(exc, self.settings.timeout_s)
        if self.pool.single:
            return LLMCallError(self.name, self.url, cause, status=status, attempts=attempts)
        if request.pinned is None and self.pool.all_down():
            url, cause = ", ".join(self.urls), self.pool.describe_down()
            return LLMCallError(self.name, url, cause, status=status, attempts=attempts)
        url = request.url or self.url
        return LLMCallError(self.name, url, cause, status=status, attempts=attempts)

    def replica_stats(self) -> list[dict[str, Any]]:
        """Per replica: url, in_service, in_flight, sent, failures, last_error."""
        return self.pool.stats()


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRYABLE_STATUS
    return isinstance(
        exc, (openai.APITimeoutError, openai.APIConnectionError, MalformedResponseError)
    )


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` / ``retry-after-ms``), if any."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if headers.get("retry-after"):
            return max(0.0, float(headers["retry-after"]))
    except ValueError:  # an HTTP date: rare from model servers; fall back to backoff
        return None
    return None


def _describe(exc: BaseException | None, timeout_s: float) -> tuple[int | None, str]:
    """(status, one-line cause) for an exception raised by an attempt."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code, _error_message(exc)
    if isinstance(exc, openai.APITimeoutError):
        return None, f"timed out after {timeout_s:g} s"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return None, f"cannot connect: {cause}".rstrip(": ") or "cannot connect"
    if isinstance(exc, MalformedResponseError):
        return None, f"malformed response body ({exc})"
    return None, f"{type(exc).__name__}: {exc}"


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    text = exc.response.text if exc.response is not None else ""
    return (text or exc.message or "no error message").strip()[:300]
