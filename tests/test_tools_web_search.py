"""web_search: the local corpus backend offline, and Serper, Tavily, Brave and SearXNG against a
loopback fake that answers with recorded-shape JSON (tests/fixtures/web_search/)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from medresearcher.config import Settings
from medresearcher.data import iter_documents
from medresearcher.errors import ConfigError
from medresearcher.retrieval import build_index
from medresearcher.stage_settings import ToolSettings
from medresearcher.tools import ToolBox, build_toolbox
from medresearcher.tools.search_backends import (
    BraveSearch,
    LocalSearch,
    SearchBackend,
    SearxngSearch,
    SerperSearch,
    TavilySearch,
    WorkspaceIndex,
    make_search_backend,
)
from medresearcher.tools.web_search import WebSearchTool
from tests.conftest import run
from tests.fakes import api_server
from tests.fakes.api_server import ApiResponse, FakeApiServer

FIXTURES = Path(__file__).parent / "fixtures" / "web_search"
KEY = "sk-search-0123456789abcdef"


def fixture(name: str) -> ApiResponse:
    return ApiResponse.json(json.loads((FIXTURES / f"{name}.json").read_text("utf-8")))


class _PostHandler(api_server._Handler):
    """The fake API server's handler, plus POST with a JSON body (Serper and Tavily)."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.owner.bodies.append(json.loads(body) if body else None)
        self.do_GET()


class FakeSearchApi(FakeApiServer):
    handler = _PostHandler

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[object] = []


@pytest.fixture
def api() -> Iterator[FakeSearchApi]:
    with FakeSearchApi() as server:
        yield server


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkspaceIndex]:
    folder = tmp_path_factory.mktemp("ws") / "index"
    build_index(iter_documents("tiny"), folder, source="bundle:tiny")
    shared = WorkspaceIndex(folder)
    yield shared
    shared.close()


def search(backend: SearchBackend, arguments: object, k: int = 3):
    async def call():
        toolbox = ToolBox([WebSearchTool(backend, results_per_query=k)])
        try:
            return await toolbox.call("web_search", arguments)
        finally:
            await toolbox.aclose()

    return run(call())


def keyed(cls, api: FakeSearchApi, **kwargs):
    return cls(
        base_url=api.url,
        api_key_env="TEST_SEARCH_KEY",
        environ={"TEST_SEARCH_KEY": KEY},
        backoff_s=0.01,
        **kwargs,
    )


# ------------------------------------------------------------------------ local corpus
def test_local_search_answers_several_queries_with_corpus_urls(index: WorkspaceIndex) -> None:
    observation = search(
        LocalSearch(index), {"queries": ["Marfan syndrome FBN1", "Fabry disease GLA"]}
    )
    assert not observation.error
    queries = observation.payload["queries"]
    assert [q["query"] for q in queries] == ["Marfan syndrome FBN1", "Fabry disease GLA"]
    first = queries[0]["results"][0]
    assert first["title"] == "Marfan syndrome"
    assert first["url"] == f"corpus://{first['doc_id']}"
    assert first["source_type"] == "reference" and first["year"] in (2025, 2026)
    assert first["source_url"].startswith("https://")
    assert first["doc_id"] in observation.sources
    assert "## Marfan syndrome FBN1  (local corpus)" in observation.text
    assert f"[1] Marfan syndrome — corpus://{first['doc_id']}" in observation.text
    assert any("GLA" in r["snippet"] for r in queries[1]["results"])


def test_one_string_is_taken_as_one_query(index: WorkspaceIndex) -> None:
    observation = search(LocalSearch(index), {"queries": "Wilson disease copper"})
    assert not observation.error
    assert observation.payload["queries"][0]["query"] == "Wilson disease copper"


def test_a_result_seen_in_an_earlier_query_is_not_repeated(index: WorkspaceIndex) -> None:
    observation = search(LocalSearch(index), {"queries": ["Marfan syndrome", "Marfan FBN1"]})
    assert "(again) Marfan syndrome" in observation.text
    assert observation.text.count("corpus://ORPHA:558") == 1
    assert observation.sources.count("ORPHA:558") == 1


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"queries": []}, "at least 1"),
        ({"queries": ["  "]}, "a query is empty"),
        ({"queries": ["a", "b", "c", "d", "e", "f"]}, "at most 5"),
        ({"query": "x"}, "queries"),
    ],
)
def test_bad_arguments_are_error_observations(
    index: WorkspaceIndex, arguments: dict, problem: str
) -> None:
    observation = search(LocalSearch(index), arguments)
    assert observation.error and problem in observation.text


def test_without_an_index_the_error_says_how_to_build_one(tmp_path: Path) -> None:
    toolbox = build_toolbox(Settings(workspace=tmp_path / "ws"), tmp_path / "ws")

    async def call():
        try:
            return await toolbox.call("web_search", {"queries": ["Fabry"]})
        finally:
            await toolbox.aclose()

    observation = run(call())
    assert observation.error
    assert "medresearcher index build" in observation.text


def test_a_local_result_can_be_read_by_document_read(index: WorkspaceIndex) -> None:
    settings = Settings()
    toolbox = build_toolbox(settings, index.folder.parent, index=index)

    async def call():
        try:
            found = await toolbox.call("web_search", {"queries": ["Fabry disease GLA"]})
            url = found.payload["queries"][0]["results"][0]["url"]
            return url, await toolbox.call("document_read", {"url_or_id": url, "goal": "gene"})
        finally:
            await toolbox.aclose()

    url, read = run(call())
    assert not read.error
    assert read.sources == [url.removeprefix("corpus://")]


