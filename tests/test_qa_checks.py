"""QA checks (issue 7 §4): for each check, a crafted record that passes and ones that fail."""

from __future__ import annotations

import random
from typing import Any

import pytest

from medresearcher.qa.checks import CHECK_NAMES, leaked_names, run_checks
from medresearcher.qa.near_duplicates import NearDuplicateIndex, jaccard, shingles
from medresearcher.schema import MASK, QARecord, Sample

CHAIN = ["ORPHA:324", "associated_gene", "HGNC:4296", "^associated_gene", "ORPHA:355"]
NAMES = {
    "ORPHA:324": ["Fabry disease", "Anderson-Fabry disease", "Alpha-galactosidase A deficiency"],
    "HGNC:4296": ["GLA", "galactosidase alpha"],
    "ORPHA:355": ["Gaucher disease", "Glucocerebrosidase deficiency"],
}
GOOD_QUESTION = (
    "An X-linked lysosomal storage disorder is caused by loss of an enzyme-coding gene. Which "
    "autosomal recessive sphingolipidosis is also associated with that gene in this graph?"
)


def _record(**changes: Any) -> QARecord:
    fields: dict[str, Any] = {
        "id": "Q:test",
        "question": GOOD_QUESTION,
        "answer": "Gaucher disease",
        "answer_id": "ORPHA:355",
        "answer_aliases": ["Glucocerebrosidase deficiency"],
        "cheat_sheet": [
            "Find the X-linked lysosomal disorder [E1] from its description.",
            "Follow associated_gene from [E1] to its gene [E2].",
            "Find the other disorder [E3] associated with [E2]; verify its inheritance.",
        ],
        "chain": CHAIN,
        "masked_chain": [[MASK, "associated_gene", MASK], [MASK, "^associated_gene", MASK]],
        "placeholders": {"E1": "ORPHA:324", "E2": "HGNC:4296", "E3": "ORPHA:355"},
        "sample_id": "S:1",
        "strategy": "max_chain",
        "hops": 2,
        "created_at": "2026-01-01T00:00:00Z",
    }
    fields.update(changes)
    return QARecord(**fields)


def _sample(**changes: Any) -> Sample:
    fields: dict[str, Any] = {
        "id": "S:1",
        "strategy": "max_chain",
        "seed": 0,
        "anchor": "ORPHA:324",
        "nodes": CHAIN[0::2],
        "edges": [],
        "chain": CHAIN,
        "hops": 2,
        "unique": True,
        "competing_ends": 0,
    }
    fields.update(changes)
    return Sample(**fields)


def _checks(record: QARecord, **kwargs: Any) -> dict:
    kwargs.setdefault("sample", _sample())
    return run_checks(record, names_by_id=NAMES, **kwargs)


def test_a_clean_record_passes_every_check() -> None:
    checks = _checks(_record())
    assert list(checks) == list(CHECK_NAMES)
    assert {name: c.passed for name, c in checks.items()} == dict.fromkeys(CHECK_NAMES, True)


@pytest.mark.parametrize(
    ("question", "leak"),
    [
        ("Which disorder, Gaucher disease, shares a gene with ...?", "Gaucher disease"),
        ("Is it GAUCHER  DISEASE's variant that ...?", "Gaucher disease"),
        ("Which glucocerebrosidase-deficiency disorder ...?", "Glucocerebrosidase deficiency"),
    ],
)
def test_answer_not_in_question_fails_on_the_answer_or_an_alias(question: str, leak: str) -> None:
    check = _checks(_record(question=question))["answer_not_in_question"]
    assert not check.passed
    assert leak in check.detail


def test_answer_not_in_question_ignores_substrings_and_short_names() -> None:
    record = _record(question="Which Gaucherlike storage disorder ...?", answer_aliases=["GD"])
    assert _checks(record)["answer_not_in_question"].passed
    cjk = _record(question="哪一种与戈谢病共享基因的疾病？", answer="戈谢病", answer_aliases=[])
    assert not _checks(cjk)["answer_not_in_question"].passed


@pytest.mark.parametrize(
    ("question", "leak"),
    [
        ("Which disorder shares the gene of Anderson–Fabry disease ...?", "Anderson-Fabry disease"),
        ("Which sphingolipidosis is linked to GLA ...?", "GLA"),
        ("Which disorder shares a gene with ORPHA:324?", "ORPHA:324"),
    ],
)
def test_no_intermediate_names_fails_on_a_chain_entity(question: str, leak: str) -> None:
    check = _checks(_record(question=question))["no_intermediate_names"]
    assert not check.passed
    assert leak in check.detail


def test_no_intermediate_names_fails_when_names_are_unknown() -> None:
    names = {k: v for k, v in NAMES.items() if k != "HGNC:4296"}
    check = run_checks(_record(), names_by_id=names, sample=_sample())["no_intermediate_names"]
    assert not check.passed
    assert "HGNC:4296" in check.detail


