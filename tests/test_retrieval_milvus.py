"""The Milvus backend's own behaviour: filter expressions, resumable ingestion, exact parity
with the embedded engine, and switching by configuration only.

What every backend must do is tested once, parametrised, in tests/test_retrieval.py and
tests/test_retrieval_entities.py; here is what only Milvus has.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medresearcher.config import RetrievalSettings
from medresearcher.data import iter_documents
from medresearcher.errors import ConfigError, InputError
from medresearcher.retrieval import EmbeddedRetriever, SearchFilters, build_index, open_index
from medresearcher.retrieval.dense import HashingEmbedder
from medresearcher.retrieval.milvus import (
    MilvusRetriever,
    analyzed_text,
    connect,
    filter_expression,
)
from medresearcher.retrieval.milvus_ingest import ingest_documents
from medresearcher.retrieval.open import milvus_uri
from medresearcher.retrieval.tokenize import tokenize
from tests.test_cli import cli

YEAR = 2026
MILVUS = RetrievalSettings(backend="milvus")
QUERIES = [
    "Fabry disease GLA",
    "CTNS photophobia renal Fanconi syndrome",
    "lysosomal storage disorder",
    "Anderson-Fabry angiokeratoma",
    "autosomal recessive inheritance 22q11.2 deletion",
]


@pytest.fixture(scope="module")
def tiny_docs() -> list:
    return list(iter_documents("tiny"))


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory, tiny_docs: list) -> tuple[str, dict, dict]:
    """The tiny bundle ingested in two runs: the first stops after 200 documents."""
    uri = str(tmp_path_factory.mktemp("milvus") / "milvus.db")
    embedder = HashingEmbedder(dim=64)
    first = ingest_documents(tiny_docs[:200], uri, MILVUS, embedder=embedder, batch_size=64)
    second = ingest_documents(tiny_docs, uri, MILVUS, embedder=embedder, batch_size=64)
    return uri, first, second


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory, tiny_docs: list) -> str:
    """The tiny bundle ingested in one run (one segment), in batches."""
    uri = str(tmp_path_factory.mktemp("milvus") / "milvus.db")
    ingest_documents(tiny_docs, uri, MILVUS, embedder=HashingEmbedder(dim=64), batch_size=100)
    return uri


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, tiny_docs: list) -> EmbeddedRetriever:
    folder = tmp_path_factory.mktemp("embedded") / "index"
    build_index(tiny_docs, folder, embedder=HashingEmbedder(dim=64))
    return EmbeddedRetriever(folder, RetrievalSettings(), current_year=YEAR)


def test_filters_become_milvus_expressions() -> None:
    assert filter_expression(None) == ""
    assert filter_expression(SearchFilters()) == ""
    expression = filter_expression(
        SearchFilters.of(
            source_types=["rct", "guideline"],
            year_from=2000,
            year_to=2020,
            entity_ids=["ORPHA:324", 'odd"id'],
        )
    )
    assert expression == (
        'source_type in ["guideline", "rct"] and year >= 2000 and '
        '(year <= 2020 and year > 0) and ARRAY_CONTAINS_ANY(entity_ids, ["ORPHA:324", "odd\\"id"])'
    )


def test_stored_text_gives_milvus_our_tokens_one_for_one() -> None:
    text = "Anderson-Fabry disease (GLA, HLA-B27) at 22q11.2; Sjögren ages 1-9."
    stored = analyzed_text(text).split()
    assert len(stored) == len(tokenize(text))
    assert "hla_b27" in stored and "22q11__2" in stored and "sjogren" in stored
    # The standard analyzer splits on non-word characters only: every stored token survives.
    assert all(token.replace("_", "").isalnum() for token in stored)


def test_an_interrupted_ingestion_resumes_without_duplicates(
    resumed: tuple[str, dict, dict], tiny_docs: list
) -> None:
    uri, first, second = resumed
    assert (first["inserted"], first["skipped"]) == (200, 0)
    assert (second["inserted"], second["skipped"]) == (len(tiny_docs) - 200, 200)
    assert second["n_docs"] == len(tiny_docs)
    again = ingest_documents(tiny_docs, uri, MILVUS, embedder=HashingEmbedder(dim=64))
    assert (again["inserted"], again["skipped"]) == (0, len(tiny_docs))
    client = connect(uri)
    positions = client.query(MILVUS.milvus.collection, filter="", output_fields=["position"])
    client.close()
    assert sorted(r["position"] for r in positions) == list(range(len(tiny_docs)))
    milvus = MilvusRetriever(uri, RetrievalSettings(), current_year=YEAR)
    try:  # two runs are two Lite segments (BM25 statistics per segment): search still works
        assert milvus.search_entities("Fabry disease GLA", k=3)[0].entity_id == "ORPHA:324"
    finally:
        milvus.close()


def test_milvus_ranks_exactly_like_the_embedded_index(
    one_run: str, embedded: EmbeddedRetriever
) -> None:
    """Same candidates, same Rel, same Auth, same window: the same hits and scores."""
    milvus = MilvusRetriever(one_run, RetrievalSettings(), current_year=YEAR)
    try:
        assert milvus.n_docs == embedded.n_docs
        for query in QUERIES:
            ours, theirs = milvus.search(query, k=10), embedded.search(query, k=10)
            assert [h.document.doc_id for h in ours] == [h.document.doc_id for h in theirs]
            for a, b in zip(ours, theirs, strict=True):
                assert a.score == pytest.approx(b.score, abs=2e-3)
                assert a.authority == pytest.approx(b.authority)
                assert a.reranked == b.reranked
            ent_ours = milvus.search_entities(query, k=5)
            ent_theirs = embedded.search_entities(query, k=5)
            assert [(e.entity_id, e.doc_ids) for e in ent_ours] == [
                (e.entity_id, e.doc_ids) for e in ent_theirs
            ]
    finally:
        milvus.close()


def test_filters_select_the_same_documents_as_the_embedded_index(
    one_run: str, embedded: EmbeddedRetriever
) -> None:
    milvus = MilvusRetriever(one_run, RetrievalSettings(), current_year=YEAR)
    try:
        for filters in (
            SearchFilters.of(source_types=["drug_catalog"]),
            SearchFilters.of(entity_ids=["ORPHA:324"]),
            SearchFilters.of(source_types=["reference"], year_from=1900, year_to=2100),
        ):
            ours = milvus.search("disease", k=20, filters=filters)
            theirs = embedded.search("disease", k=20, filters=filters)
            assert ours, filters
            assert [h.document.doc_id for h in ours] == [h.document.doc_id for h in theirs]
    finally:
        milvus.close()


def test_resuming_with_another_dense_model_is_refused(resumed: tuple[str, dict, dict]) -> None:
    with pytest.raises(InputError, match="dense vectors"):
        ingest_documents([], resumed[0], MILVUS, embedder=HashingEmbedder(dim=32))


def test_the_uri_defaults_to_a_lite_file_in_the_index_folder(tmp_path: Path) -> None:
    assert milvus_uri(MILVUS, tmp_path) == str(tmp_path / "milvus.db")
    server = RetrievalSettings(backend="milvus", milvus={"uri": "http://milvus.example:19530"})
    assert milvus_uri(server, tmp_path) == "http://milvus.example:19530"
    with pytest.raises(ConfigError, match="MR_TEST_UNSET_TOKEN"):
        connect(str(tmp_path / "x.db"), "MR_TEST_UNSET_TOKEN")


def test_open_index_follows_the_backend_setting(resumed: tuple[str, dict, dict]) -> None:
    folder = Path(resumed[0]).parent
    retriever = open_index(MILVUS, folder, current_year=YEAR)
    try:
        assert isinstance(retriever, MilvusRetriever)
        assert retriever.document("ORPHA:324").doc_id == "ORPHA:324"
        assert retriever.document("missing") is None
    finally:
        retriever.close()


@pytest.mark.slow
def test_switching_backend_is_a_config_change_only(tmp_path: Path) -> None:
    """The same commands on both engines give the same answers."""
    answers = {}
    for backend in ("embedded", "milvus"):
        folder = tmp_path / backend
        folder.mkdir()
        (folder / "medresearcher.toml").write_text(f'[retrieval]\nbackend = "{backend}"\n')
        built = cli("index", "build", "--bundle", "tiny", cwd=folder)
        assert built.returncode == 0, built.stderr
        assert "indexed 645 documents" in built.stdout
        search = ("index", "search", "Fabry disease GLA", "-k", "3", "--json")
        result = cli(*search, cwd=folder)
        assert result.returncode == 0, result.stderr
        answers[backend] = [(e["entity_id"], e["doc_ids"]) for e in json.loads(result.stdout)]
    assert answers["milvus"] == answers["embedded"]
    assert answers["milvus"][0][0] == "ORPHA:324"
    resumed = cli("index", "build", "--bundle", "tiny", cwd=tmp_path / "milvus")
    assert "0 inserted" in resumed.stdout and "645 already there" in resumed.stdout
    assert (tmp_path / "milvus" / "workspace" / "index" / "milvus.db").exists()
