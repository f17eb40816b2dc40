"""Where ``web_search`` looks: the workspace corpus (offline default) or a web search API.

Each backend answers one query with :class:`WebResult` rows (title, URL, snippet). The web
APIs are Serper (Google results), Tavily, Brave and a SearXNG instance; keys come from the
environment variable that ``[tools] web_search_api_key_env`` names (or the usual default per
API), travel in headers, and are masked in every error message. Base URLs can be overridden
(a proxy; the tests' fake server).

:class:`WorkspaceIndex` is the retriever of the workspace, opened on first use and shared by
the tools that read it (``web_search`` local, ``document_read`` of corpus ids,
``medical_retriever``), so an agent loads the index once.

This module is the front: :func:`make_search_backend` picks a backend from the settings, and
every public name of the parts is re-exported here. The interface lives in
:mod:`medresearcher.tools.search_interface`, the corpus backend in
:mod:`medresearcher.tools.local_search`, the web APIs in
:mod:`medresearcher.tools.web_search_apis`.
"""

from __future__ import annotations

from medresearcher.stage_settings import ToolSettings
from medresearcher.tools.local_search import (
    CORPUS_SCHEME,
    IndexMissingError,
    LocalSearch,
    WorkspaceIndex,
    snippet_for,
)
from medresearcher.tools.search_interface import SearchBackend, WebResult
from medresearcher.tools.web_search_apis import (
    API_BACKENDS,
    BraveSearch,
    SearchBackendError,
    SearxngSearch,
    SerperSearch,
    TavilySearch,
)

__all__ = [
    "CORPUS_SCHEME",
    "BraveSearch",
    "IndexMissingError",
    "LocalSearch",
    "SearchBackend",
    "SearchBackendError",
    "SearxngSearch",
    "SerperSearch",
    "TavilySearch",
    "WebResult",
    "WorkspaceIndex",
    "make_search_backend",
    "snippet_for",
]


def make_search_backend(
    settings: ToolSettings, index: WorkspaceIndex, *, base_url: str | None = None
) -> SearchBackend:
    """The backend ``[tools] web_search_backend`` names (``base_url`` overrides the API's)."""
    name = settings.web_search_backend
    if name == "local":
        return LocalSearch(index)
    cls = API_BACKENDS[name]
    if name == "searxng":
        base_url = base_url or settings.searxng_url
    return cls(
        base_url=base_url,
        api_key_env=settings.web_search_api_key_env,
        timeout_s=min(settings.timeout_s, 30.0),
    )
