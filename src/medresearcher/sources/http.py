"""One async HTTP layer for every live source: rate limits, retries and an on-disk cache.

Why one layer and not a client per connector: NCBI, openFDA, ClinicalTrials.gov and Europe
PMC each throttle per IP and answer 429 when pushed, so pacing, ``Retry-After`` handling and
the "which host, which URL, why" error line must behave the same everywhere. The cache lets
an ingestion run be repeated (or resumed) without asking the APIs again. Keys travel as the
``api_key`` query parameter (NCBI, openFDA), so every URL that reaches a message, a log line
or the cache goes through :func:`redact_query` first, and the cache key never contains it.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx2
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from medresearcher import __version__
from medresearcher.cache import CacheMode, SqliteCache
from medresearcher.secrets import MASK, redact, redact_url
from medresearcher.sources.errors import SourceError

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "SourceHttp",
    "SourceResponse",
    "redact_query",
]

log = logging.getLogger(__name__)

Params = Mapping[str, Any] | None

NCBI_HOST = "eutils.ncbi.nlm.nih.gov"
NCBI_KEYED_RPS = 10.0
#: Requests per second per host, from each API's published (or commonly quoted) limit.
DEFAULT_RATE_LIMITS: dict[str, float] = {
    NCBI_HOST: 3.0,
    "api.fda.gov": 240 / 60,
    "clinicaltrials.gov": 50 / 60,
    "www.ebi.ac.uk": 10.0,
}
USER_AGENT = f"medresearcher/{__version__} (+https://github.com/medresearcher/medresearcher)"

_SECRET_PARAMS = frozenset({"api_key"})
_RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
_KEPT_HEADERS = ("content-type", "link", "etag", "last-modified")
_SECRET_IN_URL = re.compile(r"(?i)(api_key=)[^&#\s]*")


def redact_query(url: str) -> str:
    """The URL with ``api_key`` query values and any ``user:password@`` part masked."""
    return _SECRET_IN_URL.sub(rf"\g<1>{MASK}", redact_url(url))


class _RedactQueryFilter(logging.Filter):
    """Masks ``api_key=`` in httpx2's own "HTTP Request: GET <url>" INFO lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message.lower():
            record.msg, record.args = redact_query(message), None
        return True


_httpx_log = logging.getLogger("httpx2")
if not any(isinstance(f, _RedactQueryFilter) for f in _httpx_log.filters):
    _httpx_log.addFilter(_RedactQueryFilter())


def _merge(url: str, params: Params) -> tuple[str, list[tuple[str, str]]]:
    """Split ``url`` into (URL without query, query pairs + params); None values dropped.

    httpx replaces a URL's query with ``params``; merging here keeps a ``Link`` URL's own
    query and lets the cache key see every parameter.
    """
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    for name, value in (params or {}).items():
        if value is None:
            continue
        pairs = [(k, v) for k, v in pairs if k != name]
        values = value if isinstance(value, (list, tuple)) else [value]
        pairs.extend((name, str(v).lower() if isinstance(v, bool) else str(v)) for v in values)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), pairs


