"""The web ``web_search`` backends: Serper (Google results), Tavily, Brave and SearXNG.

Each is a JSON API behind one shared client with a few retries on 429/5xx. Keys come from the
environment variable that ``[tools] web_search_api_key_env`` names (or the usual default per
API), travel in headers, and are masked in every error message. Base URLs can be overridden
(a proxy; the tests' fake server). Kept apart from the offline corpus backend
(:mod:`medresearcher.tools.local_search`): these need a network and keys, not an index.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import random
import re
from collections.abc import Mapping
from typing import Any

import httpx2

from medresearcher import __version__
from medresearcher.errors import ConfigError, MedResearcherError
from medresearcher.secrets import redact
from medresearcher.tools.search_interface import SearchBackend, WebResult

__all__ = [
    "API_BACKENDS",
    "BraveSearch",
    "SearchBackendError",
    "SearxngSearch",
    "SerperSearch",
    "TavilySearch",
]

log = logging.getLogger(__name__)

DEFAULT_KEY_ENV = {"serper": "SERPER_API_KEY", "tavily": "TAVILY_API_KEY", "brave": "BRAVE_API_KEY"}
USER_AGENT = f"medresearcher/{__version__} (web_search)"
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
_TAG = re.compile(r"<[^>]+>")


class SearchBackendError(MedResearcherError):
    """A web search API failed (status, network, malformed answer); the key is masked."""


class _ApiBackend(SearchBackend):
    """A JSON web search API: one client, a few retries on 429/5xx, the key never shown."""

    default_url: str
    key_env_default: str | None = None

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key_env: str | None = None,
        timeout_s: float = 20.0,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = (base_url or self.default_url).rstrip("/")
        self.api_key_env = api_key_env or self.key_env_default
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self._environ = environ
        self.timeout_s = timeout_s
        self._client: httpx2.AsyncClient | None = None

    def api_key(self) -> str:
        """The key from the environment, read at call time; a ConfigError names the variable."""
        env = os.environ if self._environ is None else self._environ
        key = env.get(self.api_key_env or "", "")
        if not key:
            raise ConfigError(
                f"web_search backend {self.name!r} needs an API key in the environment "
                f'variable {self.api_key_env} (or set [tools] web_search_backend = "local")'
            )
        return key

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = httpx2.AsyncClient(
                timeout=httpx2.Timeout(self.timeout_s),
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            )
        return self._client

    async def _call(
        self,
        method: str,
        path: str,
        *,
        secret: str = "",
        **kwargs: Any,
    ) -> Any:
        url = f"{self.base_url}{path}"
        secrets = {secret} if secret else set()
        problem = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            wait = self.backoff_s * 2 ** (attempt - 1) + random.uniform(0, self.backoff_s)
            try:
                response = await self._http().request(method, url, **kwargs)
            except httpx2.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise self._error(url, f"malformed JSON ({exc})", secrets) from None
                problem = f"HTTP {response.status_code}: {_cause(response)}"
                if response.status_code not in _RETRYABLE:
                    break
                after = response.headers.get("retry-after", "")
                if after.replace(".", "", 1).isdigit():
                    wait = min(float(after), 10.0)
            if attempt < self.max_attempts:
                shown = redact(problem, secrets)
                log.warning("%s: %s; retrying in %.1f s", self.name, shown, wait)
                await asyncio.sleep(wait)
        raise self._error(url, problem, secrets)

    def _error(self, url: str, problem: str, secrets: set[str]) -> SearchBackendError:
        return SearchBackendError(redact(f"{self.name} search ({url}): {problem}", secrets))


class SerperSearch(_ApiBackend):
    """Google results through serper.dev: ``POST /search`` with ``X-API-KEY``."""

    name = "serper"
    default_url = "https://google.serper.dev"
    key_env_default = DEFAULT_KEY_ENV["serper"]

    async def search(self, query: str, k: int) -> list[WebResult]:
        key = self.api_key()
        data = await self._call(
            "POST", "/search", secret=key, headers={"X-API-KEY": key}, json={"q": query, "num": k}
        )
        return _results(_rows(data, "organic"), self.name, k, url="link", snippet="snippet")


class TavilySearch(_ApiBackend):
    """Tavily: ``POST /search`` with a bearer key; ``content`` is its extracted snippet."""

    name = "tavily"
    default_url = "https://api.tavily.com"
    key_env_default = DEFAULT_KEY_ENV["tavily"]

    async def search(self, query: str, k: int) -> list[WebResult]:
        key = self.api_key()
        body = {"query": query, "max_results": k, "search_depth": "basic"}
        data = await self._call(
            "POST", "/search", secret=key, headers={"Authorization": f"Bearer {key}"}, json=body
        )
        rows = _rows(data, "results")
        return _results(rows, self.name, k, snippet="content", dates=("published_date",))


class BraveSearch(_ApiBackend):
    """Brave Search: ``GET /res/v1/web/search`` with ``X-Subscription-Token``."""

    name = "brave"
    default_url = "https://api.search.brave.com"
    key_env_default = DEFAULT_KEY_ENV["brave"]

    async def search(self, query: str, k: int) -> list[WebResult]:
        key = self.api_key()
        data = await self._call(
            "GET",
            "/res/v1/web/search",
            secret=key,
            headers={"X-Subscription-Token": key},
            params={"q": query, "count": min(k, 20)},
        )
        web = data.get("web") if isinstance(data, dict) else None
        rows = _rows(web, "results")
        return _results(rows, self.name, k, snippet="description", dates=("page_age", "age"))


class SearxngSearch(_ApiBackend):
    """A SearXNG instance: ``GET /search?format=json`` (the instance must enable JSON)."""

    name = "searxng"
    default_url = ""

    def api_key(self) -> str:  # SearXNG instances take no key
        return ""

    async def search(self, query: str, k: int) -> list[WebResult]:
        if not self.base_url:
            raise ConfigError("web_search backend 'searxng' needs [tools] searxng_url")
        data = await self._call("GET", "/search", params={"q": query, "format": "json"})
        rows = _rows(data, "results")
        return _results(rows, self.name, k, snippet="content", dates=("publishedDate",))


API_BACKENDS: dict[str, type[_ApiBackend]] = {
    "serper": SerperSearch,
    "tavily": TavilySearch,
    "brave": BraveSearch,
    "searxng": SearxngSearch,
}


def _rows(data: Any, key: str) -> list[dict[str, Any]]:
    rows = data.get(key) if isinstance(data, dict) else None
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise SearchBackendError(f"unexpected search response: {key!r} is not a list")
    return [row for row in rows if isinstance(row, dict)]


def _results(
    rows: list[dict[str, Any]],
    engine: str,
    k: int,
    *,
    url: str = "url",
    snippet: str,
    dates: tuple[str, ...] = ("date",),
) -> list[WebResult]:
    """The first ``k`` rows that have a URL, read by each API's own field names."""
    return [
        WebResult(
            title=_clean(row.get("title")),
            url=str(row[url]),
            snippet=_clean(row.get(snippet)),
            engine=engine,
            date=next((row[d] for d in dates if row.get(d)), None),
        )
        for row in rows[:k]
        if row.get(url)
    ]


def _clean(value: Any) -> str:
    """Plain text: HTML tags (Brave's <strong>) and entities removed, spaces collapsed."""
    return " ".join(html.unescape(_TAG.sub("", str(value or ""))).split())


def _cause(response: httpx2.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return " ".join(_TAG.sub(" ", response.text).split())[:200] or "no message"
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("detail") or json.dumps(value)
            if value:
                return str(value)[:200]
    return json.dumps(data)[:200]
