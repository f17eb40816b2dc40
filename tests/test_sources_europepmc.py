"""Europe PMC connector against a loopback fake of the REST search."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medresearcher.schema import Document
from medresearcher.sources.errors import SourceError
from medresearcher.sources.europepmc import EuropePMC, strip_tags
from medresearcher.sources.http import SourceHttp
from tests.fakes.api_server import ApiResponse, FakeApiServer

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
SEARCH = "/europepmc/webservices/rest/search"
PAGE1 = json.loads((FIXTURES / "europepmc_page1.json").read_text())
PAGE2 = json.loads((FIXTURES / "europepmc_page2.json").read_text())


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


def search(api: FakeApiServer, query: str, errors: list[Exception], **kw: Any) -> list[Document]:
    async def go() -> list[Document]:
        got: list[Document] = []
        async with SourceHttp(backoff_s=0.01, max_attempts=2) as http:
            client = EuropePMC(http, base_url=f"{api.url}/europepmc/webservices/rest")
            try:
                async for doc in client.search(query, **kw):
                    got.append(doc)
            except SourceError as exc:
                errors.append(exc)
        return got

    return asyncio.run(go())


def test_pages_by_cursor_mark_until_it_stops_changing(api: FakeApiServer) -> None:
    last = {**PAGE2, "resultList": {"result": []}}
    api.route(SEARCH, ApiResponse.json(PAGE1), ApiResponse.json(PAGE2), ApiResponse.json(last))
    errors: list[Exception] = []
    docs = search(api, "fabry disease migalastat", errors, max_results=10, page_size=2)
    assert errors == []
    assert [d.doc_id for d in docs] == ["PMID:36112233", "EPMC:PPR:PPR645123", "PMID:37001122"]
    cursors = [r.param("cursorMark") for r in api.requests]
    assert cursors == ["*", PAGE1["nextCursorMark"], PAGE2["nextCursorMark"]]
    first = api.requests[0]
    assert (first.param("resultType"), first.param("format"), first.param("pageSize")) == (
        "core",
        "json",
        "2",
    )
    assert first.param("query") == "fabry disease migalastat"


def test_stops_when_next_cursor_repeats_and_at_max_results(api: FakeApiServer) -> None:
    same = {**PAGE1, "nextCursorMark": "*"}
    api.route(SEARCH, ApiResponse.json(same))
    assert len(search(api, "q", [], max_results=50)) == 2
    assert len(api.requests) == 1
    api.route(SEARCH, ApiResponse.json(PAGE1), ApiResponse.json(PAGE2))
    assert len(search(api, "q", [], max_results=3, page_size=2)) == 3
    assert api.requests[-1].param("pageSize") == "1"


def test_maps_core_results_to_documents(api: FakeApiServer) -> None:
    api.route(SEARCH, ApiResponse.json(PAGE1), ApiResponse.json(PAGE2))
    rct, preprint, meta = search(api, "q", [], max_results=3, page_size=2)
    assert rct.source == "europepmc" and rct.source_type == "rct" and rct.year == 2022
    assert rct.title == (
        "Migalastat in Fabry disease with amenable GLA variants: a randomized, double-blind trial."
    )
    assert rct.text.splitlines() == [
        "Background: Fabry disease is an X-linked lysosomal disorder caused by GLA variants.",
        "Methods: Adults were randomized to migalastat or placebo & followed for 6 months.",
        "Results: GL-3 inclusions fell by 41% (P = 0.008).",
    ]
    assert rct.url == "https://europepmc.org/article/MED/36112233"
    assert rct.metadata["journal"] == "Orphanet journal of rare diseases"
    assert rct.metadata["issn"] == "1750-1172"
    assert rct.metadata["doi"] == "10.1186/s13023-022-02488-1"
    assert rct.metadata["pmcid"] == "PMC9471234"
    assert rct.metadata["cited_by_count"] == 12
    assert rct.metadata["mesh"] == ["Fabry Disease", "Humans"]
    assert rct.metadata["is_open_access"] is True

    assert preprint.doc_id == "EPMC:PPR:PPR645123"
    assert preprint.source_type == "preprint" and preprint.year == 2023
    assert preprint.metadata["journal"] == "medRxiv"
    assert preprint.metadata["is_open_access"] is False

    assert meta.source_type == "meta_analysis" and meta.metadata["cited_by_count"] == 4


def test_truncated_page_two_keeps_page_one(api: FakeApiServer) -> None:
    body = json.dumps(PAGE2).encode()
    api.route(SEARCH, ApiResponse.json(PAGE1))
    api.route(SEARCH, fallback=ApiResponse(body=body, truncate_at=len(body) // 2))
    errors: list[Exception] = []
    docs = search(api, "q", errors, max_results=10, page_size=2)
    assert [d.doc_id for d in docs] == ["PMID:36112233", "EPMC:PPR:PPR645123"]
    assert "127.0.0.1" in str(errors[0]) and "truncated" in str(errors[0])
    assert "cursorMark=AoIIQHpxnCgxMjM0NTY3OA%3D%3D" in str(errors[0])


def test_malformed_page_two_keeps_page_one(api: FakeApiServer) -> None:
    api.route(SEARCH, ApiResponse.json(PAGE1))
    api.route(SEARCH, fallback=ApiResponse.raw("<html><body>503 Service</body>"))
    errors: list[Exception] = []
    docs = search(api, "q", errors, max_results=10, page_size=2)
    assert len(docs) == 2
    assert str(errors[0]).startswith("malformed JSON from 127.0.0.1 (")
    assert "Expecting value: line 1 column 1 (char 0)" in str(errors[0])


def test_strip_tags() -> None:
    assert strip_tags("<p>CO<sub>2</sub> &lt; 5%</p><p>next</p>") == "CO2 < 5%\nnext"
    assert strip_tags(None) == ""
