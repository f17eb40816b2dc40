"""Retriever quality features: enriched documents, twins as one entity, cached embeddings."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from medresearcher.data import iter_documents, iter_relations
from medresearcher.retrieval import build_index
from medresearcher.retrieval.dense import HashingEmbedder
from tests.retrieval_backends import BACKENDS, OpenRetriever, backend_fixture
from tests.test_cli import cli


class CountingEmbedder(HashingEmbedder):
    """A model-free embedder that counts the texts it is asked to encode."""

    def __init__(self) -> None:
        super().__init__(dim=64)
        self.calls = 0

    def encode(self, texts: Sequence[str], **kwargs) -> np.ndarray:
        self.calls += len(texts)
        return super().encode(texts, **kwargs)


@pytest.fixture(scope="module", params=BACKENDS)
def retriever(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenRetriever]:
    """``retriever(**settings)``: the tiny bundle on each backend (lexical only)."""
    yield from backend_fixture(request, tmp_path_factory, lambda: iter_documents("tiny"))


def test_an_enriched_document_carries_its_subtypes_gene_symbols() -> None:
    cystinosis = next(d for d in iter_documents("tiny") if d.doc_id == "ORPHA:213")
    own = [
        r for r in iter_relations("tiny") if r.subj == "ORPHA:213" and r.pred == "associated_gene"
    ]
    assert own and all(r.clinical.get("via_subtype") for r in own)  # genes sit on subtypes
    assert "CTNS" in cystinosis.fields["genes"]
    assert "CTNS" not in cystinosis.text  # the definition alone would not find it
    fabry = next(d for d in iter_documents("tiny") if d.doc_id == "ORPHA:324")
    assert "Angiokeratoma" in fabry.fields["phenotypes"]
    assert "X-linked" in fabry.fields["inheritance"]
    assert "Anderson-Fabry disease" in fabry.fields["names"]


def test_twins_resolve_to_one_entity_listing_every_document(retriever: OpenRetriever) -> None:
    entities = retriever().search_entities("Fabry disease", k=5)
    assert entities[0].entity_id == "ORPHA:324"
    assert [e.entity_id for e in entities].count("ORPHA:324") == 1
    expected = {d.doc_id for d in iter_documents("tiny") if "ORPHA:324" in d.entity_ids}
    assert {"ORPHA:324", "DOID:14499"} <= expected
    assert set(entities[0].doc_ids) == expected
    documents = [h.document.doc_id for h in retriever().search("Fabry disease", k=5)]
    assert {"ORPHA:324", "DOID:14499"} <= set(documents)  # document level: both twins


def test_gene_and_signs_find_the_disorder(retriever: OpenRetriever) -> None:
    top = retriever().search_entities("CTNS photophobia renal Fanconi syndrome", k=3)
    assert top[0].entity_id == "ORPHA:213"
    # The gene symbol sits on the subtypes, not in the definition: searching the body alone
    # misses the Orphanet record; its enriched gene field finds it.
    body_only = retriever(field_weights={"body": 1.0})
    assert "ORPHA:213" not in [h.document.doc_id for h in body_only.search("CTNS", k=10)]
    with_genes = retriever(field_weights={"body": 1.0, "genes": 3.0})
    assert "ORPHA:213" in [h.document.doc_id for h in with_genes.search("CTNS", k=10)]


def test_embeddings_are_not_recomputed_on_the_second_build(tmp_path: Path) -> None:
    docs = list(iter_documents("tiny"))[:60]
    cache = tmp_path / "embeddings.sqlite"
    first, second = CountingEmbedder(), CountingEmbedder()
    m1 = build_index(docs, tmp_path / "a", embedder=first, embedding_cache=cache)
    m2 = build_index(docs, tmp_path / "b", embedder=second, embedding_cache=cache)
    assert first.calls == 60 and m1["dense"]["embedded"] == 60
    assert second.calls == 0 and m2["dense"]["embedded"] == 0
    a = np.load(tmp_path / "a" / "dense" / "embeddings.npy")
    b = np.load(tmp_path / "b" / "dense" / "embeddings.npy")
    assert np.array_equal(a, b)
    third = CountingEmbedder()
    build_index(
        [*docs, *list(iter_documents("tiny"))[60:65]],
        tmp_path / "c",
        embedder=third,
        embedding_cache=cache,
    )
    assert third.calls == 5  # only the new documents


def test_cli_index_build_and_search(tmp_path: Path) -> None:
    built = cli(
        "index", "build", "--bundle", "tiny", "--dense", "--dense-model", "hashing", cwd=tmp_path
    )
    assert built.returncode == 0, built.stderr
    assert "indexed 645 documents" in built.stdout
    result = cli("index", "search", "Fabry disease GLA", "-k", "3", "--json", cwd=tmp_path)
    entities = json.loads(result.stdout)
    assert entities[0]["entity_id"] == "ORPHA:324"
    assert "DOID:14499" in entities[0]["doc_ids"]
    assert {"score", "relevance", "authority", "source_type"} <= set(entities[0])
    docs = json.loads(
        cli(
            "index",
            "search",
            "Fabry disease",
            "--documents",
            "--json",
            "--source-type",
            "reference",
            cwd=tmp_path,
        ).stdout
    )
    assert docs and all(d["source_type"] == "reference" for d in docs)
    table = cli("index", "search", "Fabry disease", cwd=tmp_path)
    assert "not clinical advice" in table.stdout
    assert cli("index", "search", "zzqx", cwd=tmp_path).stdout.startswith("no results")
