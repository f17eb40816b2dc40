"""One configured endpoint: limits, retries, cache and usage around the OpenAI SDK.

Why these layers and not the SDK's own: the SDK's retries are switched off so that one
policy (tenacity) governs every model call, honours ``Retry-After``, and ends in an
:class:`LLMCallError` that names endpoint, status and cause. Concurrency (a semaphore) and
rate (aiolimiter) are separate limits because servers enforce both. The injected HTTP
client is httpx2's, the SDK's own stack: its connection pool stays cheap at high
concurrency where httpcore 1.x's rescans every connection per request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import httpx2
import openai
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from medresearcher.config import EndpointSettings
from medresearcher.llm.cache import ResponseCache, request_key
from medresearcher.llm.dialects import get_dialect
from medresearcher.llm.errors import CacheMissError, LLMCallError
from medresearcher.llm.types import ChatResult, Usage
from medresearcher.secrets import redact_url

__all__ = ["EndpointClient"]

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


class MalformedResponseError(Exception):
    """The server answered 2xx with a body that is not a chat completion."""


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
        self.dialect = get_dialect(settings.tool_dialect)
        self.cache = cache
        self.usage = Usage()
        limits = httpx2.Limits(
            max_connections=settings.max_concurrency,
            max_keepalive_connections=settings.max_concurrency,
        )
        self._http = httpx2.AsyncClient(
            transport=transport, limits=limits, timeout=httpx2.Timeout(settings.timeout_s)
        )
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key(),
            max_retries=0,
            timeout=settings.timeout_s,
            http_client=self._http,
        )
        self._semaphore = asyncio.Semaphore(settings.max_concurrency)
        # max_rate=1 per 1/qps seconds: an even pace with no initial burst.
        self._limiter = AsyncLimiter(1, 1.0 / settings.qps) if settings.qps else None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        cache_salt: str | int | None = None,
        max_retries: int | None = None,
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
        result = await self._call_with_retries(body, max_retries)
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

    async def _call_with_retries(self, body: dict[str, Any], max_retries: int | None) -> ChatResult:
        retries = self.settings.max_retries if max_retries is None else max_retries
        retrying = AsyncRetrying(
            stop=stop_after_attempt(retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(body)
        except Exception as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise self._final_error(exc, attempts) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, body: dict[str, Any]) -> ChatResult:
        # The SDK's documented custom-request path: its auth, base URL and error mapping,
        # without re-walking every message through its TypedDict transform or building
        # pydantic objects for the response, which costs more CPU than the HTTP itself.
        async with self._semaphore:
            if self._limiter is not None:
                await self._limiter.acquire()
            try:
                data = await self._client.post(
                    "/chat/completions", body=body, cast_to=dict[str, Any]
                )
            except openai.APIError:
                raise
            except Exception as exc:  # the SDK failed to decode the body
                raise MalformedResponseError(f"{type(exc).__name__}: {exc}") from exc
        return self._parse(data)

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

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        status, cause = _describe(exc, self.settings.timeout_s)
        what = f"HTTP {status}" if status is not None else "error"
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "endpoint %r attempt %d failed (%s: %s); retrying in %.2f s",
            self.name,
            state.attempt_number,
            what,
            cause,
            wait,
        )

    def _final_error(self, exc: BaseException, attempts: int) -> Exception:
        if isinstance(exc, (LLMCallError, CacheMissError)):
            return exc
        status, cause = _describe(exc, self.settings.timeout_s)
        return LLMCallError(self.name, self.url, cause, status=status, attempts=attempts)


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
