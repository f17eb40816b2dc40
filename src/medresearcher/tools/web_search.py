"""``web_search``: several queries in one call, title, URL and snippet per result (§2.2).

The paper's general tools search the web and read pages. Here the search backend is chosen
in ``[tools] web_search_backend``: ``local`` (the retriever over the workspace corpus, the
offline default; its URLs are ``corpus://<doc_id>``, which ``document_read`` reads), or a web
API (Serper, Tavily, Brave, SearXNG; :mod:`medresearcher.tools.search_backends`).

Queries of one call run concurrently; a query that fails is reported next to the ones that
answered, and only a call in which every query failed is an error observation.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medresearcher.tools.base import Observation, Tool
from medresearcher.tools.search_backends import SearchBackend, WebResult

__all__ = ["MAX_QUERIES", "WebSearchArguments", "WebSearchTool"]

MAX_QUERIES = 5


class WebSearchArguments(BaseModel):
    """Arguments of ``web_search``."""

    model_config = ConfigDict(extra="forbid")

    queries: list[str] = Field(
        min_length=1,
        max_length=MAX_QUERIES,
        description=f"1 to {MAX_QUERIES} search queries, run together; vary the wording "
        "(synonyms, gene symbols, key signs) to cover more ground in one call.",
    )

    @field_validator("queries", mode="before")
    @classmethod
    def _one_query_is_a_list(cls, value: Any) -> Any:
        """Models often send one string; accept it as a one-query list."""
        return [value] if isinstance(value, str) else value

    @field_validator("queries")
    @classmethod
    def _not_blank(cls, value: list[str]) -> list[str]:
        queries = [" ".join(q.split()) for q in value]
        if not all(queries):
            raise ValueError("a query is empty")
        return list(dict.fromkeys(queries))  # the same query twice is asked once


class WebSearchTool(Tool):
    """Search with the configured backend; see the module docstring."""

    name = "web_search"
    description = (
        "Search the web (offline: the local medical corpus) with one or more queries at once. "
        "Returns, per query, results with title, URL and snippet. Read a result in full with "
        "document_read."
    )
    Arguments = WebSearchArguments

    def __init__(
        self, backend: SearchBackend, *, results_per_query: int = 5, timeout_s: float = 60.0
    ) -> None:
        self.backend = backend
        self.results_per_query = results_per_query
        self.timeout_s = timeout_s

    async def run(self, arguments: WebSearchArguments) -> Observation:
        k = self.results_per_query
        outcomes = await asyncio.gather(
            *(self.backend.search(query, k) for query in arguments.queries),
            return_exceptions=True,
        )
        for outcome in outcomes:  # a cancelled search must not look like a failed one
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
        where = "local corpus" if self.backend.name == "local" else self.backend.name
        lines: list[str] = []
        queries: list[dict[str, Any]] = []
        sources: list[str] = []
        shown: dict[str, int] = {}
        failures = 0
        for query, outcome in zip(arguments.queries, outcomes, strict=True):
            lines.append(f"## {query}  ({where})")
            if isinstance(outcome, BaseException):
                failures += 1
                lines.append(f"  search failed: {type(outcome).__name__}: {outcome}")
                queries.append({"query": query, "results": [], "error": str(outcome)})
                continue
            if not outcome:
                lines.append("  no results")
            for result in outcome:
                if result.url in shown:
                    lines.append(f"[{shown[result.url]}] (again) {result.title}")
                    continue
                shown[result.url] = len(shown) + 1
                lines.extend(_describe(shown[result.url], result))
                source = result.doc_id or result.url
                if source not in sources:
                    sources.append(source)
            queries.append({"query": query, "results": [r.to_dict() for r in outcome]})
        return Observation(
            text="\n".join(lines),
            payload={"backend": self.backend.name, "queries": queries},
            sources=sources,
            error=failures == len(arguments.queries),
        )

    async def aclose(self) -> None:
        await self.backend.aclose()


def _describe(number: int, result: WebResult) -> list[str]:
    about = ", ".join(str(x) for x in (result.source_type, result.year or result.date) if x)
    head = f"[{number}] {result.title or '(untitled)'} — {result.url}"
    lines = [f"{head} ({about})" if about else head]
    if result.snippet:
        lines.append(f"    {result.snippet}")
    return lines
