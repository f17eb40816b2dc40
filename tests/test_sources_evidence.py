"""Publication types → evidence tier (medical-data.md §1.10)."""

from __future__ import annotations

import pytest

from medresearcher.schema import SOURCE_TYPES
from medresearcher.sources.evidence import source_type_from_publication_types as tier


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["Journal Article", "Practice Guideline"], "guideline"),
        (["Guideline"], "guideline"),
        (["Review", "Meta-Analysis", "Systematic Review"], "meta_analysis"),
        (["Systematic Review", "Review"], "systematic_review"),
        (["Randomized Controlled Trial", "Clinical Trial, Phase III"], "rct"),
        (["Clinical Trial, Phase II"], "clinical_trial"),
        (["Clinical Trial Phase IV"], "clinical_trial"),
        (["Controlled Clinical Trial"], "clinical_trial"),
        (["Journal Article", "Review"], "review"),
        (["Observational Study"], "observational"),
        (["Comparative Study", "Journal Article"], "observational"),
        (["Case Reports"], "case_report"),
        (["Comment", "Letter"], "editorial"),
        (["Editorial"], "editorial"),
        (["Preprint"], "preprint"),
        (["Journal Article", "Research Support, N.I.H., Extramural"], "article"),
        ([], "article"),
        (["  randomized   controlled TRIAL "], "rct"),
        (["review-article"], "review"),
    ],
)
def test_tiers(types: list[str], expected: str) -> None:
    assert tier(types) == expected
    assert expected in SOURCE_TYPES


def test_retraction_wins_over_everything() -> None:
    assert tier(["Practice Guideline", "Retracted Publication"]) == "retracted"
    assert tier(["Retraction of Publication"]) == "retracted"
