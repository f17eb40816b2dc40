"""The interface of ``web_search`` backends: one query in, :class:`WebResult` rows out.

Like a transport behind a client (docs/STYLE.md, httpx), a backend is a small interface with
interchangeable implementations: the workspace corpus
(:mod:`medresearcher.tools.local_search`) and the web search APIs
(:mod:`medresearcher.tools.web_search_apis`). This module holds only what both share, so
neither implementation depends on the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SearchBackend", "WebResult"]


@dataclass
class WebResult:
    """One search result as the model sees it and as the trajectory records it."""

    title: str
    url: str
    snippet: str
    engine: str
    source_type: str | None = None
    year: int | None = None
    doc_id: str | None = None
    source_url: str | None = None
    date: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class SearchBackend(ABC):
    """Answers one query with up to ``k`` results."""

    name: str

    @abstractmethod
    async def search(self, query: str, k: int) -> list[WebResult]: ...

    async def aclose(self) -> None:
        return None
