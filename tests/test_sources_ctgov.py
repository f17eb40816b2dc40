"""ClinicalTrials.gov v2 connector against a loopback fake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medresearcher.schema import Document
from medresearcher.sources.ctgov import ClinicalTrials
from medresearcher.sources.errors import SourceError
from medresearcher.sources.http import SourceHttp
from tests.fakes.api_server import ApiResponse, FakeApiServer

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
STUDIES = "/api/v2/studies"
PAGE1 = json.loads((FIXTURES / "ctgov_page1.json").read_text())
PAGE2 = json.loads((FIXTURES / "ctgov_page2.json").read_text())


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


def studies(api: FakeApiServer, errors: list[Exception], **kw: Any) -> list[Document]:
    async def go() -> list[Document]:
        got: list[Document] = []
        async with SourceHttp(backoff_s=0.01, max_attempts=2) as http:
            client = ClinicalTrials(http, base_url=f"{api.url}/api/v2")
            try:
                async for doc in client.studies(**kw):
                    got.append(doc)
            except SourceError as exc:
                errors.append(exc)
        return got

    return asyncio.run(go())


def test_pages_by_page_token(api: FakeApiServer) -> None:
    api.route(STUDIES, ApiResponse.json(PAGE1), ApiResponse.json(PAGE2))
    docs = studies(
        api,
        [],
        condition="gaucher disease",
        intervention="eliglustat",
        status=["RECRUITING", "COMPLETED"],
        page_size=2,
    )
    assert [d.doc_id for d in docs] == ["NCT03500094", "NCT05280548", "NCT04115137"]
    first, second = api.requests
    assert first.param("pageToken") is None and second.param("pageToken") == "NF0g5JGBkfkt"
    assert {k: v[0] for k, v in first.query.items()} == {
        "format": "json",
        "query.cond": "gaucher disease",
        "query.intr": "eliglustat",
        "filter.overallStatus": "RECRUITING,COMPLETED",
        "pageSize": "2",
    }


def test_max_results_caps_pages(api: FakeApiServer) -> None:
    api.route(STUDIES, ApiResponse.json(PAGE1), ApiResponse.json(PAGE2))
    docs = studies(api, [], term="fabry", max_results=1, page_size=2)
    assert [d.doc_id for d in docs] == ["NCT03500094"]
    assert len(api.requests) == 1 and api.requests[0].param("pageSize") == "1"


def test_maps_studies_to_documents(api: FakeApiServer) -> None:
    api.route(STUDIES, ApiResponse.json(PAGE1), ApiResponse.json(PAGE2))
    fabry, gaucher3, eliglustat = studies(api, [], condition="x", page_size=2)
    assert fabry.source == "clinicaltrials.gov" and fabry.source_type == "trial_registry"
    assert fabry.title == "Migalastat in Adults With Fabry Disease and Amenable GLA Variants"
    assert fabry.year == 2018 and fabry.url == "https://clinicaltrials.gov/study/NCT03500094"
    assert fabry.text.splitlines() == [
        "This study evaluates whether migalastat reduces kidney GL-3 in adults with Fabry disease.",
        "Conditions: Fabry Disease.",
        "Interventions: Migalastat (drug); Placebo (drug).",
        "Phase: Phase 3.",
        "Status: Completed.",
        "Primary outcomes: Change in interstitial capillary GL-3 inclusions (Baseline to Month 6).",
    ]
    meta = fabry.metadata
    assert meta["conditions"] == ["Fabry Disease"]
    assert meta["interventions"] == ["Migalastat", "Placebo"]
    assert meta["phases"] == ["PHASE3"] and meta["overall_status"] == "COMPLETED"
    assert (meta["start_date"], meta["completion_date"]) == ("2018-06-12", "2021-03-30")
    assert meta["enrollment"] == 57 and meta["has_results"] is True
    assert meta["condition_mesh"] == [{"id": "D000795", "term": "Fabry Disease"}]
    assert meta["primary_outcomes"] == ["Change in interstitial capillary GL-3 inclusions"]

    assert "Status: Active, not recruiting." in gaucher3.text
    assert gaucher3.year == 2022 and gaucher3.metadata["phases"] == []
    assert "Phase: Phase 2/Phase 3." in eliglustat.text
    assert eliglustat.metadata["has_results"] is False


def test_server_error_on_page_two_keeps_page_one(api: FakeApiServer) -> None:
    api.route(STUDIES, ApiResponse.json(PAGE1))
    api.route(STUDIES, fallback=ApiResponse.error(503, message="Service Unavailable"))
    errors: list[Exception] = []
    docs = studies(api, errors, condition="x", page_size=2)
    assert len(docs) == 2
    assert "HTTP 503 after 2 attempts: Service Unavailable" in str(errors[0])
    assert "pageToken=NF0g5JGBkfkt" in str(errors[0])


def test_bad_request_fails_at_once(api: FakeApiServer) -> None:
    api.route(STUDIES, fallback=ApiResponse.raw("pageSize: must be at most 1000", status=400))
    errors: list[Exception] = []
    assert studies(api, errors, condition="x") == []
    assert len(api.requests) == 1
    assert str(errors[0]).endswith("HTTP 400: pageSize: must be at most 1000")
