"""PrivateMedicalRetriever: authority, Score = λ·Rel + (1−λ)·Auth, filters, persistence.

The retriever tests run on every backend (the ``retriever`` fixture: embedded and Milvus).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from medresearcher.config import AuthoritySettings, RetrievalSettings
from medresearcher.errors import InputError
from medresearcher.retrieval import (
    SearchFilters,
    authority_score,
    authority_scores,
    open_index,
)
from medresearcher.retrieval.authority import load_impact_table
from medresearcher.retrieval.dense import HashingEmbedder
from medresearcher.schema import Document
from tests.retrieval_backends import BACKENDS, OpenRetriever, backend_fixture

YEAR = 2026
FABRY = "Fabry disease is an X-linked lysosomal storage disorder caused by GLA mutations."


def doc(
    doc_id: str, text: str, source_type: str = "article", year: int | None = 2020, **kw
) -> Document:
    return Document(
        doc_id=doc_id,
        title=kw.pop("title", "Report"),
        text=text,
        source="test",
        source_type=source_type,
        year=year,
        **kw,
    )


CORPUS = [
    doc("case", FABRY, "case_report", title="Fabry disease"),
    doc("guideline", FABRY, "guideline", title="Fabry disease"),
    doc(
        "weak-guideline",
        "Guidance on lysosomal enzyme assays in general laboratories.",
        "guideline",
    ),
    doc("asthma", "Asthma is a chronic inflammatory disease of the airways.", "review", 2015),
    doc(
        "gaucher",
        "Gaucher disease is a lysosomal storage disorder caused by GBA1 mutations.",
        "reference",
        2025,
        entity_ids=["ORPHA:355"],
    ),
    doc(
        "old-fabry",
        "Angiokeratoma and GLA deficiency in Fabry disease: a case.",
        "case_report",
        1990,
        entity_ids=["ORPHA:324"],
    ),
]


@pytest.fixture(scope="module", params=BACKENDS)
def retriever(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenRetriever]:
    """``retriever(**settings)``: the test corpus on each backend, opened with ``settings``."""
    yield from backend_fixture(
        request,
        tmp_path_factory,
        lambda: CORPUS,
        embedder=HashingEmbedder(dim=256),
        current_year=YEAR,
    )


def ids(hits) -> list[str]:
    return [h.document.doc_id for h in hits]


def test_authority_orders_source_types_like_a_clinician() -> None:
    config = AuthoritySettings()
    scores = authority_scores(
        ["guideline", "systematic_review", "rct", "case_report", "preprint", "retracted"],
        np.full(6, YEAR),
        np.full(6, np.nan),
        config,
        current_year=YEAR,
    )
    assert list(scores) == sorted(scores, reverse=True)
    assert scores[-1] < scores[-2]  # retracted below preprint


def test_recency_halves_at_the_half_life_and_unknown_parts_are_left_out() -> None:
    config = AuthoritySettings(
        weight_type=0.0, weight_impact=0.0, weight_recency=1.0, recency_half_life_years=10
    )
    old, new = authority_scores(
        ["article", "article"],
        np.array([2016, YEAR]),
        np.full(2, np.nan),
        config,
        current_year=YEAR,
    )
    assert new == pytest.approx(1.0) and old == pytest.approx(0.5)
    # No year: recency is absent, not zero, so only the type prior counts.
    plain = AuthoritySettings()
    undated = authority_score(doc("x", "t", "reference", year=None), plain, current_year=YEAR)
    assert undated == pytest.approx(plain.type_prior["reference"])


def test_impact_table_raises_authority_and_bad_rows_are_named(tmp_path: Path) -> None:
    table = tmp_path / "impact.csv"
    table.write_text("issn,journal,impact_factor\n1078-8956,Nat Med,58.7\n,Obscure J,0.4\n")
    impacts = load_impact_table(table)
    assert impacts["1078-8956"] == 58.7 and impacts["obscure j"] == 0.4
    config = AuthoritySettings()
    strong = authority_score(
        doc("a", "t", metadata={"issn": "10788956"}),
        config,
        impact_table=impacts,
        current_year=YEAR,
    )
    weak = authority_score(
        doc("b", "t", metadata={"journal": "Obscure J."}),
        config,
        impact_table=impacts,
        current_year=YEAR,
    )
    assert strong > weak
    table.write_text("journal,impact_factor\nNat Med,high\n")
    with pytest.raises(InputError, match=r"impact.csv:2: impact_factor: not a number"):
        load_impact_table(table)


def test_among_equally_relevant_documents_the_more_authoritative_ranks_first(
    retriever: OpenRetriever,
) -> None:
    hits = retriever().search("Fabry disease GLA mutations", k=3)
    assert ids(hits)[:2] == ["guideline", "case"]
    assert hits[0].relevance == pytest.approx(hits[1].relevance)
    assert hits[0].authority > hits[1].authority


def test_lambda_one_is_the_pure_relevance_order(retriever: OpenRetriever) -> None:
    hits = retriever().search("lysosomal storage disorder", k=6, relevance_weight=1.0)
    relevance = [h.relevance for h in hits]
    assert relevance == sorted(relevance, reverse=True)
    assert all(h.score == pytest.approx(h.relevance) for h in hits)


def test_authority_never_lifts_an_irrelevant_document(retriever: OpenRetriever) -> None:
    # Even with λ = 0 (authority alone decides inside the window), the guideline that only
    # shares the word "lysosomal" stays behind every document about Fabry disease.
    hits = retriever().search("Fabry disease lysosomal GLA", k=6, relevance_weight=0.0)
    order = ids(hits)
    assert "weak-guideline" in order
    fabry = [order.index(d) for d in ("guideline", "case", "old-fabry")]
    assert order.index("weak-guideline") > max(fabry)
    weak = hits[order.index("weak-guideline")]
    assert not weak.reranked and weak.authority > hits[order.index("case")].authority


def test_filters_by_source_type_year_and_entity(retriever: OpenRetriever) -> None:
    search = retriever().search
    assert ids(
        search("Fabry disease", k=5, filters=SearchFilters.of(source_types=["case_report"]))
    ) == ["case", "old-fabry"]
    assert "old-fabry" not in ids(search("Fabry disease", filters=SearchFilters.of(year_from=2000)))
    assert ids(
        search("lysosomal storage disorder", filters=SearchFilters.of(entity_ids=["ORPHA:355"]))
    ) == ["gaucher"]
    assert search("Fabry", filters=SearchFilters.of(entity_ids=["ORPHA:0"])) == []


@pytest.mark.parametrize("query", ["", "   ", "the of and", "qwxz zzyzx"])
def test_an_empty_or_nonsense_query_returns_an_empty_list(
    retriever: OpenRetriever, query: str
) -> None:
    assert retriever().search(query) == []


def test_save_load_round_trip_gives_the_same_results(retriever: OpenRetriever) -> None:
    first = retriever().search("lysosomal storage disorder GBA1", k=4)
    again = retriever().search("lysosomal storage disorder GBA1", k=4)
    assert ids(first) == ids(again)
    assert [h.score for h in first] == [h.score for h in again]
    loaded = retriever()
    assert loaded.n_docs == len(CORPUS)
    assert loaded.document("gaucher").entity_ids == ["ORPHA:355"]
    assert loaded.document("missing") is None


@pytest.mark.parametrize(
    ("backend", "message"), [("embedded", "no index here"), ("milvus", "no Milvus collection")]
)
def test_a_missing_index_is_a_clear_error(tmp_path: Path, backend: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        open_index(RetrievalSettings(backend=backend), tmp_path)


def test_rrf_fusion_is_available(retriever: OpenRetriever) -> None:
    hits = retriever(fusion="rrf").search("Gaucher GBA1", k=3)
    assert ids(hits)[0] == "gaucher"
    assert 0 < hits[0].relevance <= 1
