"""Score(d, q) = λ·Rel(d, q) + (1 − λ)·Auth(d) over a candidate set (paper §2.2), shared by
every retriever backend.

The embedded engine and the Milvus backend find candidates differently (bm25s and numpy
against Milvus's BM25 function and vector search), but from the candidates on they must
rank identically, so the normalisation, the fusion of BM25 with cosine and the authority
re-rank window live here once. See :mod:`medresearcher.retrieval.retriever` for why the
defaults are what they are (convex fusion, relevance floor 0.8).

Candidates are addressed by their position in the arrays passed in; callers keep them in
ascending document position so that ties break the same way in every backend. The shape of
the results (:func:`ranked_hits`, :func:`rank_entities`) is shared too; a backend supplies
only how it fetches documents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from medresearcher.config import RetrievalSettings
from medresearcher.retrieval.backend import EntityHit, SearchFilters, SearchHit, entity_of
from medresearcher.schema import Document

__all__ = [
    "RRF_K",
    "fuse",
    "min_max",
    "normalised_bm25",
    "rank_entities",
    "ranked_hits",
    "rerank",
    "rrf",
]

RRF_K = 60


def normalised_bm25(candidates: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """BM25 / the query's best BM25 over the sorted ``candidates``, 0 where BM25 did not
    return a candidate."""
    out = np.zeros(candidates.size, dtype=np.float64)
    if ids.size:
        out[np.searchsorted(candidates, ids)] = scores / float(scores.max())
    return out


def min_max(values: np.ndarray) -> np.ndarray:
    """Cosine scaled to [0, 1] over the candidates (lexical-only candidates included)."""
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        return np.ones_like(values)
    return (values - low) / (high - low)


def rrf(candidates: np.ndarray, ranked_ids: np.ndarray) -> np.ndarray:
    """Reciprocal-rank scores 1 / (k + rank) of ``ranked_ids`` (best first) on ``candidates``."""
    out = np.zeros(candidates.size, dtype=np.float64)
    positions = np.searchsorted(candidates, ranked_ids)
    out[positions] = 1.0 / (RRF_K + np.arange(1, ranked_ids.size + 1))
    return out


def fuse(
    settings: RetrievalSettings,
    candidates: np.ndarray,
    lexical: np.ndarray,
    dense: np.ndarray | None,
    lex_ids: np.ndarray,
    dense_ids: np.ndarray,
) -> np.ndarray:
    """Rel: normalised BM25 alone, or fused with the dense part (convex or RRF)."""
    if dense is None:
        return lexical
    if settings.fusion == "rrf":
        score = rrf(candidates, lex_ids) + rrf(candidates, dense_ids)
        return score / (2.0 / (RRF_K + 1))
    weight = settings.dense_weight
    return (1.0 - weight) * lexical + weight * dense


def rerank(
    relevance: np.ndarray, authority: np.ndarray, lam: float, settings: RetrievalSettings
) -> tuple[list[int], np.ndarray, set[int]]:
    """The final order of the candidates: (positions best first, scores, re-ranked set).

    Authority re-ranks only the window: the ``rerank_depth`` most relevant candidates whose
    Rel ≥ ``relevance_floor`` × the best Rel; the rest follow in relevance order, so an
    irrelevant authoritative document is never lifted above a relevant one.
    """
    order = np.argsort(-relevance, kind="stable")
    best = float(relevance[order[0]])
    window = [
        int(i)
        for i in order[: settings.rerank_depth]
        if relevance[i] >= settings.relevance_floor * best
    ]
    in_window = set(window)
    score = lam * relevance + (1.0 - lam) * authority
    reranked = sorted(window, key=lambda i: (-score[i], -relevance[i]))
    rest = [int(i) for i in order if int(i) not in in_window]
    return reranked + rest, score, in_window


def ranked_hits(
    relevance: np.ndarray,
    authority: np.ndarray,
    lexical: np.ndarray,
    dense: np.ndarray | None,
    lam: float,
    settings: RetrievalSettings,
    k: int,
    documents: Callable[[list[int]], Sequence[Document]],
) -> list[SearchHit]:
    """The ``k`` best candidates as hits carrying every part of their score.

    ``documents`` maps candidate indices (best first) to their documents, in that order:
    the one thing a backend does its own way here.
    """
    order, score, in_window = rerank(relevance, authority, lam, settings)
    top = order[:k]
    return [
        SearchHit(
            document=document,
            score=float(score[i]),
            relevance=float(relevance[i]),
            authority=float(authority[i]),
            lexical=float(lexical[i]),
            dense=None if dense is None else float(dense[i]),
            reranked=i in in_window,
        )
        for i, document in zip(top, documents(top), strict=True)
    ]


def rank_entities(
    search: Callable[..., list[SearchHit]],
    documents_of: Callable[[list[str]], Mapping[str, list[str]]],
    settings: RetrievalSettings,
    query: str,
    *,
    k: int,
    filters: SearchFilters | None,
    relevance_weight: float | None,
    use_dense: bool,
) -> list[EntityHit]:
    """The ``k`` best entities for ``query``, each with its best-ranked document and all its
    documents.

    ``search`` is the backend's document search, run wider (5·k, at least ``candidates``)
    with ``entity_field_weights``; twins and several documents of one disease count once,
    at their best rank. ``documents_of`` gives each chosen entity's document ids in corpus
    order (the best hit's own document stands in when none is linked).
    """
    hits = search(
        query,
        k=max(5 * k, settings.candidates),
        filters=filters,
        relevance_weight=relevance_weight,
        use_dense=use_dense,
        field_weights=settings.entity_field_weights,
    )
    best: dict[str, SearchHit] = {}
    for hit in hits:
        best.setdefault(entity_of(hit.document), hit)
    chosen = list(best.items())[:k]
    linked = documents_of([entity for entity, _ in chosen]) if chosen else {}
    return [
        EntityHit(entity, hit, list(linked.get(entity, [])) or [hit.document.doc_id])
        for entity, hit in chosen
    ]