def cache_key(method: str, url: str, pairs: list[tuple[str, str]]) -> str:
    """SHA-256 of method + URL + sorted params, secrets left out (a new key still hits)."""
    kept = sorted((k, v) for k, v in pairs if k.lower() not in _SECRET_PARAMS)
    text = json.dumps([method.upper(), url, kept], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class SourceResponse:
    """A successful (or explicitly allowed) answer, live or from the cache."""

    url: str  # redacted
    status: int
    headers: dict[str, str]  # lower-case names; from the cache only the kept subset
    content: bytes
    data: Any = None  # what ``parse`` made of ``content``, when a parser was given
    from_cache: bool = False

    def error(self, problem: str) -> SourceError:
        """A :class:`SourceError` for a body that parsed but is not what the API promises."""
        host = urlsplit(self.url).hostname or self.url
        return SourceError(f"{host} ({self.url}): {problem}", host=host, url=self.url)

    @property
    def text(self) -> str:
        return httpx2.Response(200, content=self.content, headers=self.headers).text


class _StatusError(Exception):
    def __init__(self, status: int, headers: Mapping[str, str], cause: str) -> None:
        super().__init__(cause)
        self.status = status
        self.retry_after = _retry_after(headers)


class _MalformedBody(Exception):
    """A 2xx whose body the caller's parser rejected (often a truncated or HTML page)."""


@dataclass
class _Call:
    host: str
    url: str  # without query
    pairs: list[tuple[str, str]]
    shown: str  # redacted, for messages
    parse: Callable[[bytes], Any] | None
    what: str
    allow_status: Collection[int] = field(default_factory=tuple)


class SourceHttp:
    """The shared async client of the connectors; use it as ``async with SourceHttp(...)``.

    Parameters
    ----------
    cache_path:
        SQLite file of the HTTP cache (a workspace's ``cache/http.sqlite``); None: no cache.
    cache_mode, ttl_s:
        ``off``, ``read-write`` or ``replay`` (see :mod:`medresearcher.cache`); ``ttl_s``
        ignores entries older than that many seconds. Only 2xx responses are stored.
    rate_limits:
        host → requests per second (None: unlimited), over :data:`DEFAULT_RATE_LIMITS`.
        NCBI gets 10/s instead of 3/s for requests that carry an ``api_key``.
    default_rps:
        The pace for hosts named nowhere (None: unlimited).
    max_attempts, backoff_s, max_wait_s:
        Retries on 429/5xx/timeouts/broken connections: exponential backoff from
        ``backoff_s`` with jitter, or the server's ``Retry-After``, capped at ``max_wait_s``.
    transport:
        An httpx2 transport (tests); the default opens real connections.
    """

    def __init__(
        self,
        *,
        cache_path: str | Path | None = None,
        cache_mode: CacheMode = "read-write",
        ttl_s: float | None = None,
        rate_limits: Mapping[str, float | None] | None = None,
        default_rps: float | None = None,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        max_wait_s: float = 60.0,
        timeout_s: float = 30.0,
        transport: httpx2.AsyncBaseTransport | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.cache = (
            SqliteCache(cache_path, table="http_responses", mode=cache_mode, ttl_s=ttl_s)
            if cache_path is not None and cache_mode != "off"
            else None
        )
        self.rate_limits = dict(rate_limits or {})
        self.default_rps = default_rps
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self._client = httpx2.AsyncClient(
            transport=transport,
            timeout=httpx2.Timeout(timeout_s),
            headers={"User-Agent": user_agent},
            follow_redirects=True,
        )
        self._limiters: dict[tuple[str, bool], AsyncLimiter | None] = {}
        self._secrets: set[str] = set()

    async def __aenter__(self) -> SourceHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
        if self.cache is not None:
            self.cache.close()

    async def get_json(self, url: str, params: Params = None) -> Any:
        """The parsed JSON body; malformed JSON raises :class:`SourceError` naming line/col."""
        return (await self.request(url, params, parse=json.loads, what="JSON")).data

    async def get_text(self, url: str, params: Params = None) -> str:
        return (await self.request(url, params)).text

    async def get_bytes(self, url: str, params: Params = None) -> bytes:
        return (await self.request(url, params)).content

    async def request(
        self,
        url: str,
        params: Params = None,
        *,
        parse: Callable[[bytes], Any] | None = None,
        what: str = "body",
        allow_status: Collection[int] = (),
    ) -> SourceResponse:
        """GET ``url`` with ``params``; the response with its headers (and ``parse``'s result).

        ``parse`` runs inside the retry loop and before caching: a body it rejects with
        ``ValueError`` is retried, never cached, and ends in "malformed <what> from <host>".
        Statuses in ``allow_status`` are returned, not raised (openFDA's 404 = no results).
        """
        base, pairs = _merge(url, params)
        for name, value in pairs:
            if name.lower() in _SECRET_PARAMS and len(value) >= 4:  # shorter would mask words
                self._secrets.add(value)
        host = urlsplit(base).hostname or base
        shown = redact_query(f"{base}?{urlencode(pairs)}" if pairs else base)
        call = _Call(host, base, pairs, shown, parse, what, allow_status)
        key = cache_key("GET", base, pairs)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                meta, body = hit
                response = SourceResponse(
                    shown, meta["status"], meta["headers"], body, from_cache=True
                )
                try:
                    response.data = parse(body) if parse else None
                    log.debug("cache hit %s", shown)
                    return response
                except ValueError:
                    log.warning("ignoring an unreadable cached response for %s", shown)
            if self.cache.mode == "replay":
                raise SourceError(
                    f"{host} ({shown}): not in the HTTP cache and the cache is in replay mode",
                    host=host,
                    url=shown,
                )
        response = await self._with_retries(call)
        if self.cache is not None and 200 <= response.status < 300:
            kept = {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers}
            meta = {"url": shown, "status": response.status, "headers": kept}
            self.cache.put(key, meta, response.content)
        return response

    async def _with_retries(self, call: _Call) -> SourceResponse:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            before_sleep=lambda state: self._log_retry(call, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(call)
        except Exception as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise self._final_error(call, exc, attempts) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, call: _Call) -> SourceResponse:
        limiter = self._limiter(call.host, any(k.lower() == "api_key" for k, _ in call.pairs))
        if limiter is not None:
            await limiter.acquire()
        log.debug("GET %s", call.shown)
        resp = await self._client.get(call.url, params=call.pairs)
        headers = {name.lower(): value for name, value in resp.headers.items()}
        result = SourceResponse(call.shown, resp.status_code, headers, resp.content)
        if resp.status_code in call.allow_status:
            return result
        if resp.status_code >= 400:
            raise _StatusError(resp.status_code, headers, _error_cause(resp.content))
        if call.parse is not None:
            try:
                result.data = call.parse(resp.content)
            except ValueError as exc:
                raise _MalformedBody(str(exc)) from None
        return result

    def _limiter(self, host: str, keyed: bool) -> AsyncLimiter | None:
        slot = (host, keyed and host == NCBI_HOST)
        if slot not in self._limiters:
            if host in self.rate_limits:
                rps = self.rate_limits[host]
            elif slot[1]:
                rps = NCBI_KEYED_RPS
            else:
                rps = DEFAULT_RATE_LIMITS.get(host, self.default_rps)
            # max_rate=1 per 1/rps seconds: an even pace with no initial burst.
            self._limiters[slot] = AsyncLimiter(1, 1.0 / rps) if rps else None
        return self._limiters[slot]

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _StatusError) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_wait_s)
        base = self.backoff_s
        backoff = base * 2 ** (state.attempt_number - 1) + random.uniform(0, base)
        return min(backoff, self.max_wait_s)

    def _log_retry(self, call: _Call, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s attempt %d failed (%s); retrying in %.2f s",
            call.shown,
            state.attempt_number,
            redact(self._describe(exc, call), self._secrets),
            wait,
        )

    def _describe(self, exc: BaseException | None, call: _Call) -> str:
        if isinstance(exc, _StatusError):
            return f"HTTP {exc.status}: {exc}"
        if isinstance(exc, _MalformedBody):
            return f"malformed {call.what}: {exc}"
        if isinstance(exc, httpx2.TimeoutException):
            return f"timed out after {self.timeout_s:g} s"
        if isinstance(exc, httpx2.RemoteProtocolError):
            return f"connection broken mid-response, body truncated ({exc})"
        if isinstance(exc, httpx2.ConnectError):
            return f"cannot connect ({exc})"
        return f"{type(exc).__name__}: {exc}"

    def _final_error(self, call: _Call, exc: BaseException, attempts: int) -> SourceError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        status = exc.status if isinstance(exc, _StatusError) else None
        if isinstance(exc, _StatusError):
            message = f"{call.host} ({call.shown}): HTTP {status}{tries}: {exc}"
        elif isinstance(exc, _MalformedBody):
            message = f"malformed {call.what} from {call.host} ({call.shown}): {exc}"
            message += f" ({attempts} attempts)" if attempts > 1 else ""
        else:
            message = f"{call.host} ({call.shown}): failed{tries}: {self._describe(exc, call)}"
        return SourceError(
            redact(message, self._secrets),
            host=call.host,
            url=call.shown,
            status=status,
            attempts=attempts,
        )


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, _StatusError):
        return exc.status in _RETRYABLE_STATUS
    return isinstance(
        exc,
        (_MalformedBody, httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError),
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: ``Retry-After`` as seconds or as an HTTP date."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_cause(body: bytes) -> str:
    """A short cause from an error body: the API's own message when it sends one."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        inner = data.get("error", data.get("errMsg", data.get("message")))
        if isinstance(inner, dict):
            inner = inner.get("message") or inner.get("code")
        if isinstance(inner, str) and inner:
            return inner[:300]
    text = re.sub(r"<[^>]+>", " ", text)  # an HTML error page
    return " ".join(text.split())[:300] or "no error message"
