"""``medical_retriever``: PrivateMedicalRetriever as an agent tool (paper §2.2, medical tools).

    Score(d, q) = λ·Rel(d, q) + (1 − λ)·Auth(d),   λ = ``[retrieval] relevance_weight``

Offline it is the workspace's hybrid retriever (:mod:`medresearcher.retrieval`) with optional
filters by source type and year. With ``[tools] live_sources`` it also asks PubMed,
ClinicalTrials.gov and openFDA (the connectors of :mod:`medresearcher.sources`) and merges
their records with the index's candidates. The merged pool is scored on one scale: Rel is
BM25 over the pool (the retriever's tokenizer) divided by the pool's best, Auth is the same
authority model as the index (source type, journal impact, recency), and, as in the
retriever, authority re-ranks only the hits whose Rel is within ``relevance_floor`` of the
best, so an authoritative but irrelevant record never outranks a relevant one. A source that
fails is named in the observation; the others still answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medresearcher.config import RetrievalSettings, SourcesSettings
from medresearcher.retrieval import SearchFilters, document_text
from medresearcher.retrieval.authority import authority_score, load_impact_table
from medresearcher.retrieval.lexical import LexicalIndex
from medresearcher.retrieval.tokenize import tokenize
from medresearcher.schema import Document, SourceType
from medresearcher.sources import ClinicalTrials, OpenFDA, PubMed, SourceHttp
from medresearcher.tools.base import Observation, Tool
from medresearcher.tools.search_backends import WorkspaceIndex, snippet_for

__all__ = [
    "EvidenceHit",
    "LiveSources",
    "MedicalRetrieverArguments",
    "MedicalRetrieverTool",
    "rank_pool",
]

log = logging.getLogger(__name__)

LIVE_SOURCES = ("pubmed", "clinicaltrials", "openfda")


class MedicalRetrieverArguments(BaseModel):
    """Arguments of ``medical_retriever``."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, description="Keywords or a question: disease, gene, phenotype, drug..."
    )
    k: int = Field(default=5, ge=1, le=20, description="How many hits to return.")
    source_types: list[SourceType] = Field(
        default_factory=list,
        description="Only these kinds of source, e.g. guideline, fda_label, rct, reference.",
    )
    year_from: int | None = Field(default=None, ge=1800, le=2100)
    year_to: int | None = Field(default=None, ge=1800, le=2100)

    @model_validator(mode="after")
    def _years_in_order(self) -> MedicalRetrieverArguments:
        if self.year_from and self.year_to and self.year_from > self.year_to:
            raise ValueError(f"year_from {self.year_from} is after year_to {self.year_to}")
        return self

    def filters(self) -> SearchFilters:
        return SearchFilters.of(
            source_types=self.source_types, year_from=self.year_from, year_to=self.year_to
        )


@dataclass
class EvidenceHit:
    """One ranked record: the document, its score parts, and where it came from."""

    document: Document
    score: float
    relevance: float
    authority: float
    origin: str = "index"

    def to_dict(self, query: str) -> dict[str, Any]:
        doc = self.document
        return {
            "doc_id": doc.doc_id,
            "title": doc.title,
            "source": doc.source,
            "source_type": doc.source_type,
            "year": doc.year,
            "url": doc.url,
            "origin": self.origin,
            "score": round(self.score, 4),
            "relevance": round(self.relevance, 4),
            "authority": round(self.authority, 4),
            "snippet": snippet_for(doc.text, query),
        }


def rank_pool(
    documents: list[tuple[str, Document]],
    query: str,
    authorities: list[float],
    settings: RetrievalSettings,
) -> list[EvidenceHit]:
    """Rank a merged pool of ``(origin, document)`` by Score = λ·Rel + (1−λ)·Auth.

    Rel is BM25 over the pool divided by its best score (0 for a document no query word
    matches); authority re-ranks the documents with Rel ≥ ``relevance_floor`` × best among
    the first ``rerank_depth`` by relevance, the others follow in relevance order (the
    retriever's rule, :class:`~medresearcher.retrieval.EmbeddedRetriever`).
    """
    if not documents:
        return []
    raw = LexicalIndex.build(document_text(doc) for _, doc in documents).scores(query)
    best = float(raw.max()) if len(raw) else 0.0
    relevance = [float(s) / best if best > 0 else 0.0 for s in raw]
    lam = settings.relevance_weight
    hits = [
        EvidenceHit(doc, lam * rel + (1 - lam) * auth, rel, auth, origin)
        for (origin, doc), rel, auth in zip(documents, relevance, authorities, strict=True)
    ]
    by_relevance = sorted(range(len(hits)), key=lambda i: -hits[i].relevance)
    top = hits[by_relevance[0]].relevance
    window = [
        i
        for i in by_relevance[: settings.rerank_depth]
        if hits[i].relevance >= settings.relevance_floor * top
    ]
    chosen = set(window)
    window.sort(key=lambda i: (-hits[i].score, -hits[i].relevance))
    return [hits[i] for i in window + [i for i in by_relevance if i not in chosen]]


