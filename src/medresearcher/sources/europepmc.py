"""Europe PMC REST search (medical-data.md §1.2): abstracts, MeSH, publication types and
citation counts in one JSON call, preprints included.

Why alongside PubMed: one request per page returns what PubMed needs ESearch + EFetch for, plus
``citedByCount`` (a popularity signal) and preprints (``source`` ``PPR``), which the authority
model must rank lowest. Paging uses ``cursorMark`` (deep paging without an offset cap).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from medresearcher.schema import Document, SourceType
from medresearcher.sources.evidence import source_type_from_publication_types
from medresearcher.sources.http import SourceHttp

__all__ = ["EUROPEPMC_URL", "EuropePMC", "document_from_result"]

EUROPEPMC_URL = "https://www.ebi.ac.uk/europepmc/webservices/rest"
MAX_PAGE_SIZE = 1000

_HEADING = re.compile(r"<h[1-6][^>]*>(.*?)</h[1-6]>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<br\s*/?>|</p>|</div>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


def strip_tags(text: str | None) -> str:
    """Plain text from Europe PMC's HTML-ish fields: section headings become ``Heading: ``
    lines (like PubMed's labelled abstracts), inline tags (<i>, <sup>) vanish."""
    if not text:
        return ""
    text = _HEADING.sub(lambda m: f"\n{_TAG.sub('', m.group(1)).strip()}: ", text)
    text = html.unescape(_TAG.sub("", _BREAK.sub("\n", text)))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


class EuropePMC:
    """Search Europe PMC (``resultType=core``) through a shared :class:`SourceHttp`."""

    def __init__(self, http: SourceHttp, base_url: str = EUROPEPMC_URL) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")

    async def search(
        self,
        query: str,
        *,
        max_results: int = 100,
        page_size: int = 100,
        sort: str | None = None,
        synonym: bool | None = None,
    ) -> AsyncIterator[Document]:
        """Documents for a Lucene ``query`` (``TITLE:``, ``SRC:MED``, ``PUB_TYPE:"review"``...).

        Pages by ``cursorMark`` until ``nextCursorMark`` stops changing, results run out or
        ``max_results`` were yielded. ``sort`` e.g. ``CITED desc``; ``synonym`` expands MeSH.
        Documents already yielded stay yielded when a later page fails.
        """
        remaining = max_results
        cursor = "*"
        while remaining > 0:
            params = {
                "query": query,
                "format": "json",
                "resultType": "core",
                "pageSize": min(page_size, remaining, MAX_PAGE_SIZE),
                "cursorMark": cursor,
                "sort": sort,
                "synonym": synonym,
            }
            response = await self.http.request(
                f"{self.base_url}/search", params, parse=json.loads, what="JSON"
            )
            data = response.data
            if not isinstance(data, dict) or (
                "resultList" not in data and int(data.get("hitCount") or 0) != 0
            ):
                problem = data.get("errMsg") if isinstance(data, dict) else None
                raise response.error(f"unexpected search response: {problem or 'no resultList'}")
            results = (data.get("resultList") or {}).get("result") or []
            for result in results[:remaining]:
                yield document_from_result(result)
                remaining -= 1
            next_cursor = data.get("nextCursorMark")
            if not results or not next_cursor or next_cursor == cursor:
                return
            cursor = next_cursor


def _source_type(result: dict[str, Any], pub_types: list[str]) -> SourceType:
    mapped = source_type_from_publication_types(pub_types)
    if result.get("source") == "PPR" and mapped != "retracted":
        return "preprint"  # not peer reviewed, whatever study design it reports
    return mapped


def _year(result: dict[str, Any]) -> int | None:
    for value in (
        result.get("pubYear"),
        (result.get("journalInfo") or {}).get("yearOfPublication"),
    ):
        try:
            return int(str(value)[:4])
        except (TypeError, ValueError):
            continue
    return None


def document_from_result(result: dict[str, Any]) -> Document:
    """Map one ``core`` search result to a :class:`Document` (``PMID:`` id when it has one)."""
    source = str(result.get("source") or "")
    record_id = str(result.get("id") or "")
    pmid = str(result.get("pmid") or "").strip()
    doc_id = f"PMID:{pmid}" if pmid else f"EPMC:{source}:{record_id}"
    pub_types = [str(t) for t in (result.get("pubTypeList") or {}).get("pubType") or []]
    journal_info = result.get("journalInfo") or {}
    journal = journal_info.get("journal") or {}
    mesh = [
        heading.get("descriptorName")
        for heading in (result.get("meshHeadingList") or {}).get("meshHeading") or []
        if heading.get("descriptorName")
    ]
    try:
        cited_by = int(result.get("citedByCount") or 0)
    except (TypeError, ValueError):
        cited_by = 0
    metadata: dict[str, Any] = {
        "journal": journal.get("title")
        or result.get("journalTitle")
        or (result.get("bookOrReportDetails") or {}).get("publisher"),
        "issn": journal.get("issn") or journal.get("essn"),
        "doi": result.get("doi"),
        "pmid": pmid or None,
        "pmcid": result.get("pmcid"),
        "epmc_source": source,
        "epmc_id": record_id,
        "cited_by_count": cited_by,
        "mesh": mesh,
        "publication_types": pub_types,
        "is_open_access": result.get("isOpenAccess") == "Y",
        "first_publication_date": result.get("firstPublicationDate"),
        "authors": result.get("authorString"),
    }
    return Document(
        doc_id=doc_id,
        title=strip_tags(result.get("title")) or doc_id,
        text=strip_tags(result.get("abstractText")),
        source="europepmc",
        source_type=_source_type(result, pub_types),
        year=_year(result),
        url=f"https://europepmc.org/article/{source}/{record_id}" if source else None,
        metadata=metadata,
    )
