"""The corpus on Milvus: the PrivateMedicalRetriever backend past one machine (paper §2.2).

    Score(d, q) = λ·Rel(d, q) + (1 − λ)·Auth(d),   λ = 0.4 by default

Milvus finds the candidates; ranking them is the embedded engine's own code
(:mod:`medresearcher.retrieval.ranking`, :func:`~medresearcher.retrieval.authority.
authority_scores`), so a config switch (``[retrieval] backend = "milvus"``) changes where the
corpus lives, not how it ranks.

How each part maps onto Milvus:

- **BM25**: Milvus's BM25 function, one sparse output field per weighted document field
  (``body`` = title + text, and ``[retrieval.milvus] text_fields``: names, genes,
  phenotypes). The weighted sum Σ wᶠ·BM25ᶠ of the embedded field index is computed here
  over the union of each field's top hits; a candidate missing from one field's list gets
  that field's exact score by a second search restricted to the candidates. Texts are
  tokenized by our own tokenizer (:func:`~medresearcher.retrieval.tokenize.tokenize`) and
  stored so Milvus's ``standard`` analyzer reads back the same tokens one for one
  (:func:`analyzed_text`): the tokens that identify rare diseases (``hla-b27``,
  ``22q11.2``) stay whole, exactly as in the embedded index. Milvus's BM25 is the Lucene
  variant times (k1 + 1), which the division by the query's best score cancels.
- **Dense**: a FLOAT_VECTOR field with the embedded index's model (cosine, FLAT = exact);
  the cosine of lexical-only candidates is computed from their stored vectors, so the
  min-max scaling sees the same candidate set as the embedded engine.
- **Filters**: source type, year range and entity ids become a Milvus filter expression
  (:func:`filter_expression`), applied inside every search.
- **Ties**: every document keeps its position in the corpus, and candidates are ordered by
  it, so equal scores break as in the embedded engine.

Milvus Lite (the ``milvus-lite`` package, a local file) computes BM25 statistics per
segment; a collection ingested in one run and compacted is one segment on the demo corpus,
but a server computes them over the collection, so scores on a many-segment Lite file may
differ slightly from the embedded engine's.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medresearcher.config import RetrievalSettings
from medresearcher.errors import ConfigError, InputError
from medresearcher.retrieval.authority import authority_scores, journal_impacts, load_impact_table
from medresearcher.retrieval.backend import EntityHit, SearchFilters, SearchHit
from medresearcher.retrieval.dense import Embedder
from medresearcher.retrieval.ranking import (
    fuse,
    min_max,
    normalised_bm25,
    rank_entities,
    ranked_hits,
)
from medresearcher.retrieval.retriever import embedder_for
from medresearcher.retrieval.tokenize import TOKENIZER_VERSION, tokenize
from medresearcher.schema import Document

__all__ = [
    "MilvusRetriever",
    "analyzed_text",
    "connect",
    "filter_expression",
    "is_local_uri",
    "read_meta",
]

log = logging.getLogger(__name__)

SCHEMA_FORMAT = 1
META_PROPERTY = "medresearcher.meta"
BODY = "body"
DENSE = "dense"
RECORD = "record"
META_FIELDS = ["doc_id", "position", "source_type", "year", "journal"]
MAX_QUERY_ROWS = 16384  # Milvus caps one query's result window at 16,384 rows
# Milvus breaks exact score ties arbitrarily; the embedded engine takes the lower position.
# Asking for this many times the depth and cutting by (score, position) gives the same
# candidates whenever a tie at the cut is smaller than the slack (templated documents tie).
TIE_SLACK = 2


def sparse_field(name: str) -> str:
    """The BM25 output field of the text field ``name``."""
    return f"{name}_bm25"


def analyzed_text(text: str) -> str:
    """``text`` as our tokens, spelled so Milvus's ``standard`` analyzer splits out the same.

    The analyzer splits on non-word characters (``\\w+``) and lower-cases. Our tokens are
    letters and digits joined by ``-`` or by ``.`` before a digit, so ``-`` becomes ``_`` and
    ``.`` becomes ``__`` (both word characters; our tokens never hold ``_``): ``hla-b27`` is
    stored as ``hla_b27`` next to its parts ``hla`` and ``b27``, as in the embedded index.
    """
    return " ".join(t.replace(".", "__").replace("-", "_") for t in tokenize(text))


def filter_expression(filters: SearchFilters | None) -> str:
    """A Milvus boolean expression for ``filters`` ('' when none is active).

    Unknown years are stored as 0, so ``year_to`` excludes them, as the embedded filter does.
    """
    if filters is None or not filters.active:
        return ""
    parts = []
    if filters.source_types:
        parts.append(f"source_type in {_string_list(filters.source_types)}")
    if filters.year_from is not None:
        parts.append(f"year >= {int(filters.year_from)}")
    if filters.year_to is not None:
        parts.append(f"(year <= {int(filters.year_to)} and year > 0)")
    if filters.entity_ids:
        parts.append(f"ARRAY_CONTAINS_ANY(entity_ids, {_string_list(filters.entity_ids)})")
    return " and ".join(parts)


def _string_list(values: Sequence[str] | frozenset[str]) -> str:
    return json.dumps(sorted(values), ensure_ascii=False)


def _and(*expressions: str) -> str:
    return " and ".join(f"({e})" for e in expressions if e)


def is_local_uri(uri: str) -> bool:
    """A Milvus Lite file rather than a server address."""
    return "://" not in uri


def connect(uri: str, token_env: str | None = None) -> Any:
    """A ``pymilvus.MilvusClient`` for ``uri`` (a Milvus Lite file or a server URL).

    Raises
    ------
    ConfigError
        If pymilvus is missing (the ``scale`` extra), or ``token_env`` names an unset variable.
    """
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:  # pragma: no cover - the scale extra is installed in CI
        raise ConfigError(
            "retrieval.backend = milvus needs the 'scale' extra: pip install "
            "'medresearcher[scale]' (pymilvus, milvus-lite)"
        ) from exc
    token = ""
    if token_env:
        token = os.environ.get(token_env, "")
        if not token:
            raise ConfigError(
                f"[retrieval.milvus] token_env = {token_env!r}, but that variable is not set"
            )
    if is_local_uri(uri):
        os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
    return MilvusClient(uri=uri, token=token)


def read_meta(client: Any, collection: str) -> dict | None:
    """What :mod:`~medresearcher.retrieval.milvus_ingest` recorded on the collection, which
    is loaded (Milvus searches only loaded collections); None when there is none."""
    if not client.has_collection(collection):
        return None
    client.load_collection(collection)
    properties = client.describe_collection(collection).get("properties") or {}
    raw = properties.get(META_PROPERTY)
    return json.loads(raw) if raw else {}


class MilvusRetriever:
    """The Milvus backend of :class:`~medresearcher.retrieval.RetrieverBackend`.

    Parameters
    ----------
    uri:
        A Milvus Lite file (``<workspace>/index/milvus.db`` by default) or a server URL.
    settings:
        ``[retrieval]``: λ, fusion, candidate depth, authority weights, and ``milvus``.
    embedder:
        Encodes queries for the dense field; by default the model the collection was built
        with.
    current_year:
        "Now" for the recency part of authority (fixed in tests and benchmarks).
    """

    def __init__(
        self,
        uri: str,
        settings: RetrievalSettings | None = None,
        *,
        embedder: Embedder | None = None,
        current_year: int | None = None,
    ) -> None:
        self.settings = settings or RetrievalSettings()
        self.uri = uri
        self.collection = self.settings.milvus.collection
        self.client = connect(uri, self.settings.milvus.token_env)
        meta = read_meta(self.client, self.collection)
        if meta is None:
            raise InputError(
                f"{uri}: no Milvus collection {self.collection!r}; build it with "
                '`medresearcher index build` ([retrieval] backend = "milvus")'
            )
        if meta.get("format") != SCHEMA_FORMAT or meta.get("tokenizer") != TOKENIZER_VERSION:
            raise InputError(
                f"{uri}: collection {self.collection!r} has format {meta.get('format')} / "
                f"tokenizer {meta.get('tokenizer')}, this version uses {SCHEMA_FORMAT} / "
                f"{TOKENIZER_VERSION}: drop it and run `medresearcher index build` again"
            )
        self.meta = meta
        self.fields: list[str] = list(meta["fields"])
        self.dense_info: dict | None = meta.get("dense")
        self.embedder = embedder
        if self.dense_info and self.embedder is None:
            self.embedder = embedder_for(self.dense_info)
        self.current_year = current_year
        config = self.settings.authority
        self._impacts = load_impact_table(config.impact_table) if config.impact_table else {}
        self._n_docs: int | None = None

    # ----------------------------------------------------------------------- plumbing
    @property
    def n_docs(self) -> int:
        if self._n_docs is None:
            rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
            self._n_docs = int(rows[0]["count(*)"])
        return self._n_docs

    def close(self) -> None:
        self.client.close()

    def document(self, doc_id: str) -> Document | None:
        rows = self.client.get(self.collection, ids=[doc_id], output_fields=[RECORD])
        return Document.model_validate_json(rows[0][RECORD]) if rows else None

    def _search(
        self, data: list, field: str, metric: str, limit: int, expr: str
    ) -> list[dict[str, Any]]:
        """One Milvus search: [{"position", "score", meta fields}], best first."""
        if limit <= 0:
            return []
        results = self.client.search(
            self.collection,
            data=data,
            anns_field=field,
            limit=limit,
            filter=expr,
            output_fields=META_FIELDS,
            search_params={"metric_type": metric},
        )
        out = []
        for hit in results[0]:
            row = dict(hit["entity"])
            # Milvus Lite reports BM25 as a distance (−score), a server as the score.
            row["score"] = abs(float(hit["distance"])) if metric == "BM25" else hit["distance"]
            out.append(row)
        return out

    def _positions(self, expr: str, output_fields: list[str]) -> list[dict[str, Any]]:
        return self.client.query(
            self.collection, filter=expr, output_fields=output_fields, limit=MAX_QUERY_ROWS
        )

    # ------------------------------------------------------------------------ search
    def _lexical(
        self, query: str, depth: int, weights: Mapping[str, float], expr: str, meta: dict
    ) -> tuple[np.ndarray, np.ndarray]:
        """(positions, Σ wᶠ·BM25ᶠ) of the ``depth`` best matches, best first."""
        text = analyzed_text(query)
        active = {
            name: weight
            for name in self.fields
            if (weight := weights.get(name, 1.0 if name == BODY else 0.0))
        }
        if not text or not active:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        per_field: dict[str, dict[int, float]] = {}
        for name in active:
            rows = self._search([text], sparse_field(name), "BM25", TIE_SLACK * depth, expr)
            per_field[name] = {}
            for row in rows:
                meta[row["position"]] = row
                per_field[name][row["position"]] = row["score"]
        if len(active) > 1:  # exact field scores for candidates outside a field's top list
            union = set().union(*per_field.values())
            for name, scores in per_field.items():
                missing = sorted(union - set(scores))
                if missing:
                    restricted = _and(expr, f"position in {missing}")
                    for row in self._search(
                        [text], sparse_field(name), "BM25", len(missing), restricted
                    ):
                        scores[row["position"]] = row["score"]
        total: dict[int, float] = {}
        for name, scores in per_field.items():
            for position, score in scores.items():
                total[position] = total.get(position, 0.0) + active[name] * score
        ranked = sorted(
            ((p, s) for p, s in total.items() if s > 0), key=lambda item: (-item[1], item[0])
        )[:depth]
        positions = np.array([p for p, _ in ranked], dtype=np.int64)
        return positions, np.array([s for _, s in ranked], dtype=np.float64)

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

        The same contract as :meth:`EmbeddedRetriever.search
        <medresearcher.retrieval.retriever.EmbeddedRetriever.search>`.
        """
        config = self.settings
        lam = config.relevance_weight if relevance_weight is None else relevance_weight
        expr = filter_expression(filters)
        depth = max(config.candidates, k)
        meta: dict[int, dict[str, Any]] = {}
        weights = config.field_weights if field_weights is None else field_weights
        lex_ids, lex_scores = self._lexical(query, depth, weights, expr, meta)
        dense_ids = np.empty(0, dtype=np.int64)
        cosine: dict[int, float] = {}
        query_vector = None
        if use_dense and self.dense_info and self.embedder is not None and query.strip():
            query_vector = _unit(self.embedder.encode([query])[0])
            limit = TIE_SLACK * depth
            rows = self._search([query_vector.tolist()], DENSE, "COSINE", limit, expr)
            usable = []
            for row in rows:
                meta.setdefault(row["position"], row)
                cosine[row["position"]] = float(row["score"])
                if row["score"] >= config.min_dense_similarity:
                    usable.append((row["position"], float(row["score"])))
            usable = sorted(usable, key=lambda item: (-item[1], item[0]))[:depth]
            dense_ids = np.array([p for p, _ in usable], dtype=np.int64)
        candidates = np.union1d(lex_ids, dense_ids)
        if candidates.size == 0:
            return []
        order = np.argsort(lex_ids, kind="stable")
        lexical = normalised_bm25(candidates, lex_ids[order], lex_scores[order])
        dense = None
        if dense_ids.size and query_vector is not None:
            self._fill_cosine(candidates, query_vector, cosine)
            dense = min_max(np.array([cosine[int(p)] for p in candidates], dtype=np.float64))
        relevance = fuse(config, candidates, lexical, dense, lex_ids, dense_ids)
        authority = self._authority([meta[int(p)] for p in candidates])

        def documents(top: list[int]) -> list[Document]:
            doc_ids = [meta[int(candidates[i])]["doc_id"] for i in top]
            records = self._records(doc_ids)
            return [records[doc_id] for doc_id in doc_ids]

        return ranked_hits(relevance, authority, lexical, dense, lam, config, k, documents)

    def search_entities(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters | None = None,
        relevance_weight: float | None = None,
        use_dense: bool = True,
    ) -> list[EntityHit]:
        """The ``k`` best entities, each with its best document and all its documents
        (``entity_field_weights`` for the lexical part), as in the embedded engine."""
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
        """Each entity's document ids, in corpus order (one query for all of them)."""
        linked: dict[str, list[tuple[int, str]]] = {entity: [] for entity in entities}
        expr = f"ARRAY_CONTAINS_ANY(entity_ids, {_string_list(entities)})"
        for row in self._positions(expr, ["doc_id", "position", "entity_ids"]):
            for entity in row["entity_ids"]:
                if entity in linked:
                    linked[entity].append((int(row["position"]), row["doc_id"]))
        return {entity: [d for _, d in sorted(found)] for entity, found in linked.items()}

    # ----------------------------------------------------------------------- helpers
    def _fill_cosine(
        self, candidates: np.ndarray, query_vector: np.ndarray, cosine: dict[int, float]
    ) -> None:
        """Cosine of the candidates the dense search did not return, from their vectors."""
        missing = [int(p) for p in candidates if int(p) not in cosine]
        if not missing:
            return
        for row in self._positions(f"position in {missing}", ["position", DENSE]):
            vector = _unit(np.asarray(row[DENSE], dtype=np.float32))
            cosine[int(row["position"])] = float(vector @ query_vector)
        for position in missing:  # a document without a vector matches nothing
            cosine.setdefault(position, 0.0)

    def _authority(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Auth of the candidates by the embedded engine's function (same weights, same now)."""
        return authority_scores(
            [r["source_type"] for r in rows],
            np.array([r["year"] for r in rows]),
            journal_impacts([r["journal"] for r in rows], self._impacts),
            self.settings.authority,
            current_year=self.current_year,
        )

    def _records(self, doc_ids: list[str]) -> dict[str, Document]:
        if not doc_ids:
            return {}
        rows = self.client.get(self.collection, ids=doc_ids, output_fields=[RECORD])
        return {r["doc_id"]: Document.model_validate_json(r[RECORD]) for r in rows}


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
