"""The retriever's small public face: filters, hits, and the backend protocol.

Callers (the agent's tool, the CLI, discovery in the knowledge graph) depend only on
:class:`RetrieverBackend`, so a server engine (OpenSearch, Milvus) can stand in for the
embedded one without touching them, the way httpx swaps transports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from medresearcher.schema import Document

__all__ = ["RetrieverBackend", "SearchFilters", "SearchHit"]


@dataclass(frozen=True)
class SearchFilters:
    """Restrict a search; every field that is set must hold for a document to be returned."""

    source_types: frozenset[str] = frozenset()
    year_from: int | None = None
    year_to: int | None = None
    entity_ids: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        source_types: Sequence[str] = (),
        year_from: int | None = None,
        year_to: int | None = None,
        entity_ids: Sequence[str] = (),
    ) -> SearchFilters:
        return cls(frozenset(source_types), year_from, year_to, frozenset(entity_ids))

    @property
    def active(self) -> bool:
        return bool(self.source_types or self.entity_ids) or (
            self.year_from is not None or self.year_to is not None
        )


@dataclass
class SearchHit:
    """One result with every part of its score, so a user can see why it ranks where it does.

    ``score`` = λ·``relevance`` + (1 − λ)·``authority`` inside the re-ranked window;
    ``lexical`` and ``dense`` are the normalised parts of ``relevance``.
    """

    document: Document
    score: float
    relevance: float
    authority: float
    lexical: float = 0.0
    dense: float | None = None
    reranked: bool = True
    extra: dict[str, float] = field(default_factory=dict)


class RetrieverBackend(Protocol):
    """What every retriever engine offers."""

    @property
    def n_docs(self) -> int: ...

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters | None = None,
        relevance_weight: float | None = None,
    ) -> list[SearchHit]: ...

    def document(self, doc_id: str) -> Document | None: ...
