"""The web UI's core through the ASGI client: pages, the graph and QA lab APIs, safety
(escaping, path traversal, security headers) and the ``medresearcher web`` command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from medresearcher.config import Settings
from medresearcher.kg import GraphStore
from medresearcher.schema import Sample
from medresearcher.workspace import Workspace, read_jsonl

# The web fixtures (web_workspace, asgi_client, live_server_url, chromium_page, ...).
pytest_plugins = ["tests.web_fixtures"]

EVIL_ID = "TEST:xss"  # the hostile entity tests/web_fixtures.py adds to the graph
EVIL_NAME = "<script>alert(1)</script>"
ESCAPED_EVIL = "&lt;script&gt;alert(1)&lt;/script&gt;"


# -- safety ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/graph", "/qa-lab", "/api/graph/search?q=GLA", "/static/style.css", "/nowhere"]
)
def test_every_response_has_a_strict_content_security_policy(asgi_client, path: str) -> None:
    response = asgi_client.get(path)
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_hostile_entity_text_is_escaped_in_pages(asgi_client) -> None:
    for url in (f"/graph?entity={EVIL_ID}", "/graph?entity=ORPHA:324"):
        page = asgi_client.get(url)
        assert page.status_code == 200
        assert ESCAPED_EVIL in page.text
        assert EVIL_NAME not in page.text
        assert "<img src=x" not in page.text
    # What a user types comes back escaped too.
    for url in (f"/graph?entity={EVIL_NAME}", f"/qa-lab?anchor={EVIL_NAME}"):
        page = asgi_client.get(url)
        assert page.status_code == 200 and ESCAPED_EVIL in page.text
        assert EVIL_NAME not in page.text


def test_pages_load_scripts_only_from_this_server(asgi_client) -> None:
    for url in ("/graph", "/qa-lab"):
        page = asgi_client.get(url).text
        assert "<script>" not in page  # no inline scripts (the CSP would block them anyway)
        assert "http://" not in page and "https://" not in page and "//cdn" not in page
        assert 'src="/static/vendor/d3.min.js"' in page or "/static/vendor/d3.min.js" in page


def test_d3_is_vendored_from_npm_and_served(asgi_client) -> None:
    d3 = asgi_client.get("/static/vendor/d3.min.js")
    assert d3.status_code == 200, "d3 is missing: run `make web-assets` (npm ci)"
    assert "d3js.org" in d3.text[:300] and "7.9.0" in d3.text[:300]


@pytest.mark.parametrize(
    "url",
    [
        "/api/samples/..%2F..%2Fetc%2Fpasswd",
        "/api/samples/../../etc/passwd",
        "/api/samples/x?file=../../etc/passwd",
        "/api/samples/x?file=..%2F..%2Fetc%2Fpasswd",
        "/api/samples/x?file=/etc/passwd",
        "/api/samples?file=../../../../etc/passwd",
        "/api/samples?file=kg.sqlite",
        "/api/samples?file=runs",
        "/static/../kg.sqlite",
        "/static/..%2F..%2F..%2Fconfig.py",
    ],
)
def test_path_traversal_is_refused(asgi_client, url: str) -> None:
    response = asgi_client.get(url)
    assert response.status_code == 404
    assert "root:" not in response.text and "SQLite" not in response.text


def test_a_file_of_other_records_is_refused_with_a_reason(asgi_client) -> None:
    response = asgi_client.get("/api/samples?file=qa.jsonl")
    assert response.status_code == 422 and "qa.jsonl" in response.json()["detail"]


# -- home and graph API ---------------------------------------------------------------


def test_home_page_summarises_the_workspace(asgi_client, web_workspace) -> None:
    page = asgi_client.get("/").text
    with GraphStore(web_workspace.ws.kg_path) as store:
        stats = store.stats()
    assert f"{stats['entities']:,}</strong> entities" in page
    assert f"<strong>{len(web_workspace.records)}</strong> questions" in page
    assert "web-path-guided: 2" in page and "web-eval" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Fabry", "ORPHA:324"),  # a substring of the name
        ("anderson fabry", "ORPHA:324"),  # an alias, any case and punctuation
        ("HGNC:4296", "HGNC:4296"),  # an id
        ("OMIM:301500", "ORPHA:324"),  # an xref resolves to the Orphanet record
        ("galactosidase alpha", "HGNC:4296"),
    ],
)
def test_search_by_name_alias_id_or_xref(asgi_client, query: str, expected: str) -> None:
    results = asgi_client.get("/api/graph/search", params={"q": query}).json()["results"]
    assert expected in [r["id"] for r in results]
    assert all({"id", "name", "type", "degree"} <= set(r) for r in results)


def test_search_ranks_exact_and_prefix_matches_first(asgi_client) -> None:
    results = asgi_client.get("/api/graph/search", params={"q": "GLA"}).json()["results"]
    assert results[0]["id"] == "HGNC:4296"
    assert asgi_client.get("/api/graph/search", params={"q": "  "}).json()["results"] == []
    assert asgi_client.get("/api/graph/search", params={"q": "zzqxj"}).json()["results"] == []


def test_entity_has_attributes_and_source(asgi_client) -> None:
    entity = asgi_client.get("/api/graph/entity/ORPHA:324").json()
    assert entity["name"] == "Fabry disease" and entity["type"] == "disease"
    assert "Anderson-Fabry disease" in entity["aliases"]
    assert entity["attrs"]["inheritance"] and entity["source"].startswith("Orphanet")
    assert entity["degree"] > 50
    assert asgi_client.get("/api/graph/entity/NOPE:1").status_code == 404


def test_neighbours_show_every_predicate_with_context_and_sources(
    asgi_client, web_workspace
) -> None:
    data = asgi_client.get("/api/graph/neighbours/ORPHA:324", params={"limit": 8}).json()
    assert data["shown"] == len(data["edges"]) == 8
    with GraphStore(web_workspace.ws.kg_path) as store:
        assert data["total"] == store.degree("ORPHA:324")
    # Round-robin over predicates: the one gene is not crowded out by 76 phenotypes.
    assert {e["pred"] for e in data["edges"]} >= {"associated_gene", "has_phenotype"}
    names = {n["id"]: n["name"] for n in data["nodes"]}
    assert names["HGNC:4296"] == "GLA"
    phenotype = next(e for e in data["edges"] if e["pred"] == "has_phenotype")
    assert phenotype["frequency"] and "%" in phenotype["frequency"]
    assert phenotype["clinical"]["freq_low"] <= phenotype["clinical"]["freq_high"]
    assert phenotype["label"] == f"has_phenotype · {phenotype['frequency']}"
    assert all(e["sources"] for e in data["edges"])
    hostile = next(e for e in data["edges"] if EVIL_ID in (e["source"], e["target"]))
    assert hostile["sources"] == ["test:<b>hostile</b>"]  # JSON carries text as it is


def test_neighbours_filter_by_predicate_and_cap_the_limit(asgi_client) -> None:
    data = asgi_client.get(
        "/api/graph/neighbours/ORPHA:324", params={"predicate": "associated_gene"}
    ).json()
    assert {e["pred"] for e in data["edges"]} == {"associated_gene"}
    assert asgi_client.get("/api/graph/neighbours/ORPHA:324?limit=100000").status_code == 422
    assert asgi_client.get("/api/graph/neighbours/NOPE:1").status_code == 404


def test_a_sample_is_its_subgraph_with_the_chain_marked(asgi_client, web_workspace) -> None:
    listed = asgi_client.get("/api/samples").json()["samples"]
    samples = list(read_jsonl(web_workspace.ws.samples_path, Sample))
    assert [s["id"] for s in listed] == [s.id for s in samples]
    sample = samples[0]
    data = asgi_client.get(f"/api/samples/{sample.id}").json()
    chain_ids = [step["entity"] for step in data["chain"] if "entity" in step]
    assert chain_ids == sample.chain[::2]
    assert [step["predicate"] for step in data["chain"] if "predicate" in step] == sample.chain[
        1::2
    ]
    assert sum(e["in_chain"] for e in data["edges"]) == sample.hops
    assert {n["id"] for n in data["nodes"]} >= set(sample.nodes)
    assert [n["chain_index"] for n in data["nodes"][: len(chain_ids)]] == list(
        range(len(chain_ids))
    )
    assert asgi_client.get("/api/samples/S:nope").status_code == 404


def test_a_workspace_without_a_graph_says_how_to_build_one(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from medresearcher.web import create_app

    ws = Workspace(tmp_path / "empty").ensure()
    with TestClient(create_app(Settings(workspace=ws.root))) as client:
        response = client.get("/api/graph/search", params={"q": "GLA"})
        assert response.status_code == 422
        assert "kg import --demo" in response.json()["detail"]
        assert client.get("/").status_code == 200
    assert not ws.kg_path.exists()  # looking did not create an empty graph


# -- QA lab ---------------------------------------------------------------------------


def test_strategies_and_their_own_parameters(asgi_client) -> None:
    strategies = asgi_client.get("/api/qa-lab/strategies").json()["strategies"]
    assert set(strategies) == {
        "mixed",
        "max_chain",
        "augmented_chain",
        "community_core_path",
        "dual_core_bridge",
    }
    assert strategies["augmented_chain"]["side"] == 2
    assert strategies["community_core_path"]["radius"] == 2
    assert strategies["dual_core_bridge"]["candidates"] == 10
    page = asgi_client.get("/qa-lab").text
    assert 'data-param="radius"' in page and 'data-param="candidates"' in page


def test_template_question_with_checks_specialties_and_chain(asgi_client, web_workspace) -> None:
    body = {"anchor": "Fabry disease", "strategy": "max_chain", "max_hops": 3, "seed": 2}
    body["paradigm"] = "identify"
    data = asgi_client.post("/api/qa-lab/generate", json=body).json()
    record, sample = data["record"], data["sample"]
    assert data["anchor"] == "ORPHA:324" and sample["anchor"] == "ORPHA:324"
    assert record["chain"] == sample["chain"] and record["hops"] == sample["hops"] <= 3
    assert record["question"] and record["answer"] and record["cheat_sheet"]
    assert record["answer"] == data["chain"][-1]["name"]
    assert record["provenance"]["writer"] == "template" and record["paradigm"] == "identify"
    assert record["specialties"]
    assert set(record["checks"]) >= {
        "answer_not_in_question",
        "no_intermediate_names",
        "answer_is_chain_end",
        "unique_answer",
        "min_hops",
    }
    assert data["passed"] == all(c["passed"] for c in record["checks"].values())
    assert sum(e["in_chain"] for e in data["edges"]) == record["hops"]
    # Same parameters, same question; nothing is written to the workspace.
    again = asgi_client.post("/api/qa-lab/generate", json=body).json()
    assert again["record"]["question"] == record["question"]
    questions = web_workspace.ws.qa_path.read_text().splitlines()
    assert len(questions) == len(web_workspace.records)


def test_strategy_parameters_reach_the_sampler(asgi_client) -> None:
    body = {
        "anchor": "ORPHA:324",
        "strategy": "augmented_chain",
        "params": {"side": 1},
        "seed": 1,
    }
    data = asgi_client.post("/api/qa-lab/generate", json=body).json()
    assert data["sample"]["strategy"] == "augmented_chain"
    assert data["sample"]["params"]["side"] == 1
    wrong = asgi_client.post("/api/qa-lab/generate", json={**body, "params": {"radius": 3}}).json()
    assert "augmented_chain takes no parameter radius" in wrong["detail"]
    assert "side" in wrong["detail"]


def test_bad_requests_say_what_is_wrong(asgi_client) -> None:
    unknown = asgi_client.post("/api/qa-lab/generate", json={"anchor": "no such thing"})
    assert unknown.status_code == 422 and "no entity 'no such thing'" in unknown.json()["detail"]
    bad = asgi_client.post("/api/qa-lab/generate", json={"anchor": "GLA", "strategy": "best"})
    assert bad.status_code == 422
    extra = asgi_client.post("/api/qa-lab/generate", json={"anchor": "GLA", "path": "/etc"})
    assert extra.status_code == 422


def test_llm_writer_offline_says_a_model_is_needed(asgi_client) -> None:
    response = asgi_client.post(
        "/api/qa-lab/generate", json={"anchor": "ORPHA:324", "writer": "llm"}
    )
    assert response.status_code == 409
    assert "The LLM writer needs a model" in response.json()["detail"]
    assert "[llm.writer]" in response.json()["detail"]
    page = asgi_client.get("/qa-lab").text
    assert 'value="llm" disabled' in page and "The LLM writer needs a model" in page


# -- the command ----------------------------------------------------------------------


def test_web_command_binds_loopback_without_reload(monkeypatch, tmp_path: Path) -> None:
    import uvicorn

    from medresearcher.cli import app

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda application, **kw: calls.append(kw))
    Workspace(tmp_path / "ws").ensure()
    runner = CliRunner()
    result = runner.invoke(app, ["-w", str(tmp_path / "ws"), "web"])
    assert result.exit_code == 0, result.output
    assert calls[0]["host"] == "127.0.0.1" and calls[0]["port"] == 8765
    assert calls[0]["reload"] is False and "warning" not in result.output
    result = runner.invoke(app, ["-w", str(tmp_path / "ws"), "web", "--host", "0.0.0.0"])
    assert result.exit_code == 0 and calls[1]["host"] == "0.0.0.0"
    assert "warning:" in result.output and "no login" in result.output


@pytest.mark.slow  # a child process serving HTTP
def test_web_command_serves_the_ui(tmp_path: Path, web_workspace) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDRESEARCHER_")}
    command = [sys.executable, "-m", "medresearcher", "-w", str(web_workspace.ws.root)]
    child = subprocess.Popen(
        [*command, "web", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(300):
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except httpx.TransportError:
                assert child.poll() is None, child.stderr.read() if child.stderr else ""
                time.sleep(0.1)
        assert response.json() == {"status": "ok"}
        search = httpx.get(f"http://127.0.0.1:{port}/api/graph/search?q=Fabry", timeout=10)
        assert "ORPHA:324" in search.text
        assert "server" not in {k.lower() for k in search.headers}
    finally:
        child.terminate()
        child.wait(timeout=10)
