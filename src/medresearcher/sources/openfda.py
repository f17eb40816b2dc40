"""openFDA drug labels and adverse-event counts (medical-data.md §1.4).

Why labels: the FDA label is the regulatory statement of what a drug is approved for, its boxed
warning and its mechanism, the highest-authority source for drug facts (§1.10). FAERS counts
are kept as (term, count) pairs, not Documents: they describe reports, not causality.

openFDA pages by ``skip`` up to 25,000; beyond that it pages by ``search_after`` (send
``sort`` without ``skip`` and follow the ``Link: <...>; rel="next"`` header). Both are handled.
A 404 whose body says ``NOT_FOUND`` means "no results", not an error.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin

from medresearcher.schema import Document
from medresearcher.sources.http import SourceHttp, SourceResponse

__all__ = ["OPENFDA_URL", "OpenFDA", "document_from_label"]

log = logging.getLogger(__name__)

OPENFDA_URL = "https://api.fda.gov"
MAX_LIMIT = 1000
MAX_SKIP = 25_000
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?', re.IGNORECASE)
_SECTIONS = (
    ("Indications and usage", "indications_and_usage"),
    ("Boxed warning", "boxed_warning"),
    ("Mechanism of action", "mechanism_of_action"),
)


class OpenFDA:
    """Query openFDA through a shared :class:`SourceHttp` (240 requests/min).

    ``api_key`` defaults to the ``OPENFDA_API_KEY`` environment variable; it raises the daily
    quota, travels as the ``api_key`` query parameter and is masked wherever a URL is shown.
    ``search`` strings use openFDA's syntax; write ``+`` or spaces between terms alike
    (``openfda.generic_name:"miglustat"+AND+...``): ``+`` is sent as a space, as the docs mean.
    """

    def __init__(
        self, http: SourceHttp, base_url: str = OPENFDA_URL, api_key: str | None = None
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENFDA_API_KEY") or None

    async def _get(self, url: str, params: dict[str, Any]) -> SourceResponse | None:
        """The JSON response, or None for openFDA's "no matches" 404."""
        response = await self.http.request(
            url,
            {**params, "api_key": self.api_key},
            parse=json.loads,
            what="JSON",
            allow_status=(404,),
        )
        if response.status == 404:  # returned unparsed by SourceHttp
            try:
                body = json.loads(response.content)
            except ValueError:
                body = None
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and error.get("code") == "NOT_FOUND":
                return None
            raise response.error(f"HTTP 404: {error or response.text[:200] or 'not found'}")
        if not isinstance(response.data, dict):
            raise response.error("expected a JSON object")
        return response

    async def labels(
        self,
        search: str,
        *,
        max_results: int = 100,
        page_size: int = 100,
        sort: str | None = None,
    ) -> AsyncIterator[Document]:
        """Drug labels matching ``search`` as Documents, at most ``max_results``.

        Without ``sort`` pages by ``skip`` (openFDA caps it at 25,000; a warning says so);
        with ``sort`` (e.g. ``effective_time:desc``) pages by the ``Link`` header, unbounded.
        A ``Link`` next header is followed whenever the server sends one. Documents already
        yielded stay yielded when a later page fails with :class:`SourceError`.
        """
        remaining = max_results
        skip = 0
        next_url: str | None = None
        while remaining > 0:
            if next_url is not None:
                url, params = next_url, {}
            else:
                url = f"{self.base_url}/drug/label.json"
                params = {
                    "search": _plus_as_space(search),
                    "limit": min(page_size, remaining, MAX_LIMIT),
                    "skip": skip or None,
                    "sort": sort,
                }
            response = await self._get(url, params)
            if response is None:
                return
            results = response.data.get("results") or []
            for result in results[:remaining]:
                document = document_from_label(result)
                if document is not None:
                    yield document
                remaining -= 1
            if not results or remaining <= 0:
                return
            link = _next_link(response.headers.get("link"), url)
            if link is not None:
                next_url = link
                continue
            if next_url is not None or sort is not None:
                return  # the Link chain has ended
            skip += len(results)
            total = ((response.data.get("meta") or {}).get("results") or {}).get("total")
            if isinstance(total, int) and skip >= total:
                return
            if skip > MAX_SKIP:
                log.warning(
                    "openFDA pages only %d label records by skip; stopped after %d. Pass "
                    "sort=... (e.g. 'effective_time:desc') to page further by the Link header",
                    MAX_SKIP,
                    skip,
                )
                return

    async def adverse_event_counts(
        self,
        search: str,
        *,
        count_field: str = "patient.reaction.reactionmeddrapt.exact",
        limit: int = 100,
    ) -> list[tuple[str, int]]:
        """FAERS report counts per ``count_field`` value (top ``limit``, at most 1000).

        Counts of reports, which do not establish causality (FDA's own disclaimer).
        """
        params = {
            "search": _plus_as_space(search),
            "count": count_field,
            "limit": min(limit, MAX_LIMIT),
        }
        response = await self._get(f"{self.base_url}/drug/event.json", params)
        if response is None:
            return []
        counts: list[tuple[str, int]] = []
        for row in response.data.get("results") or []:
            try:
                counts.append((str(row["term"]), int(row["count"])))
            except (KeyError, TypeError, ValueError):
                raise response.error(f"unexpected count row: {str(row)[:100]}") from None
        return counts