def test_an_attribute_question_must_not_name_the_chain_end() -> None:
    record = _record(
        question="What is the prevalence of Gaucher disease?",
        paradigm="attribute",
        answer="1-9 / 100 000",
        answer_id=None,
        answer_aliases=[],
        provenance={"answer_source": {"entity": "ORPHA:355", "attribute": "prevalence_class"}},
    )
    checks = _checks(record)
    assert not checks["no_intermediate_names"].passed
    assert checks["answer_is_chain_end"].passed


def test_answer_is_chain_end() -> None:
    assert not _checks(_record(answer_id="HGNC:4296"))["answer_is_chain_end"].passed
    assert not _checks(_record(answer_id=None))["answer_is_chain_end"].passed
    assert not _checks(_record(chain=CHAIN[:-1]))["answer_is_chain_end"].passed
    wrong_source = _record(
        paradigm="count",
        answer="12",
        answer_id=None,
        provenance={"answer_source": {"entity": "ORPHA:324"}},
    )
    check = _checks(wrong_source)["answer_is_chain_end"]
    assert not check.passed and "ORPHA:324" in check.detail


def test_unique_answer() -> None:
    assert not _checks(_record(), sample=_sample(unique=False, competing_ends=3))[
        "unique_answer"
    ].passed
    assert not _checks(_record(), sample=None)["unique_answer"].passed  # unknown is not unique
    assert not _checks(_record(), sample=_sample(id="S:other"))["unique_answer"].passed
    counted = _record(provenance={"candidates": 1})
    assert _checks(counted, sample=None)["unique_answer"].passed
    assert not _checks(_record(provenance={"candidates": 4}), sample=None)["unique_answer"].passed


def test_min_hops() -> None:
    assert not _checks(_record(hops=1))["min_hops"].passed
    assert not _checks(_record(), min_hops=3)["min_hops"].passed
    assert _checks(_record(hops=3), min_hops=3)["min_hops"].passed


@pytest.mark.parametrize(
    "changes",
    [
        {"cheat_sheet": ["Start from Fabry disease and follow associated_gene."]},
        {"cheat_sheet": ["Follow [E1] to GLA."]},
        {"cheat_sheet": ["Verify that [E3] is Gaucher disease."]},
        {"masked_chain": [["Fabry disease", "associated_gene", MASK], [MASK, "x", MASK]]},
        {"masked_chain": [[MASK, "associated_gene", MASK], [MASK, "Gaucher disease", MASK]]},
        {"masked_chain": []},
    ],
)
def test_cheat_sheet_placeholders_only_fails_on_names(changes: dict[str, Any]) -> None:
    check = _checks(_record(**changes))["cheat_sheet_placeholders_only"]
    assert not check.passed
    assert check.detail


def test_leaked_names_reports_each_name_once_in_order() -> None:
    text = "gla, GLA and Galactosidase-alpha; Fabry"
    assert leaked_names(text, ["galactosidase alpha", "GLA", "GLA", "Fabry disease"]) == [
        "galactosidase alpha",
        "GLA",
    ]


# -- near duplicates -------------------------------------------------------------------------


def test_near_duplicates_are_found_and_distinct_questions_kept() -> None:
    index = NearDuplicateIndex(threshold=0.8)
    base = (
        "Which gene is associated with the rare disorder that presents with short stature, "
        "very frequent seizures in infancy and an autosomal recessive mode of inheritance?"
    )
    assert index.add("q1", base) is None
    assert index.add("q2", base.upper() + "  ") == "q1"  # case and spacing do not matter
    assert index.add("q3", base.replace("inheritance", "transmission")) == "q1"  # J = 0.92
    assert index.add("q4", base.replace("infancy", "childhood")) is None  # J = 0.77 < 0.8
    other = "Which drug treats the disorder that is a subtype of a demyelinating disease?"
    assert index.add("q5", other) is None
    assert len(index) == 3 and "q5" in index and "q2" not in index


def test_near_duplicate_detection_matches_exact_jaccard() -> None:
    """LSH finds the pairs at or above the threshold (with the exact Jaccard deciding)."""
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(vocab) for _ in range(30)) for _ in range(150)]
    for i in range(60):  # near copies: a few words changed
        words = texts[i].split()
        for _ in range(rng.randint(0, 4)):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        texts.append(" ".join(words))
    index = NearDuplicateIndex(threshold=0.8)
    kept: list[tuple[str, frozenset[str]]] = []
    for n, text in enumerate(texts):
        grams = shingles(text)
        expected = any(jaccard(grams, g) >= 0.8 for _, g in kept)
        got = index.add(f"q{n}", text)
        assert (got is not None) == expected, n
        if got is None:
            kept.append((f"q{n}", grams))
    assert len(kept) < len(texts)  # some copies were caught


def test_near_duplicate_index_is_deterministic_across_instances() -> None:
    a, b = NearDuplicateIndex(), NearDuplicateIndex()
    text = "What is the onset of the disorder caused by the gene on chromosome X?"
    assert a._band_keys(frozenset([1, 2, 3])) == b._band_keys(frozenset([1, 2, 3]))
    assert a.add("x", text) is None and a.find(text) == ("x", 1.0)
    assert a.add("empty", "") is None and a.find("") is None
