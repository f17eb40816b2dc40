"""openFDA connector against a loopback fake of api.fda.gov."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medresearcher.schema import Document
from medresearcher.sources import openfda
from medresearcher.sources.errors import SourceError
from medresearcher.sources.http import SourceHttp
from medresearcher.sources.openfda import OpenFDA
from tests.fakes.api_server import ApiRequest, ApiResponse, FakeApiServer

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
LABEL, EVENT = "/drug/label.json", "/drug/event.json"
PAGE1 = json.loads((FIXTURES / "openfda_labels_page1.json").read_text())
PAGE2 = json.loads((FIXTURES / "openfda_labels_page2.json").read_text())
NOT_FOUND = ApiResponse.json(
    {"error": {"code": "NOT_FOUND", "message": "No matches found!"}}, status=404
)
KEY = "fda-key-0123456789"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    monkeypatch.delenv("OPENFDA_API_KEY", raising=False)
    with FakeApiServer() as server:
        yield server


def run_fda(api: FakeApiServer, work, **kw: Any) -> Any:
    async def go() -> Any:
        async with SourceHttp(backoff_s=0.01, max_attempts=2) as http:
            return await work(OpenFDA(http, base_url=api.url, **kw))

    return asyncio.run(go())


def labels(search: str, errors: list[Exception], **kw: Any):
    async def work(fda: OpenFDA) -> list[Document]:
        got: list[Document] = []
        try:
            async for doc in fda.labels(search, **kw):
                got.append(doc)
        except SourceError as exc:
            errors.append(exc)
        return got

    return work


def test_pages_with_skip_and_limit(api: FakeApiServer) -> None:
    api.route(LABEL, ApiResponse.json(PAGE1), ApiResponse.json(PAGE2))
    docs = run_fda(api, labels('openfda.generic_name:"miglustat"+AND+route:oral', [], page_size=2))
    assert [d.doc_id for d in docs] == [
        "FDA:5b9a6c1e-4f2d-4a8b-9c3e-2d1f0e9a8b7c",
        "FDA:9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
        "FDA:aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
    ]
    first, second = api.requests  # total (3) reached: no third request
    assert first.param("search") == 'openfda.generic_name:"miglustat" AND route:oral'
    assert (first.param("limit"), first.param("skip")) == ("2", None)
    assert (second.param("limit"), second.param("skip")) == ("2", "2")


def test_follows_link_next_with_sort(api: FakeApiServer) -> None:
    link = f"<{api.url}{LABEL}?search=x&limit=2&sort=effective_time%3Adesc&search_after=0%3D2>"
    api.route(
        LABEL,
        ApiResponse.json(PAGE1, headers={"Link": f'{link}; rel="next"'}),
        ApiResponse.json(PAGE2),
    )
    docs = run_fda(
        api, labels("x", [], max_results=10, page_size=2, sort="effective_time:desc"), api_key=KEY
    )
    assert len(docs) == 3
    first, second = api.requests
    assert first.param("sort") == "effective_time:desc" and first.param("skip") is None
    assert second.param("search_after") == "0=2" and second.param("skip") is None
    assert (second.param("limit"), second.param("api_key")) == ("2", KEY)


def test_stops_at_the_skip_cap(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(openfda, "MAX_SKIP", 4)

    def page(request: ApiRequest) -> ApiResponse:
        skip = int(request.param("skip") or 0)
        rows = [{**PAGE2["results"][0], "set_id": f"s{skip + i}"} for i in range(2)]
        return ApiResponse.json({"meta": {"results": {"total": 10**6}}, "results": rows})

    api.route(LABEL, fallback=page)
    docs = run_fda(api, labels("x", [], max_results=100, page_size=2))
    assert [r.param("skip") for r in api.requests] == [None, "2", "4"]
    assert len(docs) == 6
    assert "openFDA pages only 4 label records by skip" in caplog.text


def test_maps_labels_to_documents(api: FakeApiServer) -> None:
    api.route(LABEL, ApiResponse.json(PAGE1))
    zavesca, boxed = run_fda(api, labels("x", [], max_results=2))
    assert zavesca.title == "Zavesca (miglustat)"
    assert zavesca.source == "openfda" and zavesca.source_type == "fda_label"
    assert zavesca.year == 2023
    assert zavesca.url == (
        "https://dailymed.nlm.nih.gov/dailymed/lookup.cfm?setid=5b9a6c1e-4f2d-4a8b-9c3e-2d1f0e9a8b7c"
    )
    assert zavesca.text.split("\n\n") == [
        "Indications and usage: 1 INDICATIONS AND USAGE Zavesca is a glucosylceramide synthase "
        "inhibitor indicated as monotherapy for the treatment of adult patients with "
        "mild/moderate type 1 Gaucher disease for whom enzyme replacement therapy is not a "
        "therapeutic option.",
        "Mechanism of action: 12.1 Mechanism of Action Miglustat is an inhibitor of the enzyme "
        "glucosylceramide synthase, which catalyzes the first step in glycosphingolipid synthesis.",
    ]
    meta = zavesca.metadata
    assert meta["set_id"] == "5b9a6c1e-4f2d-4a8b-9c3e-2d1f0e9a8b7c"
    assert (meta["effective_time"], meta["brand_name"], meta["generic_name"]) == (
        "20230915",
        "Zavesca",
        "MIGLUSTAT",
    )
    assert meta["product_type"] == "HUMAN PRESCRIPTION DRUG" and meta["route"] == ["ORAL"]
    assert meta["pharm_class_epc"] == ["Glucosylceramide Synthase Inhibitor [EPC]"]
    assert meta["pharm_class_moa"] == ["Glucosylceramide Synthase Inhibitors [MoA]"]
    assert meta["has_boxed_warning"] is False
    assert boxed.metadata["has_boxed_warning"] is True
    assert boxed.text.split("\n\n")[1].startswith("Boxed warning: WARNING: SERIOUS INFECTIONS")


def test_label_without_openfda_block_gets_a_fallback_title(api: FakeApiServer) -> None:
    api.route(LABEL, ApiResponse.json(PAGE2))
    (doc,) = run_fda(api, labels("x", []))
    assert doc.title == "FDA label aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee" and doc.year == 2019
    assert doc.metadata["brand_name"] is None and doc.metadata["route"] == []


def test_not_found_means_no_results(api: FakeApiServer) -> None:
    api.route(LABEL, NOT_FOUND)
    api.route(EVENT, NOT_FOUND)
    assert run_fda(api, labels('openfda.brand_name:"nosuchdrug"', [])) == []
    assert run_fda(api, lambda fda: fda.adverse_event_counts("x")) == []
    assert len(api.requests) == 2  # no retry of a 404


def test_other_404_is_an_error(api: FakeApiServer) -> None:
    api.route(LABEL, ApiResponse.raw("<html>Not Found</html>", status=404))
    errors: list[Exception] = []
    assert run_fda(api, labels("x", errors)) == []
    assert "HTTP 404" in str(errors[0]) and "127.0.0.1" in str(errors[0])


def test_adverse_event_counts(api: FakeApiServer) -> None:
    api.route(EVENT, ApiResponse.raw((FIXTURES / "openfda_event_counts.json").read_bytes()))
    counts = run_fda(
        api,
        lambda fda: fda.adverse_event_counts('patient.drug.openfda.generic_name:"miglustat"'),
    )
    assert counts == [("DIARRHOEA", 412), ("WEIGHT DECREASED", 187), ("TREMOR", 95)]
    request = api.requests[0]
    assert request.param("count") == "patient.reaction.reactionmeddrapt.exact"
    assert request.param("limit") == "100"


def test_malformed_page_two_keeps_page_one_and_hides_key(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENFDA_API_KEY", KEY)
    api.route(LABEL, ApiResponse.json(PAGE1))
    api.route(LABEL, fallback=ApiResponse.raw('{"meta": {}, "results": [{"set_id": "a"'))
    errors: list[Exception] = []
    docs = run_fda(api, labels("x", errors, page_size=2))
    assert len(docs) == 2
    assert [r.param("api_key") for r in api.requests] == [KEY] * 3
    message = str(errors[0])
    assert message.startswith("malformed JSON from 127.0.0.1 (")
    assert "skip=2" in message and "api_key=***" in message
    assert KEY not in message and KEY not in caplog.text
