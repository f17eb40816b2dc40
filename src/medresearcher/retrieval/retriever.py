"""PrivateMedicalRetriever: hybrid relevance re-ranked by clinical authority (paper §2.2).

    Score(d, q) = λ·Rel(d, q) + (1 − λ)·Auth(d),   λ = 0.4 by default

**Rel** fuses BM25 and dense cosine. The default is a convex combination of normalised
scores with the dense share at 0.3: on our corpus (measurements.md, and
``benchmarks/bench_retrieval.py`` in the same run) RRF lost to BM25 alone on descriptive
rare-disease questions, because rank fusion gives a weak list as much say as a strong one,
while a convex mix with dense weighted ≤ 0.5 kept BM25's precision and added dense recall.
BM25 is divided by the query's best BM25 score; cosine is min-max scaled over the
candidates, both to [0, 1].

RRF is available (``fusion = "rrf"``) but flattens scores: the top ranks of both lists
score almost alike, so far more documents pass the relevance floor and authority decides
among them (known-item MRR at λ = 0.4 fell from .96 to .54 in the benchmark). Use it with
λ = 1.

**Auth** re-ranks only the top of the relevance list: documents within ``rerank_depth``
whose Rel is at least ``relevance_floor`` × the best Rel. The rest follow in relevance
order. So authority decides between comparably relevant documents and never lifts an
irrelevant authoritative one above a relevant one.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from medresearcher.config import RetrievalSettings
from medresearcher.errors import InputError
from medresearcher.retrieval.authority import authority_scores, journal_impacts, load_impact_table
from medresearcher.retrieval.backend import EntityHit, SearchFilters, SearchHit
from medresearcher.retrieval.dense import DenseIndex, Embedder, HashingEmbedder, MiniLMEmbedder
from medresearcher.retrieval.docstore import DocStore, write_docstore
from medresearcher.retrieval.embedding_cache import CachedEmbedder
from medresearcher.retrieval.fielded import FieldedLexicalIndex
from medresearcher.retrieval.ranking import (
    fuse,
    min_max,
    normalised_bm25,
    rank_entities,
    ranked_hits,
)
from medresearcher.retrieval.topk import top_k
from medresearcher.schema import Document

__all__ = ["INDEX_FORMAT", "EmbeddedRetriever", "build_index", "document_text", "embedder_for"]

log = logging.getLogger(__name__)

INDEX_FORMAT = 2
MANIFEST = "index.json"


def document_text(doc: Document) -> str:
    """What both indexes read: the title, then the text."""
    return f"{doc.title}\n{doc.text}"


def build_index(
    documents: Iterable[Document],
    folder: str | Path,
    *,
    embedder: Embedder | None = None,
    embedding_cache: str | Path | None = None,
    source: str = "",
    progress: bool = False,
) -> dict:
    """Build the lexical (and, with ``embedder``, dense) index of ``documents`` in ``folder``.

    The lexical index has a field per named text of the documents (``Document.fields``)
    besides the body. With ``embedding_cache`` (an SQLite file), vectors are reused across
    builds: only new or changed texts are embedded. The index is built beside the target
    and moved into place at the end, so an interrupted build never damages the index
    already there. Returns the manifest.
    """
    folder = Path(folder)
    staging = folder.with_name(folder.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    texts: list[str] = []
    fields: list[dict[str, str]] = []

    def collect(docs: Iterable[Document]) -> Iterable[Document]:
        for doc in docs:
            texts.append(document_text(doc))
            fields.append(doc.fields)
            yield doc

    started = time.perf_counter()
    n_docs = write_docstore(staging, collect(documents))
    if n_docs == 0:
        shutil.rmtree(staging)
        raise InputError(f"{source or 'corpus'}: no documents to index")
    t_lex = time.perf_counter()
    lexical = FieldedLexicalIndex.build(texts, fields, progress=progress)
    lexical.save(staging / "lexical")
    lexical_s = time.perf_counter() - t_lex
    dense_info = None
    if embedder is not None:
        t_dense = time.perf_counter()
        encoder = CachedEmbedder(embedder, embedding_cache) if embedding_cache else embedder
        DenseIndex.build(texts, encoder, progress=progress).save(staging / "dense")
        dense_s = time.perf_counter() - t_dense
        dense_info = {
            "model": embedder.name,
            "dim": embedder.dim,
            "build_s": round(dense_s, 2),
            "docs_per_s": round(n_docs / dense_s, 1),
            "embedded": getattr(encoder, "encoded", n_docs),
        }
    manifest = {
        "format": INDEX_FORMAT,
        "source": source,
        "n_docs": n_docs,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_s": round(time.perf_counter() - started, 2),
        "lexical": {
            "engine": "bm25s",
            "fields": lexical.fields,
            "build_s": round(lexical_s, 2),
            "docs_per_s": round(n_docs / max(lexical_s, 1e-9), 1),
        },
        "dense": dense_info,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return manifest


class EmbeddedRetriever:
    """The in-process backend: bm25s + exact cosine over numpy, authority in numpy.

    Parameters
    ----------
    folder:
        An index written by :func:`build_index` (``<workspace>/index``).
    settings:
        ``[retrieval]``: λ, fusion, candidate depth, authority weights.
    embedder:
        Encodes queries for the dense index; by default the model the index was built with.
    current_year:
        "Now" for the recency part of authority (fixed in tests and benchmarks).
    """

    def __init__(
        self,
        folder: str | Path,
        settings: RetrievalSettings | None = None,
        *,
        embedder: Embedder | None = None,
        current_year: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        if not manifest_path.is_file():
            raise InputError(
                f"{self.folder}: no index here; build one with `medresearcher index build`"
            )
        self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if self.manifest.get("format") != INDEX_FORMAT:
            raise InputError(
                f"{manifest_path}: index format {self.manifest.get('format')}, "
                f"this version reads {INDEX_FORMAT}: rebuild the index"
            )
        self.settings = settings or RetrievalSettings()
        self.docs = DocStore(self.folder)
        self.lexical = FieldedLexicalIndex.load(self.folder / "lexical")
        self.dense: DenseIndex | None = None
        self.embedder = embedder
        if self.manifest.get("dense"):
            self.dense = DenseIndex.load(self.folder / "dense")
            if self.embedder is None:
                self.embedder = embedder_for(self.manifest["dense"])
        self.authority = self._authority(current_year)

    @property
    def n_docs(self) -> int:
        return len(self.docs)

    def close(self) -> None:
        self.docs.close()

    def document(self, doc_id: str) -> Document | None:
        index = self.docs.index_of(doc_id)
        return None if index is None else self.docs.get(index)

    def _authority(self, current_year: int | None) -> np.ndarray:
        config = self.settings.authority
        table = load_impact_table(config.impact_table) if config.impact_table else {}
        return authority_scores(
            self.docs.source_types,
            self.docs.years,
            journal_impacts(self.docs.journals, table),
            config,
            current_year=current_year,
        )

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters | None = None,
        relevance_weight: float | None = None,
        use_dense: bool = True,
        field_weights: Mapping[str, float] | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best documents for ``query``; an empty or unmatched query gives ``[]``.

        ``relevance_weight`` overrides λ for this call (1.0: pure relevance order);
        ``field_weights`` the BM25 weight of each document field.
        """
        config = self.settings
        lam = config.relevance_weight if relevance_weight is None else relevance_weight
        allowed = None
        if filters is not None and filters.active:
            allowed = self.docs.mask(
                source_types=filters.source_types,
                year_from=filters.year_from,
                year_to=filters.year_to,
                entity_ids=filters.entity_ids,
            )
            if not allowed.any():
                return []
        depth = max(config.candidates, k)
        lex_ids, lex_scores = self.lexical.search(
            query,
            depth,
            weights=config.field_weights if field_weights is None else field_weights,
            allowed=allowed,
        )
        dense_ids = np.empty(0, dtype=np.int64)
        similarities = None
        if use_dense and self.dense is not None and self.embedder is not None and query.strip():
            similarities = self.dense.similarities(self.embedder.encode([query])[0])
            usable = similarities >= config.min_dense_similarity
            if allowed is not None:
                usable &= allowed
            dense_ids = top_k(np.where(usable, similarities, -np.inf), depth)
            dense_ids = dense_ids[usable[dense_ids]]
        candidates = np.union1d(lex_ids, dense_ids)
        if candidates.size == 0:
            return []
        lexical = normalised_bm25(candidates, lex_ids, lex_scores)
        dense = None
        if dense_ids.size and similarities is not None:
            dense = min_max(similarities[candidates].astype(np.float64))
        relevance = fuse(config, candidates, lexical, dense, lex_ids, dense_ids)
        return ranked_hits(
            relevance,
            self.authority[candidates],
            lexical,
            dense,
            lam,
            config,
            k,
            lambda top: [self.docs.get(int(candidates[i])) for i in top],
        )

    def search_entities(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters | None = None,
        relevance_weight: float | None = None,
        use_dense: bool = True,
    ) -> list[EntityHit]:
        """The ``k`` best entities: each with its best-ranked document and all its documents.

        For entity questions ("which disorder…?") this is the natural unit: twins and
        several documents of one disease count once, at their best rank. The lexical part
        uses ``entity_field_weights``: genes and hallmark signs count most.
        """
        return rank_entities(
            self.search,
            self._entity_documents,
            self.settings,
            query,
            k=k,
            filters=filters,
            relevance_weight=relevance_weight,
            use_dense=use_dense,
        )

    def _entity_documents(self, entities: list[str]) -> dict[str, list[str]]:
        """Each entity's document ids, in corpus order."""
        return {e: [self.docs.ids[i] for i in self.docs.entities.get(e, [])] for e in entities}


def embedder_for(info: dict) -> Embedder:
    """The query encoder for an index built with ``info`` (its dense manifest)."""
    model = str(info.get("model", ""))
    if model.startswith("hashing-"):
        return HashingEmbedder(dim=int(info["dim"]))
    return MiniLMEmbedder()
