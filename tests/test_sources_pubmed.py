"""PubMed E-utilities connector against a loopback fake of eutils."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medresearcher.schema import Document
from medresearcher.sources.errors import SourceError
from medresearcher.sources.http import SourceHttp
from medresearcher.sources.pubmed import PubMed
from tests.fakes.api_server import ApiRequest, ApiResponse, FakeApiServer

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
KEY = "ncbi-key-abcdef123456"
ESEARCH, ESUMMARY, EFETCH = (f"/eutils/{n}.fcgi" for n in ("esearch", "esummary", "efetch"))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    monkeypatch.delenv("NCBI_API_KEY", raising=False)
    monkeypatch.delenv("NCBI_EMAIL", raising=False)
    with FakeApiServer() as server:
        yield server


def article_xml(pmid: str) -> str:
    return (
        f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><Journal><Title>J"
        f"</Title><JournalIssue><PubDate><Year>2020</Year></PubDate></JournalIssue></Journal>"
        f"<ArticleTitle>Article {pmid}</ArticleTitle><Abstract><AbstractText>About {pmid}."
        f"</AbstractText></Abstract><PublicationTypeList><PublicationType>Journal Article"
        f"</PublicationType></PublicationTypeList></Article></MedlineCitation></PubmedArticle>"
    )


def efetch_for(request: ApiRequest) -> ApiResponse:
    ids = (request.param("id") or "").split(",")
    body = "<PubmedArticleSet>" + "".join(article_xml(i) for i in ids) + "</PubmedArticleSet>"
    return ApiResponse.xml(body)


def esearch_over(all_ids: list[str], count: int | None = None):
    def answer(request: ApiRequest) -> ApiResponse:
        start, size = int(request.param("retstart") or 0), int(request.param("retmax") or 20)
        result = {
            "count": str(len(all_ids) if count is None else count),
            "retmax": str(size),
            "retstart": str(start),
            "idlist": all_ids[start : start + size],
        }
        return ApiResponse.json({"esearchresult": result})

    return answer


def run_pubmed(api: FakeApiServer, work, *, http_kw: dict | None = None, **kw: Any) -> Any:
    async def go() -> Any:
        options = {"backoff_s": 0.01, "max_attempts": 2, **(http_kw or {})}
        async with SourceHttp(**options) as http:
            return await work(PubMed(http, base_url=f"{api.url}/eutils", **kw))

    return asyncio.run(go())


def collect(query: str, errors: list[Exception], **kw: Any):
    async def work(pubmed: PubMed) -> list[Document]:
        got: list[Document] = []
        try:
            async for doc in pubmed.search_documents(query, **kw):
                got.append(doc)
        except SourceError as exc:
            errors.append(exc)
        return got

    return work


def test_esearch_sends_the_documented_parameters(api: FakeApiServer) -> None:
    api.route(ESEARCH, ApiResponse.raw((FIXTURES / "pubmed_esearch.json").read_bytes()))

    async def work(pubmed: PubMed):
        return await pubmed.esearch(
            "fabry disease", retmax=2, sort="pub_date", mindate=2015, maxdate="2024/12/31"
        )

    result = run_pubmed(api, work, email="dev@example.org")
    assert (result.count, result.ids) == (2, ["36112233", "37001122"])
    assert result.query_translation.startswith('"fabry disease"[MeSH Terms]')
    query = api.requests[0].query
    assert {k: v[0] for k, v in query.items()} == {
        "db": "pubmed",
        "term": "fabry disease",
        "retmode": "json",
        "retmax": "2",
        "retstart": "0",
        "sort": "pub_date",
        "datetype": "pdat",
        "mindate": "2015",
        "maxdate": "2024/12/31",
        "tool": "medresearcher",
        "email": "dev@example.org",
    }


def test_esearch_error_field_is_a_source_error(api: FakeApiServer) -> None:
    api.route(ESEARCH, ApiResponse.json({"esearchresult": {"ERROR": "Invalid query"}}))
    with pytest.raises(SourceError, match=r"127.0.0.1 \(.*esearch.fcgi.*\): ESearch error"):
        run_pubmed(api, lambda pm: pm.esearch("(("))


def test_efetch_maps_articles_to_documents(api: FakeApiServer) -> None:
    api.route(EFETCH, ApiResponse.xml((FIXTURES / "pubmed_efetch.xml").read_bytes()))
    rct, review = run_pubmed(api, lambda pm: pm.efetch(["36112233", 37001122]))
    assert api.requests[0].param("id") == "36112233,37001122"
    assert api.requests[0].param("retmode") == "xml"
    assert rct.doc_id == "PMID:36112233" and rct.source == "pubmed"
    assert rct.source_type == "rct" and rct.year == 2022
    assert rct.title.startswith("Migalastat in Fabry disease with amenable GLA variants")
    assert rct.text.splitlines()[0] == (
        "BACKGROUND: Fabry disease is an X-linked lysosomal disorder caused by GLA variants."
    )
    assert "(P=0.008)" in rct.text
    assert rct.url == "https://pubmed.ncbi.nlm.nih.gov/36112233/"
    assert rct.metadata["doi"] == "10.1186/s13023-022-02488-1"
    assert rct.metadata["journal"] == "Orphanet journal of rare diseases"
    assert "Fabry Disease" in json.dumps(rct.metadata["mesh"])
    assert (review.doc_id, review.source_type, review.year) == ("PMID:37001122", "review", 2023)


def test_esummary_batches_of_200(api: FakeApiServer) -> None:
    def answer(request: ApiRequest) -> ApiResponse:
        ids = (request.param("id") or "").split(",")
        result: dict = {"uids": ids}
        result.update({i: {"uid": i, "pubtype": ["Review"]} for i in ids})
        return ApiResponse.json({"result": result})

    api.route(ESUMMARY, fallback=answer)
    ids = [str(30000000 + i) for i in range(450)]
    summaries = run_pubmed(api, lambda pm: pm.esummary(ids))
    assert [s["uid"] for s in summaries] == ids
    assert [len(r.param("id").split(",")) for r in api.requests] == [200, 200, 50]


def test_esummary_fixture(api: FakeApiServer) -> None:
    api.route(ESUMMARY, ApiResponse.raw((FIXTURES / "pubmed_esummary.json").read_bytes()))
    first, second = run_pubmed(api, lambda pm: pm.esummary(["36112233", "37001122"]))
    assert first["pubtype"] == [
        "Journal Article",
        "Randomized Controlled Trial",
        "Clinical Trial, Phase III",
    ]
    assert second["fulljournalname"] == "Human genetics"


def test_search_documents_pages_with_retstart(api: FakeApiServer) -> None:
    ids = [str(100 + i) for i in range(5)]
    api.route(ESEARCH, fallback=esearch_over(ids))
    api.route(EFETCH, fallback=efetch_for)
    errors: list[Exception] = []
    docs = run_pubmed(api, collect("x", errors, max_results=50, page_size=2))
    assert [d.doc_id for d in docs] == [f"PMID:{i}" for i in ids] and errors == []
    assert [r.param("retstart") for r in api.requests_to(ESEARCH)] == ["0", "2", "4"]
    assert [r.param("id") for r in api.requests_to(EFETCH)] == ["100,101", "102,103", "104"]


def test_search_documents_never_exceeds_max_results(api: FakeApiServer) -> None:
    api.route(ESEARCH, fallback=esearch_over([str(i) for i in range(10)]))
    api.route(EFETCH, fallback=efetch_for)
    docs = run_pubmed(api, collect("x", [], max_results=3, page_size=2))
    assert len(docs) == 3
    assert [r.param("retmax") for r in api.requests_to(ESEARCH)] == ["2", "1"]


def test_search_documents_stops_at_the_esearch_window(
    api: FakeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    api.route(ESEARCH, fallback=esearch_over([str(i) for i in range(10)], count=50_000))
    api.route(EFETCH, fallback=efetch_for)

    async def work(pubmed: PubMed) -> list[Document]:
        pubmed.esearch_window = 4
        return await collect("big query", [], max_results=100, page_size=3)(pubmed)

    docs = run_pubmed(api, work)
    assert len(docs) == 4
    assert [r.param("retmax") for r in api.requests_to(ESEARCH)] == ["3", "1"]
    assert "matches 50000 records, but ESearch pages only the first 4" in caplog.text


def test_malformed_json_on_page_two_keeps_page_one(api: FakeApiServer) -> None:
    first = esearch_over([str(i) for i in range(4)])
    api.route(ESEARCH, first(ApiRequest("GET", ESEARCH, {"retmax": ["2"]}, "", {}, 0.0)))
    api.route(ESEARCH, fallback=ApiResponse.raw('{"esearchresult": {"count": "4", "idl'))
    api.route(EFETCH, fallback=efetch_for)
    errors: list[Exception] = []
    docs = run_pubmed(api, collect("x", errors, page_size=2))
    assert [d.doc_id for d in docs] == ["PMID:0", "PMID:1"]
    (err,) = errors
    assert str(err).startswith("malformed JSON from 127.0.0.1 (")
    assert "esearch.fcgi" in str(err) and "line 1 column" in str(err)


def test_truncated_efetch_on_page_two_keeps_page_one(api: FakeApiServer) -> None:
    api.route(ESEARCH, fallback=esearch_over([str(i) for i in range(4)]))
    whole = efetch_for(ApiRequest("GET", EFETCH, {"id": ["2,3"]}, "", {}, 0.0)).body
    api.route(EFETCH, efetch_for(ApiRequest("GET", EFETCH, {"id": ["0,1"]}, "", {}, 0.0)))
    api.route(EFETCH, fallback=ApiResponse.xml(whole, truncate_at=100))
    errors: list[Exception] = []
    docs = run_pubmed(api, collect("x", errors, page_size=2))
    assert [d.doc_id for d in docs] == ["PMID:0", "PMID:1"]
    assert "efetch.fcgi" in str(errors[0]) and "truncated" in str(errors[0])


def test_corrupt_xml_is_a_source_error(api: FakeApiServer) -> None:
    api.route(EFETCH, fallback=ApiResponse.xml("<PubmedArticleSet><PubmedArticle><Medline"))
    with pytest.raises(SourceError, match=r"malformed XML from 127.0.0.1 .*efetch:1:\d+"):
        run_pubmed(api, lambda pm: pm.efetch(["1"]))


def test_api_key_from_env_is_sent_and_masked(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("NCBI_API_KEY", KEY)
    api.route(ESEARCH, fallback=ApiResponse.error(502, message="Bad Gateway"))
    with pytest.raises(SourceError) as info:
        run_pubmed(api, lambda pm: pm.esearch("fabry"))
    assert [r.param("api_key") for r in api.requests] == [KEY, KEY]
    assert "HTTP 502 after 2 attempts" in str(info.value)
    assert KEY not in str(info.value) and KEY not in caplog.text
    assert "api_key=***" in str(info.value)