# ------------------------------------------------------------------------ web APIs
def test_serper_posts_the_query_with_the_key_in_a_header(api: FakeSearchApi) -> None:
    api.route("/search", fixture("serper"))
    observation = search(keyed(SerperSearch, api), {"queries": ["fabry disease gene"]}, k=3)
    assert not observation.error
    request = api.requests[0]
    assert request.method == "POST" and request.headers["x-api-key"] == KEY
    assert api.bodies == [{"q": "fabry disease gene", "num": 3}]
    results = observation.payload["queries"][0]["results"]
    assert [r["url"] for r in results] == [
        "https://medlineplus.gov/genetics/condition/fabry-disease/",
        "https://www.ncbi.nlm.nih.gov/books/NBK1292/",
        "https://www.orpha.net/en/disease/detail/324",
    ]
    assert results[1]["title"] == "Fabry Disease - GeneReviews® - NCBI Bookshelf"
    assert "α-galactosidase A" in results[1]["snippet"] and results[1]["date"] == "Jan 5, 2024"
    assert "## fabry disease gene  (serper)" in observation.text
    assert observation.sources == [r["url"] for r in results]
    assert KEY not in observation.text


def test_tavily_sends_a_bearer_key(api: FakeSearchApi) -> None:
    api.route("/search", fixture("tavily"))
    observation = search(keyed(TavilySearch, api), {"queries": ["marfan syndrome fbn1"]}, k=5)
    assert api.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert api.bodies[0] == {
        "query": "marfan syndrome fbn1",
        "max_results": 5,
        "search_depth": "basic",
    }
    results = observation.payload["queries"][0]["results"]
    assert results[0]["snippet"].startswith("Mutations in the FBN1 gene")
    assert results[1]["date"] == "2024-03-01"


def test_brave_gets_with_a_subscription_token_and_plain_snippets(api: FakeSearchApi) -> None:
    api.route("/res/v1/web/search", fixture("brave"))
    observation = search(keyed(BraveSearch, api), {"queries": ["wilson disease copper ATP7B"]})
    request = api.requests[0]
    assert request.method == "GET" and request.headers["x-subscription-token"] == KEY
    assert request.param("q") == "wilson disease copper ATP7B" and request.param("count") == "3"
    results = observation.payload["queries"][0]["results"]
    assert results[0]["title"] == "Wilson disease - ATP7B - GeneReviews"
    assert "<strong>" not in results[0]["snippet"]
    assert results[1]["title"] == "Wilson's disease"


def test_searxng_asks_for_json(api: FakeSearchApi) -> None:
    api.route("/search", fixture("searxng"))
    backend = SearxngSearch(base_url=api.url + "/", backoff_s=0.01)
    observation = search(backend, {"queries": ["gaucher disease GBA1"]})
    assert api.requests[0].param("format") == "json"
    results = observation.payload["queries"][0]["results"]
    assert results[0]["url"] == "https://www.ncbi.nlm.nih.gov/books/NBK1269/"
    assert results[1]["date"] == "2023-11-02T00:00:00"


def test_a_rate_limited_answer_is_retried_and_the_key_kept_out_of_the_log(
    api: FakeSearchApi, caplog: pytest.LogCaptureFixture
) -> None:
    slow_down = ApiResponse.error(429, retry_after=0, message=f"slow down, {KEY}")
    api.route("/search", slow_down, fixture("serper"))
    observation = search(keyed(SerperSearch, api), {"queries": ["fabry"]})
    assert not observation.error
    assert len(api.requests) == 2
    assert "HTTP 429: slow down, ***" in caplog.text and KEY not in caplog.text


def test_an_api_error_is_reported_without_the_key(api: FakeSearchApi) -> None:
    api.route("/search", ApiResponse.error(401, message=f"invalid key {KEY}"))
    observation = search(keyed(SerperSearch, api), {"queries": ["fabry"]})
    assert observation.error
    assert "HTTP 401" in observation.text and "invalid key ***" in observation.text
    assert KEY not in observation.text
    assert len(api.requests) == 1  # a 401 is not retried


def test_one_failing_query_does_not_hide_the_others(api: FakeSearchApi) -> None:
    def answer(request):
        return fixture("serper") if api.bodies[-1]["q"] == "good" else ApiResponse.error(400)

    api.route("/search", fallback=answer)
    observation = search(keyed(SerperSearch, api), {"queries": ["good", "bad"]})
    assert not observation.error
    assert "search failed: SearchBackendError" in observation.text
    errors = [q.get("error") for q in observation.payload["queries"]]
    assert errors[0] is None and "HTTP 400" in errors[1]


def test_a_missing_key_names_the_variable_and_is_not_a_crash(api: FakeSearchApi) -> None:
    backend = SerperSearch(base_url=api.url, environ={})
    observation = search(backend, {"queries": ["fabry"]})
    assert observation.error
    assert "SERPER_API_KEY" in observation.text
    assert api.requests == []


def test_the_settings_choose_the_backend(tmp_path: Path) -> None:
    index = WorkspaceIndex(tmp_path)
    assert isinstance(make_search_backend(ToolSettings(), index), LocalSearch)
    brave = make_search_backend(
        ToolSettings(web_search_backend="brave", web_search_api_key_env="MY_BRAVE"), index
    )
    assert isinstance(brave, BraveSearch) and brave.api_key_env == "MY_BRAVE"
    searx = make_search_backend(
        ToolSettings(web_search_backend="searxng", searxng_url="http://searx.local/"), index
    )
    assert isinstance(searx, SearxngSearch) and searx.base_url == "http://searx.local"
    unset = make_search_backend(ToolSettings(web_search_backend="searxng"), index)
    with pytest.raises(ConfigError, match="searxng_url"):
        run(unset.search("x", 3))
    for backend in (brave, searx, unset):
        run(backend.aclose())
