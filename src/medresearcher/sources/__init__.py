"""Connectors to live literature, trial and label APIs, producing Documents.

All connectors share one :class:`SourceHttp` (per-host rate limits, retries with
``Retry-After``, an SQLite HTTP cache, key redaction), so use them together like this::

    async with SourceHttp(cache_path=workspace.http_cache_path) as http:
        async for doc in PubMed(http).search_documents("fabry disease[mh]", max_results=50):
            ...

Every failure a caller can meet is a :class:`SourceError` with one line naming host, URL
(key masked), status and cause.
"""

from medresearcher.sources.ctgov import ClinicalTrials
from medresearcher.sources.errors import SourceError
from medresearcher.sources.europepmc import EuropePMC
from medresearcher.sources.evidence import source_type_from_publication_types
from medresearcher.sources.http import (
    DEFAULT_RATE_LIMITS,
    SourceHttp,
    SourceResponse,
    redact_query,
)
from medresearcher.sources.openfda import OpenFDA
from medresearcher.sources.pubmed import ESearchResult, PubMed

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "ClinicalTrials",
    "ESearchResult",
    "EuropePMC",
    "OpenFDA",
    "PubMed",
    "SourceError",
    "SourceHttp",
    "SourceResponse",
    "redact_query",
    "source_type_from_publication_types",
]
