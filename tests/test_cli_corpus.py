"""``medresearcher corpus`` and ``data info`` as a user runs them (real process, loopback API)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.api_server import ApiResponse, FakeApiServer
from tests.test_cli import cli

FIXTURES = Path(__file__).parent / "fixtures"
STUDIES = "/api/v2/studies"


def corpus_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_data_info_prints_counts_and_licences(tmp_path: Path) -> None:
    result = cli("data", "info", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rare disorders" in result.stdout
    assert "has_phenotype" in result.stdout
    assert "CC BY 4.0" in result.stdout
    assert "Source: Orphanet / ORPHApackets, release December 2025" in result.stdout
    tiny = json.loads(cli("data", "info", "--bundle", "tiny", "--json", cwd=tmp_path).stdout)
    assert tiny["name"] == "tiny" and tiny["counts"]["entities"] > 100


def test_ctgov_ingest_pages_resumes_and_uses_the_http_cache(tmp_path: Path) -> None:
    page1 = json.loads((FIXTURES / "sources" / "ctgov_page1.json").read_text())
    page2 = json.loads((FIXTURES / "sources" / "ctgov_page2.json").read_text())
    with FakeApiServer() as api:
        api.route(STUDIES, ApiResponse.json(page1), ApiResponse.json(page2))
        args = (
            "corpus",
            "ingest",
            "ctgov",
            "--condition",
            "gaucher disease",
            "--max",
            "10",
            "--base-url",
            f"{api.url}/api/v2",
        )
        first = cli(*args, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert len(api.requests) == 2
        second = cli(*args, cwd=tmp_path)  # the same pages again: from the cache, all skipped
        assert second.returncode == 0, second.stderr
        assert len(api.requests) == 2
    path = tmp_path / "workspace" / "corpus" / "ctgov.jsonl"
    docs = corpus_lines(path)
    assert [d["doc_id"] for d in docs] == ["NCT03500094", "NCT05280548", "NCT04115137"]
    assert {d["source_type"] for d in docs} == {"trial_registry"}
    assert "0 new documents" in second.stdout and "3 already there" in second.stdout
    runs = json.loads(cli("runs", "list", "--json", cwd=tmp_path).stdout)
    assert [r["counts"]["written"] for r in runs] == [3, 0]


def test_a_failing_page_keeps_what_was_written(tmp_path: Path) -> None:
    page1 = json.loads((FIXTURES / "sources" / "ctgov_page1.json").read_text())
    with FakeApiServer() as api:
        api.route(
            STUDIES,
            ApiResponse.json(page1),
            fallback=ApiResponse.raw(
                b'{"studies": [{"protocolSection": ', content_type="application/json"
            ),
        )
        result = cli(
            "corpus",
            "ingest",
            "ctgov",
            "--condition",
            "gaucher",
            "--max",
            "10",
            "--base-url",
            f"{api.url}/api/v2",
            cwd=tmp_path,
            env={
                "MEDRESEARCHER_SOURCES__MAX_RETRIES": "1",
                "MEDRESEARCHER_SOURCES__RETRY_BACKOFF_S": "0.01",
            },
        )
    assert result.returncode == 1
    assert "malformed JSON" in result.stderr
    assert "(2 attempts)" in result.stderr
    docs = corpus_lines(tmp_path / "workspace" / "corpus" / "ctgov.jsonl")
    assert len(docs) == 2  # page 1 survived the bad page 2
    manifest = json.loads(cli("runs", "list", "--json", cwd=tmp_path).stdout)[0]
    assert manifest["status"] == "failed" and manifest["counts"]["written"] == 2


def test_pubmed_baseline_then_merge_with_the_bundle(tmp_path: Path) -> None:
    baseline = FIXTURES / "pubmed_xml" / "baseline_sample.xml"
    result = cli("corpus", "ingest", "pubmed-baseline", str(baseline), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ingested = corpus_lines(tmp_path / "workspace" / "corpus" / "pubmed-baseline.jsonl")
    assert ingested and all(d["doc_id"].startswith("PMID:") for d in ingested)

    merged = cli("corpus", "merge", "--bundle", "tiny", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    docs = corpus_lines(tmp_path / "workspace" / "corpus" / "corpus.jsonl")
    ids = [d["doc_id"] for d in docs]
    assert len(ids) == len(set(ids))
    assert {d["doc_id"] for d in ingested} <= set(ids)
    assert "ORPHA:324" in ids


def test_merge_names_the_file_line_and_field_of_a_bad_record(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"doc_id": "X:1", "title": "t", "text": "x", "source": "s", '
        '"source_type": "reference"}\n{"doc_id": "X:2", "title": "t"}\n'
    )
    result = cli("corpus", "merge", str(bad), "--bundle", "", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{bad}:2: text: Field required" in result.stderr


def test_merge_names_the_position_of_corrupt_json(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.jsonl"
    bad.write_text(
        '{"doc_id": "X:1", "title": "t", "text": "x", "source": "s", '
        '"source_type": "reference"}\n{"doc_id": "X:2", "title": }\n'
    )
    result = cli("corpus", "merge", str(bad), "--bundle", "", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{bad}:2:28: not valid JSON: Expecting value" in result.stderr
