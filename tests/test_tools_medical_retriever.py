"""medical_retriever: Score = λ·Rel + (1−λ)·Auth over the workspace index, filters, and live
PubMed / ClinicalTrials.gov / openFDA records merged on one scale (fake APIs on loopback)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from medresearcher.config import RetrievalSettings, Settings, SourcesSettings
from medresearcher.data import iter_documents
from medresearcher.retrieval import build_index
from medresearcher.schema import Document
from medresearcher.stage_settings import ToolSettings
from medresearcher.tools import ToolBox, build_toolbox
from medresearcher.tools.medical_retriever import (
    LiveSources,
    MedicalRetrieverTool,
    openfda_terms,
    rank_pool,
)
from medresearcher.tools.search_backends import WorkspaceIndex
from tests.conftest import run
from tests.fakes.api_server import ApiResponse, FakeApiServer

SOURCES = Path(__file__).parent / "fixtures" / "sources"
LAMBDA = RetrievalSettings().relevance_weight
RCT_XML = """<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>30000001</PMID><Article>
<Journal><Title>Genet Med</Title><JournalIssue><PubDate><Year>2021</Year></PubDate></JournalIssue>
</Journal><ArticleTitle>Migalastat in Fabry disease: a randomized trial</ArticleTitle>
<Abstract><AbstractText>Migalastat stabilised kidney function in Fabry disease patients with
amenable GLA variants.</AbstractText></Abstract><PublicationTypeList><PublicationType>
Randomized Controlled Trial</PublicationType></PublicationTypeList></Article></MedlineCitation>
</PubmedArticle></PubmedArticleSet>"""


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkspaceIndex]:
    folder = tmp_path_factory.mktemp("ws") / "index"
    build_index(iter_documents("tiny"), folder, source="bundle:tiny")
    shared = WorkspaceIndex(folder)
    yield shared
    shared.close()


@pytest.fixture
def apis(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    for name in ("NCBI_API_KEY", "NCBI_EMAIL", "OPENFDA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with FakeApiServer() as server:
        yield server


def call(tool: MedicalRetrieverTool, arguments: dict):
    async def go():
        try:
            return await ToolBox([tool], max_observation_tokens=4096).call(
                "medical_retriever", arguments
            )
        finally:
            await tool.aclose()

    return run(go())


def doc(doc_id: str, text: str, source_type: str, year: int | None = 2020) -> Document:
    return Document(
        doc_id=doc_id, title=doc_id, text=text, source="test", source_type=source_type, year=year
    )


def test_hits_are_ranked_evidence_with_type_year_authority_and_id(index: WorkspaceIndex) -> None:
    observation = call(MedicalRetrieverTool(index), {"query": "Marfan syndrome FBN1", "k": 3})
    assert not observation.error
    hits = observation.payload["hits"]
    assert len(hits) == 3 and hits[0]["title"] == "Marfan syndrome"
    assert observation.sources == [h["doc_id"] for h in hits]
    first = observation.text.splitlines()[1]
    assert first.startswith(f"1. Marfan syndrome [{hits[0]['doc_id']}] · reference · ")
    assert f"Auth {hits[0]['authority']:.2f}" in first and "Score" in first
    assert "λ = 0.40" in observation.text.splitlines()[0]
    scores = [h["score"] for h in hits if h["relevance"] >= 0.8 * hits[0]["relevance"]]
    assert scores == sorted(scores, reverse=True)


def test_source_type_and_year_filters_hold(index: WorkspaceIndex) -> None:
    articles = call(
        MedicalRetrieverTool(index),
        {"query": "disease", "k": 10, "source_types": ["article"], "year_to": 2030},
    )
    assert articles.payload["hits"]
    assert {h["source_type"] for h in articles.payload["hits"]} == {"article"}
    assert "source types article" in articles.text
    recent = call(MedicalRetrieverTool(index), {"query": "Fabry", "year_from": 2026})
    assert recent.payload["hits"] and all(h["year"] >= 2026 for h in recent.payload["hits"])


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"query": "x", "year_from": 2020, "year_to": 2010}, "after year_to"),
        ({"query": "x", "source_types": ["blog"]}, "source_types.0"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": ""}, "query"),
    ],
)
def test_bad_arguments_are_error_observations(
    index: WorkspaceIndex, arguments: dict, problem: str
) -> None:
    observation = call(MedicalRetrieverTool(index), arguments)
    assert observation.error and problem in observation.text


def test_no_match_says_so_without_an_error(index: WorkspaceIndex) -> None:
    observation = call(MedicalRetrieverTool(index), {"query": "qwertyuiop zxcvbnm"})
    assert not observation.error
    assert "No evidence found" in observation.text and observation.sources == []


def test_without_an_index_the_error_says_how_to_build_one(tmp_path: Path) -> None:
    toolbox = build_toolbox(Settings(), tmp_path / "ws", names=["medical_retriever"])

    async def go():
        try:
            return await toolbox.call("medical_retriever", {"query": "Fabry"})
        finally:
            await toolbox.aclose()

    observation = run(go())
    assert observation.error
    assert "medresearcher index build" in observation.text and "make demo" in observation.text


def test_rank_pool_lets_authority_decide_only_among_relevant_documents() -> None:
    pool = [
        ("index", doc("case", "Fabry disease GLA variants in a family.", "case_report")),
        ("pubmed", doc("off-topic", "Asthma inhaler technique in adults.", "guideline")),
        ("pubmed", doc("guide", "Fabry disease GLA variants: management.", "guideline")),
    ]
    settings = RetrievalSettings()
    ranked = rank_pool(pool, "Fabry disease GLA variants", [0.3, 1.0, 1.0], settings)
    assert [h.document.doc_id for h in ranked] == ["guide", "case", "off-topic"]
    assert ranked[2].relevance == 0.0
    for hit in ranked:
        assert hit.score == pytest.approx(LAMBDA * hit.relevance + (1 - LAMBDA) * hit.authority)
    assert [h.origin for h in ranked] == ["pubmed", "index", "pubmed"]


def test_openfda_terms_carry_no_query_syntax() -> None:
    assert openfda_terms('miglustat: "Gaucher" (type-1) AND 22q11.2') == "miglustat gaucher type 1"


def serve_live(apis: FakeApiServer) -> None:
    apis.route(
        "/eutils/esearch.fcgi",
        fallback=ApiResponse.json(
            {
                "esearchresult": {
                    "count": "1",
                    "retmax": "1",
                    "retstart": "0",
                    "idlist": ["30000001"],
                }
            }
        ),
    )
    apis.route("/eutils/efetch.fcgi", fallback=ApiResponse.xml(RCT_XML))
    studies = json.loads((SOURCES / "ctgov_page1.json").read_text("utf-8"))
    studies.pop("nextPageToken")
    apis.route("/api/v2/studies", fallback=ApiResponse.json(studies))
    apis.route("/drug/label.json", fallback=ApiResponse.error(500, message="openFDA is down"))


def live_tool(index: WorkspaceIndex, apis: FakeApiServer) -> MedicalRetrieverTool:
    live = LiveSources(
        SourcesSettings(max_retries=0, cache="off"),
        base_urls={
            "pubmed": f"{apis.url}/eutils",
            "clinicaltrials": f"{apis.url}/api/v2",
            "openfda": apis.url,
        },
    )
    return MedicalRetrieverTool(index, live=live)


def test_live_sources_are_merged_and_scored_on_one_scale(
    index: WorkspaceIndex, apis: FakeApiServer
) -> None:
    serve_live(apis)
    observation = call(live_tool(index, apis), {"query": "Fabry disease migalastat", "k": 6})
    assert not observation.error
    hits = observation.payload["hits"]
    origins = {h["doc_id"]: h["origin"] for h in hits}
    assert origins["PMID:30000001"] == "pubmed"
    assert origins["NCT03500094"] == "clinicaltrials"
    assert any(origin == "index" for origin in origins.values())
    assert hits[0]["doc_id"] in ("PMID:30000001", "NCT03500094")  # the only ones on migalastat
    for hit in hits:
        expected = LAMBDA * hit["relevance"] + (1 - LAMBDA) * hit["authority"]
        assert hit["score"] == pytest.approx(expected, abs=1e-3)
    rct = next(h for h in hits if h["doc_id"] == "PMID:30000001")
    assert rct["source_type"] == "rct" and rct["year"] == 2021
    status = observation.payload["live"]
    assert status["pubmed"] == "1 records" and status["clinicaltrials"] == "2 records"
    assert status["openfda"].startswith("error:") and "500" in status["openfda"]
    assert "openfda: error" in observation.text.splitlines()[0]
    assert "· live pubmed" in observation.text
    esearch = apis.requests_to("/eutils/esearch.fcgi")[0]
    assert esearch.param("term") == "Fabry disease migalastat"
    assert apis.requests_to("/api/v2/studies")[0].param("query.term") == "Fabry disease migalastat"


def test_filters_apply_to_live_records_too(index: WorkspaceIndex, apis: FakeApiServer) -> None:
    serve_live(apis)
    observation = call(
        live_tool(index, apis), {"query": "Fabry migalastat", "source_types": ["rct"]}
    )
    assert [h["doc_id"] for h in observation.payload["hits"]] == ["PMID:30000001"]
    assert observation.payload["live"]["clinicaltrials"] == "0 records"


def test_build_toolbox_turns_live_sources_on_from_settings(tmp_path: Path) -> None:
    settings = Settings(tools=ToolSettings(live_sources=True))
    toolbox = build_toolbox(settings, tmp_path, names=["medical_retriever"])
    tool = toolbox.tools["medical_retriever"]
    assert isinstance(tool, MedicalRetrieverTool) and tool.live is not None
    assert tool.live.cache_path == tmp_path / "cache" / "http.sqlite"
    offline = build_toolbox(Settings(), tmp_path, names=["medical_retriever"])
    assert offline.tools["medical_retriever"].live is None


def test_build_toolbox_closes_the_index_it_opened_but_not_a_shared_one(
    index: WorkspaceIndex,
) -> None:
    async def use(toolbox):
        try:
            return await toolbox.call("medical_retriever", {"query": "Fabry"})
        finally:
            await toolbox.aclose()

    own = build_toolbox(Settings(), index.folder.parent, names=["medical_retriever"])
    opened = own.tools["medical_retriever"].index
    assert not run(use(own)).error
    assert opened._retriever is None  # closed with the toolbox
    shared = build_toolbox(
        Settings(), index.folder.parent, names=["medical_retriever"], index=index
    )
    assert not run(use(shared)).error
    assert index._retriever is not None  # still open for the next toolbox
