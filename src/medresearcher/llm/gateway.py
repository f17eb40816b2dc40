"""The gateway: the one way any part of the project calls a model.

It holds an :class:`EndpointClient` per configured endpoint (created on first use), the
shared response cache, and the usage of every call, which a run writes to its manifest.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx2
from pydantic import BaseModel

from medresearcher.config import Settings
from medresearcher.llm.cache import CacheMode, ResponseCache
from medresearcher.llm.endpoint import EndpointClient
from medresearcher.llm.structured import chat_structured
from medresearcher.llm.types import ChatResult, Usage
from medresearcher.workspace.layout import Workspace

__all__ = ["LLMGateway"]

T = TypeVar("T", bound=BaseModel)


class LLMGateway:
    """Named endpoints behind one object::

        async with LLMGateway(settings) as llm:
            result = await llm.chat("agent", [{"role": "user", "content": "Hello"}])
            verdict = await llm.structured("judge", messages, Verdict)

    Parameters
    ----------
    settings:
        The resolved configuration; endpoints come from its ``[llm.<name>]`` tables.
    cache_mode:
        Overrides ``[cache] mode``.
    cache_path:
        Overrides the workspace's ``cache/llm.sqlite``.
    transport:
        An httpx2 transport for every endpoint (tests, proxies).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        cache_mode: CacheMode | None = None,
        cache_path: str | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        mode = cache_mode or settings.cache.mode
        self._cache_path = cache_path or Workspace(settings.workspace).llm_cache_path
        self.cache = ResponseCache(self._cache_path, mode)
        # Endpoints whose own `cache` differs from the gateway's: one cache per mode, on the
        # same file (a judge cached while the agent is not).
        self._caches: dict[str, ResponseCache] = {mode: self.cache}
        self._explicit_mode = cache_mode  # a mode passed in here overrides every endpoint
        self._transport = transport
        self._endpoints: dict[str, EndpointClient] = {}

    async def __aenter__(self) -> LLMGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def endpoint(self, name: str) -> EndpointClient:
        """The client of endpoint ``name``; a ``ConfigError`` lists the known names."""
        if name not in self._endpoints:
            settings = self.settings.endpoint(name)
            cache = self.cache
            if settings.cache is not None and self._explicit_mode is None:
                if settings.cache not in self._caches:
                    self._caches[settings.cache] = ResponseCache(self._cache_path, settings.cache)
                cache = self._caches[settings.cache]
            self._endpoints[name] = EndpointClient(
                name, settings, cache=cache, transport=self._transport
            )
        return self._endpoints[name]

    async def chat(
        self, endpoint: str, messages: list[dict[str, Any]], **kwargs: Any
    ) -> ChatResult:
        """One chat completion; see :meth:`EndpointClient.chat` for the arguments."""
        return await self.endpoint(endpoint).chat(messages, **kwargs)

    async def structured(
        self, endpoint: str, messages: list[dict[str, Any]], schema: type[T], **params: Any
    ) -> T:
        """An answer validated as ``schema``, with one repair round (see ``llm.structured``)."""
        return await chat_structured(self.endpoint(endpoint), messages, schema, **params)

    def usage_report(self) -> dict[str, Any]:
        """Usage per endpoint and in total, ready for a run manifest."""
        total = Usage()
        report: dict[str, Any] = {}
        for name, client in sorted(self._endpoints.items()):
            report[name] = {"model": client.settings.model, **client.usage.to_dict()}
            total.add(client.usage)
        report["total"] = total.to_dict()
        return report

    async def aclose(self) -> None:
        for client in self._endpoints.values():
            await client.aclose()
        self._endpoints.clear()
        for cache in self._caches.values():
            cache.close()