class LiveSources:
    """PubMed, ClinicalTrials.gov and openFDA through one shared :class:`SourceHttp`.

    ``base_urls`` maps ``pubmed`` / ``clinicaltrials`` / ``openfda`` to another base URL
    (a mirror, the tests' fake server).
    """

    def __init__(
        self,
        sources: SourcesSettings | None = None,
        *,
        cache_path: str | Path | None = None,
        base_urls: Mapping[str, str] | None = None,
        enabled: tuple[str, ...] = LIVE_SOURCES,
        timeout_s: float = 30.0,
    ) -> None:
        self.settings = sources or SourcesSettings()
        self.cache_path = cache_path
        self.base_urls = dict(base_urls or {})
        self.enabled = enabled
        self.timeout_s = timeout_s
        self._http: SourceHttp | None = None

    def http(self) -> SourceHttp:
        if self._http is None:
            self._http = SourceHttp(
                cache_path=self.cache_path if self.settings.cache != "off" else None,
                cache_mode=self.settings.cache,
                max_attempts=self.settings.max_retries + 1,
                backoff_s=self.settings.retry_backoff_s,
                timeout_s=self.settings.timeout_s,
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def search(
        self, query: str, k: int, filters: SearchFilters
    ) -> tuple[list[tuple[str, Document]], dict[str, str]]:
        """Up to ``k`` records per source, filtered; and per source "n records" or the error."""
        names = [name for name in self.enabled if name in LIVE_SOURCES]
        outcomes = await asyncio.gather(
            *(self._one(name, query, k, filters) for name in names), return_exceptions=True
        )
        documents: list[tuple[str, Document]] = []
        status: dict[str, str] = {}
        for name, outcome in zip(names, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, asyncio.TimeoutError):
                    status[name] = f"error: timed out after {self.timeout_s:g} s"
                else:
                    status[name] = f"error: {outcome}"
                log.warning("medical_retriever: %s failed: %s", name, status[name])
                continue
            kept = [doc for doc in outcome if _passes(doc, filters)]
            documents.extend((name, doc) for doc in kept)
            status[name] = f"{len(kept)} records"
        return documents, status

    async def _one(self, name: str, query: str, k: int, filters: SearchFilters) -> list[Document]:
        return await asyncio.wait_for(self._collect(name, query, k, filters), self.timeout_s)

    async def _collect(
        self, name: str, query: str, k: int, filters: SearchFilters
    ) -> list[Document]:
        http = self.http()
        stream: AsyncIterator[Document]
        if name == "pubmed":
            pubmed = PubMed(http, **_base(self.base_urls, "pubmed"))
            stream = pubmed.search_documents(
                query,
                max_results=k,
                sort="relevance",
                mindate=filters.year_from,
                maxdate=filters.year_to,
            )
        elif name == "clinicaltrials":
            trials = ClinicalTrials(http, **_base(self.base_urls, "clinicaltrials"))
            stream = trials.studies(term=query, max_results=k)
        else:
            words = openfda_terms(query)
            if not words:
                return []
            stream = OpenFDA(http, **_base(self.base_urls, "openfda")).labels(words, max_results=k)
        return [doc async for doc in stream]


def openfda_terms(query: str) -> str:
    """The query's words for openFDA's ``search`` (any field, words OR-ed by the space):
    plain alphanumeric tokens only, so no character of Lucene syntax reaches it."""
    return " ".join(t for t in tokenize(query) if t.isalnum())


class MedicalRetrieverTool(Tool):
    """PrivateMedicalRetriever; see the module docstring."""

    name = "medical_retriever"
    description = (
        "Search the private medical corpus (Orphanet, Disease Ontology, PubMed, trials, FDA "
        "labels, drug catalogues) ranked by relevance and clinical authority (Score = "
        "λ·Rel + (1−λ)·Auth). Optional filters: source_types, year_from, year_to. Returns "
        "ranked evidence with source type, year, authority and id; read a hit in full with "
        "document_read."
    )
    Arguments = MedicalRetrieverArguments

    def __init__(
        self,
        index: WorkspaceIndex,
        settings: RetrievalSettings | None = None,
        *,
        live: LiveSources | None = None,
        field_weights: Mapping[str, float] | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.index = index
        self.field_weights = dict(field_weights) if field_weights else None
        self.settings = settings or index.settings
        self.live = live
        self.timeout_s = timeout_s
        impact = self.settings.authority.impact_table
        self._impacts = load_impact_table(impact) if impact else {}

    async def run(self, arguments: MedicalRetrieverArguments) -> Observation:
        query, k, filters = arguments.query, arguments.k, arguments.filters()
        status: dict[str, str] = {}
        if self.live is None:
            hits = await self.index.run(
                lambda r: r.search(query, k=k, filters=filters, field_weights=self.field_weights)
            )
            ranked = [EvidenceHit(h.document, h.score, h.relevance, h.authority) for h in hits]
        else:
            depth = max(2 * k, 20)
            local = await self.index.run(
                lambda r: r.search(
                    query, k=depth, filters=filters, field_weights=self.field_weights
                )
            )
            live_docs, status = await self.live.search(query, k, filters)
            seen = {hit.document.doc_id for hit in local}
            pool = [("index", hit.document) for hit in local]
            authorities = [hit.authority for hit in local]
            for origin, doc in live_docs:
                if doc.doc_id not in seen:
                    seen.add(doc.doc_id)
                    pool.append((origin, doc))
                    authorities.append(self._authority(doc))
            ranked = rank_pool(pool, query, authorities, self.settings)
        return self._observation(arguments, ranked[:k], status)

    def _authority(self, doc: Document) -> float:
        return authority_score(doc, self.settings.authority, impact_table=self._impacts)

    async def aclose(self) -> None:
        if self.live is not None:
            await self.live.aclose()

    def _observation(
        self, arguments: MedicalRetrieverArguments, hits: list[EvidenceHit], status: dict
    ) -> Observation:
        lam = self.settings.relevance_weight
        wanted = []
        if arguments.source_types:
            wanted.append(f"source types {', '.join(arguments.source_types)}")
        if arguments.year_from or arguments.year_to:
            wanted.append(f"years {arguments.year_from or '…'}–{arguments.year_to or '…'}")
        origin = "index" + "".join(f"; {name}: {text}" for name, text in status.items())
        lines = [
            f"Evidence for {arguments.query!r} (Score = λ·Rel + (1−λ)·Auth, λ = {lam:.2f}; "
            f"sources: {origin}{'; ' + '; '.join(wanted) if wanted else ''})"
        ]
        if not hits:
            lines.append("No evidence found; try other words, synonyms, or fewer filters.")
        for rank, hit in enumerate(hits, start=1):
            doc = hit.document
            where = "" if hit.origin == "index" else f" · live {hit.origin}"
            lines.append(
                f"{rank}. {doc.title} [{doc.doc_id}] · {doc.source_type} · "
                f"{doc.year or 'n.d.'} · Auth {hit.authority:.2f} · Score {hit.score:.2f}{where}"
            )
            snippet = snippet_for(doc.text, arguments.query)
            if snippet:
                lines.append(f"   {snippet}")
        return Observation(
            text="\n".join(lines),
            sources=[hit.document.doc_id for hit in hits],
            payload={
                "query": arguments.query,
                "lambda": lam,
                "filters": arguments.model_dump(exclude={"query", "k"}),
                "live": status,
                "hits": [hit.to_dict(arguments.query) for hit in hits],
            },
        )


def _passes(doc: Document, filters: SearchFilters) -> bool:
    if filters.source_types and doc.source_type not in filters.source_types:
        return False
    if filters.year_from is not None and (doc.year or 0) < filters.year_from:
        return False
    return not (filters.year_to is not None and not (doc.year and doc.year <= filters.year_to))


def _base(urls: Mapping[str, str], name: str) -> dict[str, str]:
    return {"base_url": urls[name]} if name in urls else {}
