"""The offline ``web_search`` backend: the workspace corpus through its retriever (paper §2.2).

:class:`WorkspaceIndex` is the retriever of the workspace, opened on first use and shared by
the tools that read it (``web_search`` local, ``document_read`` of corpus ids,
``medical_retriever``), so an agent loads the index once. :class:`LocalSearch` answers queries
from it with ``corpus://<doc_id>`` URLs, and :func:`snippet_for` picks the sentence a result
shows. Kept apart from the web API backends, which need a network and keys, not an index.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from medresearcher.config import RetrievalSettings
from medresearcher.errors import MedResearcherError
from medresearcher.retrieval import RetrieverBackend, open_index
from medresearcher.retrieval.open import index_exists
from medresearcher.retrieval.tokenize import tokenize
from medresearcher.tools.search_interface import SearchBackend, WebResult

__all__ = ["CORPUS_SCHEME", "IndexMissingError", "LocalSearch", "WorkspaceIndex", "snippet_for"]

CORPUS_SCHEME = "corpus://"
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
T = TypeVar("T")


class IndexMissingError(MedResearcherError):
    """The workspace has no retriever index, which the corpus tools need."""


class WorkspaceIndex:
    """The workspace's retriever, opened on first use and safe to share between tools.

    Searches run in a worker thread (they are CPU-bound and must not stall the event loop)
    one at a time under a lock: the document store reads by seek, which is not thread-safe.
    The lock is a thread lock taken inside the worker, so a tool call cancelled by its
    timeout cannot release it while the search is still running.
    """

    def __init__(
        self,
        folder: str | Path,
        settings: RetrievalSettings | None = None,
        *,
        retriever: RetrieverBackend | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.settings = settings or RetrievalSettings()
        self._retriever = retriever
        self._owned = retriever is None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self._retriever is not None or index_exists(self.settings, self.folder)

    def retriever(self) -> RetrieverBackend:
        """The retriever (opening it now if needed); a clear error when there is no index."""
        if self._retriever is None:
            if not index_exists(self.settings, self.folder):
                raise IndexMissingError(
                    f"no retriever index in {self.folder}: build one with "
                    "`medresearcher index build` (or run `make demo`)"
                )
            self._retriever = open_index(self.settings, self.folder)
        return self._retriever

    async def run(self, work: Callable[[RetrieverBackend], T]) -> T:
        """``work(retriever)`` in a worker thread, one call at a time."""

        def locked() -> T:
            with self._lock:
                return work(self.retriever())

        return await asyncio.to_thread(locked)

    def close(self) -> None:
        with self._lock:
            if self._owned and self._retriever is not None:
                self._retriever.close()  # type: ignore[attr-defined]  # every backend has close()
                self._retriever = None


def snippet_for(text: str, query: str, max_chars: int = 300) -> str:
    """The sentence of ``text`` sharing most words with ``query`` (plus the next ones that
    fit in ``max_chars``); the opening of the text when no sentence matches."""
    sentences = [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]
    if not sentences:
        return ""
    wanted = set(tokenize(query))
    scores = [len(wanted & set(tokenize(s))) for s in sentences]
    start = max(range(len(sentences)), key=lambda i: (scores[i], -i)) if wanted else 0
    if scores[start] == 0:
        start = 0
    out = sentences[start]
    for sentence in sentences[start + 1 :]:
        if len(out) + 1 + len(sentence) > max_chars:
            break
        out += " " + sentence
    return out if len(out) <= max_chars else out[: max_chars - 1].rstrip() + "…"


class LocalSearch(SearchBackend):
    """The workspace corpus through the retriever (Score = λ·Rel + (1−λ)·Auth, §2.2).

    A result's URL is ``corpus://<doc_id>``, which ``document_read`` reads offline; the
    document's own web address is kept as ``source_url``.
    """

    name = "local"

    def __init__(self, index: WorkspaceIndex) -> None:
        self.index = index

    async def search(self, query: str, k: int) -> list[WebResult]:
        hits = await self.index.run(lambda retriever: retriever.search(query, k=k))
        return [
            WebResult(
                title=hit.document.title,
                url=f"{CORPUS_SCHEME}{hit.document.doc_id}",
                snippet=snippet_for(hit.document.text, query),
                engine=self.name,
                source_type=hit.document.source_type,
                year=hit.document.year,
                doc_id=hit.document.doc_id,
                source_url=hit.document.url,
            )
            for hit in hits
        ]
