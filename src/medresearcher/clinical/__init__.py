"""The ClinicalReasoningEngine (paper §2.2): Bayesian differential diagnosis over HPO findings.

``P(D_j | s, c) ∝ Π_i P(s_i | D_j, c) · P(D_j | c)``, with Orphanet's phenotype frequencies
as likelihoods and prevalence classes as priors, updated with retrieved evidence. Read a
bundle with :func:`load_clinical_knowledge`, match free text with
:func:`normalise_findings`, rank with :func:`diagnose`. Research software, not clinical advice.
"""

from medresearcher.clinical.bayes import (
    ClinicalContext,
    DdxParams,
    context_log_factor,
    expected_information_gain,
    finding_likelihood,
    onset_class,
    posterior,
    with_likelihood,
)
from medresearcher.clinical.differential import (
    Differential,
    FindingEvidence,
    NextFinding,
    RankedDisease,
    diagnose,
)
from medresearcher.clinical.findings import (
    LAY_SYNONYMS,
    FindingMatch,
    PhenotypeVocabulary,
    UnmatchedFinding,
    normalise_findings,
    parse_findings,
    read_findings,
)
from medresearcher.clinical.model import (
    ONSET_CLASSES,
    ClinicalKnowledge,
    DdxModel,
    LikelihoodOverride,
    build_model,
    load_clinical_knowledge,
)

DISCLAIMER = "Research software, not clinical advice."

__all__ = [
    "DISCLAIMER",
    "LAY_SYNONYMS",
    "ONSET_CLASSES",
    "ClinicalContext",
    "ClinicalKnowledge",
    "DdxModel",
    "DdxParams",
    "Differential",
    "FindingEvidence",
    "FindingMatch",
    "LikelihoodOverride",
    "NextFinding",
    "PhenotypeVocabulary",
    "RankedDisease",
    "UnmatchedFinding",
    "build_model",
    "context_log_factor",
    "diagnose",
    "expected_information_gain",
    "finding_likelihood",
    "load_clinical_knowledge",
    "normalise_findings",
    "onset_class",
    "parse_findings",
    "posterior",
    "read_findings",
    "with_likelihood",
]
