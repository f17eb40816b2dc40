"""PrivateMedicalRetriever: Score(d, q) = λ·Rel(d, q) + (1 − λ)·Auth(d), λ = 0.4 (§2.2).

Hybrid relevance (BM25 + dense cosine) over the workspace corpus, re-ranked by clinical
authority (source type, journal impact, recency). Build an index with
:func:`build_index` (or ``medresearcher index build``), then search it through
:class:`EmbeddedRetriever` or any other :class:`RetrieverBackend`.
"""

from medresearcher.retrieval.authority import authority_score, authority_scores
from medresearcher.retrieval.backend import (
    EntityHit,
    RetrieverBackend,
    SearchFilters,
    SearchHit,
    entity_of,
)
from medresearcher.retrieval.open import open_index, open_retriever
from medresearcher.retrieval.retriever import EmbeddedRetriever, build_index, document_text

__all__ = [
    "EmbeddedRetriever",
    "EntityHit",
    "RetrieverBackend",
    "SearchFilters",
    "SearchHit",
    "authority_score",
    "authority_scores",
    "build_index",
    "document_text",
    "entity_of",
    "open_index",
    "open_retriever",
]
