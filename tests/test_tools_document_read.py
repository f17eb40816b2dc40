"""document_read: corpus ids and guarded URLs; HTML, PDF and text; model extraction toward the
goal or, without a model, the passages retrieval ranks highest; sources always named."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from medresearcher.data import iter_documents
from medresearcher.retrieval import build_index
from medresearcher.stage_settings import ToolSettings
from medresearcher.tools import ToolBox, build_toolbox
from medresearcher.tools.document_read import DocumentReadTool, html_to_text, split_passages
from medresearcher.tools.search_backends import WorkspaceIndex
from medresearcher.tools.url_guard import UrlGuard
from tests.conftest import run
from tests.fakes.api_server import ApiResponse, FakeApiServer
from tests.fakes.openai_server import Reply

GLA = "Fabry disease is caused by pathogenic variants in the GLA gene on chromosome Xq22."
FILLER = [
    "The kidneys are affected in most adult men, with proteinuria and declining filtration.",
    "Cardiac involvement includes left ventricular hypertrophy and arrhythmia over the years.",
    "Neuropathic pain in the hands and feet is often the first symptom in childhood.",
    "Angiokeratomas cluster between the umbilicus and the knees in many patients.",
    "Hearing loss and tinnitus are frequent, as are corneal changes seen by slit lamp.",
]
ARTICLE = f"""<!doctype html><html><head><title>Fabry disease overview</title>
<style>p {{ color: red }}</style><script>var tracking = "GLA gene tracker";</script></head>
<body><nav><a href="/">Home</a> GLA gene menu link</nav>
<header>Site banner</header>
<main><h1>Fabry disease</h1>
{"".join(f"<p>{line * 3}</p>" for line in FILLER)}
<p>{GLA} Enzyme replacement with agalsidase is available.</p>
{"".join(f"<p>{line}</p>" for line in reversed(FILLER))}
</main><footer>Copyright GLA gene footer</footer></body></html>"""


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ws") / "index"
    build_index(iter_documents("tiny"), folder, source="bundle:tiny")
    return folder


@pytest.fixture
def site() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


def reader(index_dir: Path | None, site: FakeApiServer | None = None, **kwargs) -> ToolBox:
    allowed = {f"127.0.0.1:{site.port}"} if site else set()
    guard = UrlGuard(allowed_hosts=allowed, max_bytes=kwargs.pop("max_bytes", 5_000_000))
    index = WorkspaceIndex(index_dir) if index_dir else None
    return ToolBox([DocumentReadTool(index, guard, **kwargs)], max_observation_tokens=4096)


def read(toolbox: ToolBox, url_or_id: str, goal: str = ""):
    arguments = {"url_or_id": url_or_id, "goal": goal}

    async def call():
        try:
            return await toolbox.call("document_read", arguments)
        finally:
            await toolbox.aclose()

    return run(call())


def test_a_corpus_id_is_read_from_the_index(index_dir: Path) -> None:
    observation = read(reader(index_dir), "ORPHA:558", "which gene causes it")
    assert not observation.error
    assert observation.sources == ["ORPHA:558"]
    assert observation.text.startswith("Source: Marfan syndrome — ORPHA:558 (reference, 2025)")
    assert "Goal: which gene causes it" in observation.text
    assert "connective tissue" in observation.text
    assert observation.payload["method"] == "full"


def test_a_corpus_url_from_web_search_reads_the_same_document(index_dir: Path) -> None:
    by_id = read(reader(index_dir), "DOID:14499")
    by_url = read(reader(index_dir), "corpus://DOID:14499")
    assert by_url.text == by_id.text and by_url.sources == ["DOID:14499"]
    assert "GLA gene" in by_url.text


def test_an_unknown_id_is_an_error_that_says_what_to_use(index_dir: Path) -> None:
    observation = read(reader(index_dir), "ORPHA:999999999")
    assert observation.error
    assert "no document 'ORPHA:999999999'" in observation.text
    assert "web_search or medical_retriever" in observation.text
    hint = read(reader(index_dir), "www.orpha.net/en/disease/detail/558")
    assert hint.error and "https://" in hint.text


def test_without_an_index_the_error_says_how_to_build_one(tmp_path: Path) -> None:
    observation = read(reader(tmp_path / "no-index"), "ORPHA:558")
    assert observation.error
    assert "medresearcher index build" in observation.text and "make demo" in observation.text


def test_html_is_reduced_to_its_main_text() -> None:
    title, text = html_to_text(ARTICLE)
    assert title == "Fabry disease overview"
    assert GLA in text
    for dropped in ("tracking", "menu link", "Site banner", "footer", "color: red"):
        assert dropped not in text
    assert text.splitlines()[0] == "Fabry disease"


def test_a_web_page_returns_the_passages_that_match_the_goal(site: FakeApiServer) -> None:
    site.route("/fabry", ApiResponse.raw(ARTICLE, content_type="text/html; charset=utf-8"))
    url = f"{site.url}/fabry"
    observation = read(
        reader(None, site, max_passages=1, whole_document_chars=1500),
        url,
        "Which gene is mutated? GLA",
    )
    assert not observation.error
    assert observation.sources == [url]
    assert observation.text.startswith(f"Source: Fabry disease overview — {url}")
    assert GLA in observation.text
    assert "ranked by retrieval against the goal" in observation.text
    payload = observation.payload
    assert payload["method"] == "retrieval" and len(payload["passages"]) == 1
    assert payload["n_passages"] > 2
    assert payload["passages"][0]["score"] > 0
    assert FILLER[0] not in observation.text  # passages that do not match are left out


def test_a_goal_nothing_matches_returns_the_beginning(site: FakeApiServer) -> None:
    site.route("/fabry", ApiResponse.raw(ARTICLE, content_type="text/html"))
    observation = read(
        reader(None, site, max_passages=2, whole_document_chars=1500),
        f"{site.url}/fabry",
        "zebrafish",
    )
    assert observation.payload["method"] == "beginning"
    assert "No passage matches the goal" in observation.text
    assert FILLER[0] in observation.text


def test_a_redirected_page_names_both_addresses(site: FakeApiServer) -> None:
    site.route("/old", ApiResponse(status=301, headers={"Location": "/new"}))
    site.route("/new", ApiResponse.raw("Plain text about GLA.", content_type="text/plain"))
    observation = read(reader(None, site), f"{site.url}/old")
    assert observation.sources == [f"{site.url}/new", f"{site.url}/old"]
    assert "Plain text about GLA." in observation.text


def test_a_private_address_is_refused_as_an_observation(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1/", "http://10.0.0.1/", "file:///etc/passwd"):
        observation = read(reader(None), url, "anything")
        assert observation.error and observation.text.startswith("Error: refused to fetch")
        assert observation.sources == [url]


def make_pdf(lines: list[str], title: str = "Fabry leaflet") -> bytes:
    """A one-page PDF with Helvetica text, written by hand (no PDF writer needed)."""
    content = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) '" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({title}) >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>"
    return out + f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()


def test_a_pdf_is_read_with_pypdf(site: FakeApiServer) -> None:
    pytest.importorskip("pypdf")
    pdf = make_pdf(["Fabry disease is caused by GLA variants.", "Migalastat is an option."])
    site.route("/leaflet.pdf", ApiResponse.raw(pdf, content_type="application/pdf"))
    observation = read(reader(None, site), f"{site.url}/leaflet.pdf", "treatment")
    assert not observation.error
    assert "Fabry leaflet" in observation.text.splitlines()[0]
    assert "Migalastat is an option." in observation.text


def test_a_pdf_without_pypdf_says_what_to_install(
    site: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # import pypdf now fails
    site.route("/leaflet.pdf", ApiResponse.raw(make_pdf(["x"]), content_type="application/pdf"))
    observation = read(reader(None, site), f"{site.url}/leaflet.pdf")
    assert observation.error and "pip install pypdf" in observation.text


def test_binary_content_is_refused_with_its_type(site: FakeApiServer) -> None:
    site.route("/blob", ApiResponse.raw(b"\x00\x01", content_type="application/octet-stream"))
    observation = read(reader(None, site), f"{site.url}/blob")
    assert observation.error and "application/octet-stream" in observation.text


def test_a_page_cut_at_the_size_cap_says_so(site: FakeApiServer) -> None:
    site.route("/long", ApiResponse.raw("GLA " * 5000, content_type="text/plain"))
    observation = read(reader(None, site, max_bytes=2000), f"{site.url}/long", "GLA")
    assert not observation.error
    assert "cut at 2,000 bytes" in observation.text


def test_split_passages_keeps_passages_under_the_limit() -> None:
    text = "Heading\n" + " ".join(f"Sentence number {i} about GLA." for i in range(200))
    passages = split_passages(text, max_chars=300)
    assert all(len(p) <= 300 for p in passages)
    assert passages[0].startswith("Heading\nSentence number 0")
    assert "".join(passages).count("Sentence number") == 200


def extraction_settings(make_settings, fake_llm):
    settings = make_settings(fake_llm)
    settings.tools = ToolSettings(document_read_endpoint="agent")
    return settings


def test_with_a_model_the_reader_extracts_toward_the_goal(
    index_dir: Path, fake_llm, make_settings
) -> None:
    from medresearcher.llm import LLMGateway

    report = {
        "relevant": True,
        "evidence": "Marfan syndrome is a systemic disease of connective tissue",
        "summary": "A connective tissue disorder.",
    }
    fake_llm.enqueue(Reply.text(json.dumps(report)))
    settings = extraction_settings(make_settings, fake_llm)

    async def call():
        async with LLMGateway(settings) as gateway:
            toolbox = build_toolbox(
                settings,
                settings.workspace,
                gateway=gateway,
                names=["document_read"],
                index=WorkspaceIndex(index_dir),
            )
            try:
                return await toolbox.call(
                    "document_read", {"url_or_id": "ORPHA:558", "goal": "what kind of disease"}
                )
            finally:
                await toolbox.aclose()

    observation = run(call())
    assert not observation.error
    assert "Relevant: yes (extracted by a model)" in observation.text
    assert f"Evidence: {report['evidence']}" in observation.text
    assert observation.sources == ["ORPHA:558"]
    assert observation.payload["method"] == "model"
    sent = fake_llm.chat_requests[0].json["messages"]
    assert "what kind of disease" in sent[-1]["content"]
    assert "connective tissue" in sent[-1]["content"]  # the document itself was sent


def test_a_failed_extraction_falls_back_to_passages_and_says_so(
    index_dir: Path, fake_llm, make_settings
) -> None:
    from medresearcher.llm import LLMGateway

    fake_llm.enqueue(Reply.text("not json"), Reply.text("still not json"))
    settings = extraction_settings(make_settings, fake_llm)

    async def call():
        async with LLMGateway(settings) as gateway:
            tool = DocumentReadTool(
                WorkspaceIndex(index_dir), UrlGuard(), gateway=gateway, endpoint="agent"
            )
            return await ToolBox([tool]).call("document_read", {"url_or_id": "ORPHA:558"})

    observation = run(call())
    assert not observation.error
    assert "The model's extraction failed" in observation.text
    assert observation.payload["method"] == "full"
    assert len(fake_llm.chat_requests) == 2  # one answer and one repair round


def test_without_a_gateway_a_configured_endpoint_is_not_pretended(index_dir: Path) -> None:
    settings = ToolSettings(document_read_endpoint="agent")
    from medresearcher.config import Settings

    toolbox = build_toolbox(
        Settings(tools=settings),
        index_dir.parent,
        names=["document_read"],
        index=WorkspaceIndex(index_dir),
    )
    observation = read(toolbox, "ORPHA:558", "gene")
    assert observation.payload["method"] == "full"
    assert "extracted by a model" not in observation.text
