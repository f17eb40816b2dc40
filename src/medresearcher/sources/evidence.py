"""Map publication types to the evidence tier the authority model reads (medical-data.md §1.10).

PubMed ``PublicationType`` and Europe PMC ``pubTypeList`` use the same vocabulary, so one
mapping serves both; keeping it in one place means the ranking never disagrees between sources.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from medresearcher.schema import SourceType

__all__ = ["source_type_from_publication_types"]

# Checked in order: the first tier any type matches wins (highest authority first), except
# retraction, which is checked before everything so a retracted RCT is never cited as an RCT.
_RETRACTED = {"retracted publication", "retraction of publication"}
_TIERS: tuple[tuple[SourceType, frozenset[str]], ...] = (
    (
        "guideline",
        frozenset(
            {
                "practice guideline",
                "guideline",
                "consensus development conference",
                "consensus development conference, nih",
            }
        ),
    ),
    ("meta_analysis", frozenset({"meta-analysis", "meta analysis", "network meta-analysis"})),
    ("systematic_review", frozenset({"systematic review", "systematic-review"})),
    (
        "rct",
        frozenset(
            {
                "randomized controlled trial",
                "randomised controlled trial",
                "pragmatic clinical trial",
                "equivalence trial",
            }
        ),
    ),
    (
        "clinical_trial",
        frozenset(
            {
                "clinical trial",
                "controlled clinical trial",
                "clinical trial protocol",
                "adaptive clinical trial",
            }
        ),
    ),
    ("review", frozenset({"review", "review-article", "scoping review"})),
    (
        "observational",
        frozenset(
            {
                "observational study",
                "cohort study",
                "cohort studies",
                "case-control study",
                "case-control studies",
                "comparative study",
                "multicenter study",
                "observational study, veterinary",
                "cross-sectional study",
            }
        ),
    ),
    ("case_report", frozenset({"case reports", "case report", "case-report"})),
    ("editorial", frozenset({"comment", "letter", "editorial", "news", "interview"})),
    ("preprint", frozenset({"preprint"})),
)
_PHASE = re.compile(r"^clinical trial,? phase\b")


def _norm(value: str) -> str:
    return " ".join(value.strip().lower().split())


def source_type_from_publication_types(types: Iterable[str]) -> SourceType:
    """Return the highest evidence tier among ``types`` ("article" when none is recognised).

    Retraction wins over everything: a retracted paper must be demoted whatever else it was.
    """
    norm = {_norm(t) for t in types if t and t.strip()}
    if norm & _RETRACTED:
        return "retracted"
    for tier, names in _TIERS:
        if norm & names:
            return tier
        if tier == "clinical_trial" and any(_PHASE.match(t) for t in norm):
            return tier
    return "article"