def _plus_as_space(search: str) -> str:
    return " ".join(search.replace("+", " ").split())


def _next_link(header: str | None, base: str) -> str | None:
    match = _LINK_NEXT.search(header or "")
    return urljoin(base, match.group(1)) if match else None


def _first(values: Any) -> str | None:
    if isinstance(values, list):
        return str(values[0]) if values else None
    return str(values) if values else None


def _strings(values: Any) -> list[str]:
    if isinstance(values, list):
        return [str(v) for v in values]
    return [str(values)] if values else []


def document_from_label(label: dict[str, Any]) -> Document | None:
    """Map one ``/drug/label.json`` result to a :class:`Document`; None without a set_id."""
    set_id = _first(label.get("set_id"))
    if not set_id:
        return None
    openfda = label.get("openfda") or {}
    brand, generic = _first(openfda.get("brand_name")), _first(openfda.get("generic_name"))
    if brand and generic and brand.lower() != generic.lower():
        title = f"{brand} ({generic.lower()})"
    else:
        title = brand or generic or f"FDA label {set_id}"
    sections = []
    for heading, key in _SECTIONS:
        body = " ".join(" ".join(s.split()) for s in _strings(label.get(key)))
        if body:
            sections.append(f"{heading}: {body}")
    effective = _first(label.get("effective_time"))
    year = int(effective[:4]) if effective and effective[:4].isdigit() else None
    metadata: dict[str, Any] = {
        "set_id": set_id,
        "label_id": label.get("id"),
        "version": label.get("version"),
        "effective_time": effective,
        "brand_name": brand,
        "generic_name": generic,
        "manufacturer_name": _first(openfda.get("manufacturer_name")),
        "product_type": _first(openfda.get("product_type")),
        "route": _strings(openfda.get("route")),
        "pharm_class_epc": _strings(openfda.get("pharm_class_epc")),
        "pharm_class_moa": _strings(openfda.get("pharm_class_moa")),
        "rxcui": _strings(openfda.get("rxcui")),
        "has_boxed_warning": bool(_strings(label.get("boxed_warning"))),
    }
    return Document(
        doc_id=f"FDA:{set_id}",
        title=title,
        text="\n\n".join(sections),
        source="openfda",
        source_type="fda_label",
        year=year,
        url=f"https://dailymed.nlm.nih.gov/dailymed/lookup.cfm?setid={set_id}",
        metadata=metadata,
    )
