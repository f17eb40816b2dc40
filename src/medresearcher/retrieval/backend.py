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

__all__ = ["EntityHit", "RetrieverBackend", "SearchFilters", "SearchHit", "entity_of"]


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


@dataclass
class EntityHit:
    """An entity-level result: the entity's best document, and every document it has.

    Twins (an Orphanet disorder and its Disease Ontology term) share the entity, so a
    question about one disease gets one result, not two near-copies.
    """

    entity_id: str
    best: SearchHit
    doc_ids: list[str]


def entity_of(document: Document) -> str:
    """The entity a document is about: its Orphanet id when it has one (twins resolve to
    the Orphanet record), else its first linked entity, else the document itself."""
    for entity in document.entity_ids:
        if entity.startswith("ORPHA:"):
            return entity
    return document.entity_ids[0] if document.entity_ids else document.doc_id


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

    def search_entities(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters | None = None,
        relevance_weight: float | None = None,
    ) -> list[EntityHit]: ...

    def document(self, doc_id: str) -> Document | None: ...
