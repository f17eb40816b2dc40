"""ClinicalTrials.gov API v2 studies (medical-data.md §1.3) as registry Documents.

Why the registry: trials that never reached a journal still say what was tested in whom, and
``phases`` / ``overallStatus`` / ``hasResults`` / enrollment are authority signals (§1.10). The
Document text is written as short sentences so a retriever and a reader see the same facts;
the structured fields stay in ``metadata`` for filters.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from medresearcher.schema import Document
from medresearcher.sources.http import SourceHttp

__all__ = ["CTGOV_URL", "ClinicalTrials", "document_from_study"]

CTGOV_URL = "https://clinicaltrials.gov/api/v2"
MAX_PAGE_SIZE = 1000
_STATUS_WORDS = {"ACTIVE_NOT_RECRUITING": "Active, not recruiting"}
_PHASE_WORDS = {"NA": "Not applicable", "EARLY_PHASE1": "Early phase 1"}


class ClinicalTrials:
    """Search studies through a shared :class:`SourceHttp` (about 50 requests/min per IP)."""

    def __init__(self, http: SourceHttp, base_url: str = CTGOV_URL) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")

    async def studies(
        self,
        *,
        condition: str | None = None,
        term: str | None = None,
        intervention: str | None = None,
        status: str | Sequence[str] | None = None,
        max_results: int = 100,
        page_size: int = 100,
        sort: str | None = None,
    ) -> AsyncIterator[Document]:
        """Studies matching ``query.cond`` / ``query.term`` / ``query.intr`` and, when given,
        ``filter.overallStatus`` (e.g. ``["RECRUITING", "COMPLETED"]``).

        Pages by ``pageToken`` / ``nextPageToken``; yields at most ``max_results``. Documents
        already yielded stay yielded when a later page fails with :class:`SourceError`.
        """
        statuses = [status] if isinstance(status, str) else list(status or [])
        remaining = max_results
        token: str | None = None
        while remaining > 0:
            params = {
                "format": "json",
                "query.cond": condition,
                "query.term": term,
                "query.intr": intervention,
                "filter.overallStatus": ",".join(statuses) or None,
                "sort": sort,
                "pageSize": min(page_size, remaining, MAX_PAGE_SIZE),
                "pageToken": token,
            }
            response = await self.http.request(
                f"{self.base_url}/studies", params, parse=json.loads, what="JSON"
            )
            data = response.data
            if not isinstance(data, dict) or not isinstance(data.get("studies", []), list):
                raise response.error("unexpected studies response: no 'studies' list")
            studies = data.get("studies") or []
            for study in studies[:remaining]:
                document = document_from_study(study)
                if document is not None:
                    yield document
                remaining -= 1
            token = data.get("nextPageToken")
            if not studies or not token:
                return


def _words(value: str | None, table: dict[str, str]) -> str:
    if not value:
        return ""
    return table.get(value) or value.replace("_", " ").capitalize()


def _phase(value: str) -> str:
    if value in _PHASE_WORDS:
        return _PHASE_WORDS[value]
    return value.replace("PHASE", "Phase ").strip()


def _year(date: str | None) -> int | None:
    try:
        return int((date or "")[:4])
    except ValueError:
        return None


def _sentence(label: str, items: list[str]) -> str | None:
    items = [i for i in items if i]
    return f"{label}: {'; '.join(items)}." if items else None


def _at(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, None where a level is missing (v2 omits empty modules)."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _intervention(item: dict[str, Any]) -> str:
    name, kind = str(item.get("name") or ""), _words(item.get("type"), {}).lower()
    return f"{name} ({kind})" if kind else name


def _outcome(item: dict[str, Any]) -> str:
    measure, frame = str(item.get("measure") or "").strip(), item.get("timeFrame")
    return f"{measure} ({frame})" if frame else measure


def document_from_study(study: dict[str, Any]) -> Document | None:
    """Map one v2 study object to a :class:`Document`; None without an NCT id."""
    protocol = study.get("protocolSection") or {}
    nct = str(_at(protocol, "identificationModule", "nctId") or "").strip()
    if not nct:
        return None
    ident = protocol["identificationModule"]
    status = protocol.get("statusModule") or {}
    design = protocol.get("designModule") or {}
    conditions = list(_at(protocol, "conditionsModule", "conditions") or [])
    interventions = _at(protocol, "armsInterventionsModule", "interventions") or []
    outcomes = _at(protocol, "outcomesModule", "primaryOutcomes") or []
    phases = list(design.get("phases") or [])
    overall = status.get("overallStatus")
    start = _at(status, "startDateStruct", "date")
    summary = str(_at(protocol, "descriptionModule", "briefSummary") or "")
    lines = [
        " ".join(summary.split()),
        _sentence("Conditions", conditions),
        _sentence("Interventions", [_intervention(i) for i in interventions]),
        _sentence("Phase", ["/".join(_phase(p) for p in phases)] if phases else []),
        _sentence("Status", [_words(overall, _STATUS_WORDS)]),
        _sentence("Primary outcomes", [_outcome(o) for o in outcomes]),
    ]
    enrollment = _at(design, "enrollmentInfo", "count")
    meshes = _at(study, "derivedSection", "conditionBrowseModule", "meshes") or []
    metadata: dict[str, Any] = {
        "conditions": conditions,
        "interventions": [str(i.get("name") or "") for i in interventions],
        "intervention_types": [str(i.get("type") or "") for i in interventions],
        "phases": phases,
        "overall_status": overall,
        "study_type": design.get("studyType"),
        "start_date": start,
        "completion_date": _at(status, "completionDateStruct", "date"),
        "last_update": _at(status, "lastUpdatePostDateStruct", "date"),
        "primary_outcomes": [str(o.get("measure") or "") for o in outcomes],
        "enrollment": int(enrollment) if isinstance(enrollment, (int, float)) else None,
        "has_results": bool(study.get("hasResults")),
        "condition_mesh": [{"id": m.get("id"), "term": m.get("term")} for m in meshes],
        "lead_sponsor": _at(protocol, "sponsorCollaboratorsModule", "leadSponsor", "name"),
    }
    return Document(
        doc_id=nct,
        title=ident.get("briefTitle") or ident.get("officialTitle") or nct,
        text="\n".join(line for line in lines if line),
        source="clinicaltrials.gov",
        source_type="trial_registry",
        year=_year(start),
        url=f"https://clinicaltrials.gov/study/{nct}",
        metadata=metadata,
    )
