"""PubMed through NCBI E-utilities: ESearch for ids, ESummary for cheap metadata, EFetch for
abstracts (medical-data.md §1.1).

Why ESearch + EFetch and not ESummary alone: only EFetch carries the abstract, MeSH and the
structured publication types the authority model reads; EFetch has no JSON for PubMed, so its
XML goes to :func:`~medresearcher.sources.pubmed_xml.parse_pubmed_xml`. NCBI asks automated
clients to send ``tool`` and ``email``; an ``api_key`` raises the limit from 3 to 10 requests/s
(the shared :class:`~medresearcher.sources.http.SourceHttp` paces accordingly).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from medresearcher.errors import InputError
from medresearcher.schema import Document
from medresearcher.sources.http import SourceHttp, SourceResponse
from medresearcher.sources.pubmed_xml import parse_pubmed_xml

__all__ = ["EUTILS_URL", "ESearchResult", "PubMed"]

log = logging.getLogger(__name__)

EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"
BATCH_SIZE = 200  # ids per ESummary/EFetch GET (NCBI: use POST beyond ~200)
ESEARCH_WINDOW = 10_000  # ESearch serves only the first 10,000 hits of a query


@dataclass
class ESearchResult:
    """One ESearch page: the total hit ``count`` and this page's PMIDs (as strings)."""

    count: int
    ids: list[str]
    retstart: int = 0
    retmax: int = 0
    query_translation: str | None = None
    translations: list[dict[str, Any]] = field(default_factory=list)


class PubMed:
    """Search and fetch PubMed records through one shared :class:`SourceHttp`.

    ``api_key`` and ``email`` default to the ``NCBI_API_KEY`` and ``NCBI_EMAIL`` environment
    variables; the key is sent as a query parameter and masked wherever a URL is shown.
    """

    #: Hits reachable by ESearch paging; a class attribute so tests can shrink it.
    esearch_window = ESEARCH_WINDOW

    def __init__(
        self,
        http: SourceHttp,
        *,
        base_url: str = EUTILS_URL,
        api_key: str | None = None,
        email: str | None = None,
        tool: str = "medresearcher",
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("NCBI_API_KEY") or None
        self.email = email if email is not None else os.environ.get("NCBI_EMAIL") or None
        self.tool = tool

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {
            "db": "pubmed",
            **extra,
            "tool": self.tool,
            "email": self.email,
            "api_key": self.api_key,
        }

    async def _json(self, endpoint: str, params: dict[str, Any]) -> tuple[Any, SourceResponse]:
        response = await self.http.request(
            f"{self.base_url}/{endpoint}", params, parse=json.loads, what="JSON"
        )
        if not isinstance(response.data, dict):
            raise response.error(f"expected a JSON object from {endpoint}")
        return response.data, response

    async def esearch(
        self,
        term: str,
        *,
        retmax: int = 20,
        retstart: int = 0,
        sort: str | None = None,
        mindate: str | int | None = None,
        maxdate: str | int | None = None,
        datetype: str = "pdat",
    ) -> ESearchResult:
        """One page of PMIDs for ``term`` (PubMed query syntax: ``[mh]``, ``[pt]``, ...).

        ``sort``: ``relevance``, ``pub_date``, ``Author``, ``JournalName``. ``mindate`` /
        ``maxdate`` (``YYYY``, ``YYYY/MM/DD``) filter on ``datetype``; one alone is completed
        with an open end, as NCBI requires both.
        """
        dates: dict[str, Any] = {}
        if mindate is not None or maxdate is not None:
            dates = {
                "datetype": datetype,
                "mindate": mindate if mindate is not None else "1800",
                "maxdate": maxdate if maxdate is not None else "3000",
            }
        params = self._params(
            term=term, retmode="json", retmax=retmax, retstart=retstart, sort=sort, **dates
        )
        data, response = await self._json("esearch.fcgi", params)
        result = data.get("esearchresult")
        if not isinstance(result, dict):
            problem = data.get("error") or "no esearchresult in the response"
            raise response.error(f"ESearch failed: {problem}")
        if result.get("ERROR"):
            raise response.error(f"ESearch error: {result['ERROR']}")
        try:
            return ESearchResult(
                count=int(result.get("count", 0)),
                ids=[str(i) for i in result.get("idlist", [])],
                retstart=int(result.get("retstart", retstart)),
                retmax=int(result.get("retmax", retmax)),
                query_translation=result.get("querytranslation"),
                translations=list(result.get("translationset") or []),
            )
        except (TypeError, ValueError) as exc:
            raise response.error(f"unexpected ESearch fields: {exc}") from None

    async def esummary(self, ids: Sequence[str | int]) -> list[dict[str, Any]]:
        """ESummary records (pubdate, source, pubtype, articleids, ...) in ``uids`` order."""
        summaries: list[dict[str, Any]] = []
        for batch in _batches([str(i) for i in ids], BATCH_SIZE):
            params = self._params(id=",".join(batch), retmode="json")
            data, response = await self._json("esummary.fcgi", params)
            result = data.get("result")
            if not isinstance(result, dict):
                raise response.error(f"ESummary failed: {data.get('error') or 'no result'}")
            for uid in result.get("uids", []):
                record = result.get(str(uid))
                if isinstance(record, dict) and not record.get("error"):
                    summaries.append(record)
        return summaries

    async def efetch(self, ids: Sequence[str | int]) -> list[Document]:
        """Full records (title, abstract, MeSH, publication types) as Documents."""
        documents: list[Document] = []
        for batch in _batches([str(i) for i in ids], BATCH_SIZE):
            params = self._params(id=",".join(batch), retmode="xml")
            response = await self.http.request(
                f"{self.base_url}/efetch.fcgi", params, parse=_parse_efetch, what="XML"
            )
            documents.extend(response.data)
        return documents

    async def search_documents(
        self,
        query: str,
        *,
        max_results: int = 100,
        page_size: int = BATCH_SIZE,
        sort: str | None = None,
        mindate: str | int | None = None,
        maxdate: str | int | None = None,
    ) -> AsyncIterator[Document]:
        """Documents matching ``query``, ESearch page by page, each page fetched by EFetch.

        Yields at most ``max_results``; stops at ESearch's 10,000-hit window with a warning
        (narrow the query, e.g. by date, to reach the rest). Documents already yielded stay
        yielded when a later page fails with :class:`SourceError`.
        """
        remaining = max_results
        retstart = 0
        while remaining > 0:
            window_left = self.esearch_window - retstart
            if window_left <= 0:
                break
            page = await self.esearch(
                query,
                retmax=min(page_size, remaining, window_left),
                retstart=retstart,
                sort=sort,
                mindate=mindate,
                maxdate=maxdate,
            )
            if retstart == 0 and min(page.count, max_results) > self.esearch_window:
                log.warning(
                    "PubMed query %r matches %d records, but ESearch pages only the first %d "
                    "(retstart cap); narrow the query (e.g. by date) to reach the rest",
                    query,
                    page.count,
                    self.esearch_window,
                )
            if not page.ids:
                break
            for batch in _batches(page.ids[:remaining], BATCH_SIZE):
                for document in await self.efetch(batch):
                    yield document
                    remaining -= 1
                    if remaining <= 0:
                        return
            retstart += len(page.ids)
            if retstart >= page.count:
                break


def _parse_efetch(data: bytes) -> list[Document]:
    # ValueError marks the body as malformed for SourceHttp: retried, not cached, reported.
    try:
        return parse_pubmed_xml(data, source_name="efetch")
    except InputError as exc:
        raise ValueError(str(exc)) from None


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
