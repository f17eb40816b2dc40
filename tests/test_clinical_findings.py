"""Free-text findings → HPO terms: ids, labels, synonyms, stems, typos, and honest misses."""

from __future__ import annotations

import pytest

from medresearcher.clinical import (
    FindingMatch,
    PhenotypeVocabulary,
    UnmatchedFinding,
    load_clinical_knowledge,
    normalise_findings,
    parse_findings,
    read_findings,
)


@pytest.fixture(scope="module")
def demo() -> PhenotypeVocabulary:
    return load_clinical_knowledge("demo").vocabulary


def small(**kwargs) -> PhenotypeVocabulary:
    terms = [
        ("HP:0001744", "Splenomegaly", ["Enlarged spleen (alias)"]),
        ("HP:0002240", "Hepatomegaly", []),
        ("HP:0009777", "Absent thumb", []),
        ("HP:0001250", "Seizure", ["Big spleen"]),  # an alias that is another term's label
        ("HP:0000001", "Big spleen", []),
    ]
    return PhenotypeVocabulary.build(terms, lay_synonyms={}, **kwargs)


def matched(vocabulary: PhenotypeVocabulary, text: str) -> FindingMatch:
    result = vocabulary.match(text)
    assert isinstance(result, FindingMatch), f"{text!r} did not match: {result}"
    return result


def test_labels_match_whatever_the_case_and_punctuation(demo: PhenotypeVocabulary) -> None:
    for text in ("splenomegaly", "SPLENOMEGALY.", "  Splenomegaly ;"):
        hit = matched(demo, text)
        assert (hit.hpo_id, hit.method) == ("HP:0001744", "exact")
    assert matched(demo, "kayser fleischer ring").hpo_id == "HP:0200032"


def test_hp_ids_are_taken_as_they_are(demo: PhenotypeVocabulary) -> None:
    for text in ("HP:0001744", "hp_0001744", " HP:0001744 "):
        hit = matched(demo, text)
        assert (hit.hpo_id, hit.label, hit.method) == ("HP:0001744", "Splenomegaly", "id")
    assert isinstance(demo.match("HP:9999999"), UnmatchedFinding)


def test_synonyms_from_aliases_and_the_lay_list(demo: PhenotypeVocabulary) -> None:
    hit = matched(demo, "Enlarged spleen")
    assert (hit.hpo_id, hit.method) == ("HP:0001744", "synonym")
    assert matched(demo, "hearing loss").label == "Hearing impairment"
    own = small()
    alias = matched(own, "enlarged spleen alias")
    assert (alias.hpo_id, alias.method) == ("HP:0001744", "synonym")


def test_a_synonym_never_shadows_another_terms_label() -> None:
    assert matched(small(), "big spleen").hpo_id == "HP:0000001"


def test_plurals_and_british_spelling(demo: PhenotypeVocabulary) -> None:
    assert matched(demo, "seizures").label == "Seizure"
    assert matched(demo, "corneal opacities").label == "Corneal opacity"
    assert matched(demo, "anaemia").label == "Anemia"


def test_typos_fall_back_to_fuzzy_matching_with_a_score(demo: PhenotypeVocabulary) -> None:
    hit = matched(demo, "hepatomegally")
    assert (hit.hpo_id, hit.method) == ("HP:0002240", "fuzzy")
    assert 0.75 <= hit.score < 1.0


def test_no_wild_guesses_unmatched_findings_come_back_with_suggestions(
    demo: PhenotypeVocabulary,
) -> None:
    nothing = demo.match("xyzzy plugh")
    assert isinstance(nothing, UnmatchedFinding) and nothing.suggestions == ()
    near = demo.match("aortic root dilation")
    assert isinstance(near, UnmatchedFinding)
    assert "HP:0002616" in [hpo_id for hpo_id, _ in near.suggestions]  # Aortic root aneurysm


def test_the_threshold_decides_what_fuzzy_may_accept() -> None:
    loose, strict = small(threshold=0.6), small(threshold=0.95)
    assert isinstance(loose.match("splenomegaly massive"), FindingMatch)
    assert isinstance(strict.match("splenomegaly massive"), UnmatchedFinding)


def test_normalise_keeps_each_term_once_in_order(demo: PhenotypeVocabulary) -> None:
    matches, unmatched = normalise_findings(
        ["fever", "splenomegaly", "enlarged spleen", "", "xyzzy"], demo
    )
    assert [m.hpo_id for m in matches] == ["HP:0001945", "HP:0001744"]
    assert [u.text for u in unmatched] == ["xyzzy"]


def test_parse_findings_splits_present_from_absent() -> None:
    assert parse_findings("fever, splenomegaly; no hepatomegaly") == (
        ["fever", "splenomegaly"],
        ["hepatomegaly"],
    )
    present, absent = parse_findings(
        "Fever. Without rash\nabsent reflexes, no jaundice or pruritus, denies headache"
    )
    assert present == ["Fever"]
    assert absent == ["rash", "reflexes", "jaundice", "pruritus", "headache"]
    assert parse_findings("  ") == ([], [])


def test_a_term_that_starts_with_absent_stays_present_when_the_vocabulary_knows_it() -> None:
    vocabulary = small()
    assert parse_findings("absent thumb, no hepatomegaly", vocabulary) == (
        ["absent thumb"],
        ["hepatomegaly"],
    )
    assert parse_findings("absent thumb") == ([], ["thumb"])


def test_read_findings_moves_negated_items_and_accepts_negated_absent_items(
    demo: PhenotypeVocabulary,
) -> None:
    present, absent, unmatched = read_findings(
        ["fever; no jaundice", "splenomegaly"], ["no hepatomegaly", "xyzzy"], demo
    )
    assert [m.label for m in present] == ["Fever", "Splenomegaly"]
    assert [m.label for m in absent] == ["Jaundice", "Hepatomegaly"]
    assert [u.text for u in unmatched] == ["xyzzy"]
