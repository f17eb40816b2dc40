"""The records that cross stage boundaries (ARCHITECTURE.md §3): one definition each.

Field names are the contract between stages. IDs are CURIEs or stable content hashes,
never list positions, so any record can be traced back to where it came from.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medresearcher.errors import ConfigError

__all__ = [
    "MASK",
    "SOURCE_TYPES",
    "CalibrationRound",
    "CheckResult",
    "Difficulty",
    "Document",
    "Entity",
    "EvalResult",
    "QAParadigm",
    "QARecord",
    "Relation",
    "Sample",
    "SourceType",
    "Termination",
    "Trajectory",
    "utc_now",
]


def utc_now() -> datetime:
    """The time a record is created at (``created_at``), in UTC.

    Honours the reproducible-builds convention ``SOURCE_DATE_EPOCH``
    (https://reproducible-builds.org/specs/source-date-epoch/): when set (seconds since the
    epoch), every record carries that time instead of the clock's, so two runs of a stage —
    one process or a Ray cluster, today or next week — write byte-identical files.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), tz=timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise ConfigError(
                f"environment variable SOURCE_DATE_EPOCH={epoch!r} is not a whole number of "
                "seconds since 1970"
            ) from None
    return datetime.now(timezone.utc)


class Entity(BaseModel):
    """A node of the knowledge graph: a disease, phenotype, gene, drug, anatomy, ..."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="CURIE: ORPHA:558, HP:0001166, HGNC:3603, DOID:..., DB:...")
    type: str = Field(
        description="disease, phenotype, gene, drug, anatomy, pathogen, category, ..."
    )
    name: str
    aliases: list[str] = Field(default_factory=list, description="Synonyms and symbols.")
    xrefs: list[str] = Field(default_factory=list, description="Ids of the same thing elsewhere.")
    attrs: dict[str, Any] = Field(
        default_factory=dict, description="prevalence, onset, inheritance, disorder_type, ..."
    )
    description: str | None = None
    mentions: int | None = Field(default=None, description="Corpus mention count, when mined.")
    source: str = Field(description="Dataset (and release) the entity comes from.")


class Relation(BaseModel):
    """An edge: the paper's 6-tuple ⟨subject, predicate, object, temporal, spatial, clinical⟩
    (§3.1.1) plus its provenance."""

    model_config = ConfigDict(extra="forbid")

    subj: str
    pred: str = Field(description="has_phenotype, associated_gene, subclass_of, treats, ...")
    obj: str
    temporal: dict[str, Any] = Field(default_factory=dict, description="onset, year, ...")
    spatial: dict[str, Any] = Field(default_factory=dict, description="geography, anatomy, ...")
    clinical: dict[str, Any] = Field(
        default_factory=dict, description="frequency, stage, population, association type, ..."
    )
    source: str = Field(description="Dataset or document id the relation was read from.")
    evidence: str | None = Field(default=None, description="The text span, when extracted.")
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)


SourceType = Literal[
    "reference",  # curated definitions: Orphanet, Disease Ontology, MeSH
    "guideline",
    "systematic_review",
    "meta_analysis",
    "rct",
    "clinical_trial",
    "review",
    "observational",
    "case_report",
    "article",  # peer-reviewed, type unknown
    "preprint",
    "editorial",
    "fda_label",
    "trial_registry",
    "drug_catalog",
    "retracted",
    "web",
]
SOURCE_TYPES: tuple[str, ...] = SourceType.__args__  # type: ignore[attr-defined]


class Document(BaseModel):
    """A corpus record: what the retriever indexes and the agent's tools show, with its source.

    ``source_type`` is what the authority model reads (Score = λ·Rel + (1−λ)·Auth, §2.2);
    ``entity_ids`` links the document to knowledge-graph entities.
    """

    model_config = ConfigDict(extra="forbid")

    doc_id: str = Field(description="PMID:..., ORPHA:..., DOID:..., NCT..., FDA:<set_id>, ...")
    title: str
    text: str
    source: str = Field(description="pubmed, europepmc, orphanet, disease_ontology, ...")
    source_type: SourceType
    year: int | None = None
    url: str | None = None
    entity_ids: list[str] = Field(default_factory=list)
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Named texts the lexical index weights apart from the body: names "
        "(title and synonyms), genes, phenotypes, inheritance, onset, groups.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Source-specific fields: journal, issn, doi, mesh, publication_types, "
        "phase, status, set_id, ... (kept so that authority and filters can use them).",
    )


class Sample(BaseModel):
    """A sampled subgraph and its reasoning chain (paper §3.1.2), the input of QA synthesis.

    ``chain`` alternates entity ids and predicates: ``[e0, p1, e1, p2, e2, ...]``; a
    predicate prefixed with ``^`` was followed against its direction (``^associated_gene``
    leads from a gene to its disorder). ``edges`` are ``[subj, pred, obj]`` triples as stored.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Stable hash of strategy, seed, parameters and anchor.")
    strategy: str = Field(
        description="max_chain, augmented_chain, community_core_path, "
        "dual_core_bridge (mixed records the one it drew)."
    )
    seed: int
    params: dict[str, Any] = Field(default_factory=dict)
    anchor: str
    nodes: list[str]
    edges: list[list[str]]
    chain: list[str]
    hops: int = Field(description="Edges in the chain.")
    unique: bool | None = Field(
        default=None,
        description="Whether following the chain's predicates from its start "
        "reaches exactly one end entity.",
    )
    competing_ends: int | None = Field(
        default=None,
        description="How many other end entities the same walk reaches (counted up to 50).",
    )


QAParadigm = Literal["identify", "attribute", "count", "intersect"]
CheckName = str
MASK = "[MASK]"


class CheckResult(BaseModel):
    """One named check of a QA record or trajectory: passed, and why not."""

    model_config = ConfigDict(extra="forbid")

    passed: bool
    detail: str | None = Field(default=None, description="Why it failed (or what it measured).")


class CalibrationRound(BaseModel):
    """One round of difficulty calibration (paper §3.1.3): the panel's closed-book accuracy."""

    model_config = ConfigDict(extra="forbid")

    level: int
    accuracy: dict[str, float] = Field(
        default_factory=dict, description="Reference endpoint name → share of k answers correct."
    )
    k: int = 0
    too_easy: bool = Field(description="Whether any model exceeded the threshold (50 %).")
    question: str | None = Field(default=None, description="The question this round tried.")


class Difficulty(BaseModel):
    """Complexity level of a QA record and the calibration rounds that set it."""

    model_config = ConfigDict(extra="forbid")

    level: int = Field(default=1, description="1 = plainest; + 1 per regeneration.")
    calibrated: bool = False
    rounds: list[CalibrationRound] = Field(default_factory=list)


class QARecord(BaseModel):
    """A synthesised question with a unique answer (paper §3.1.2–3.1.3).

    ``cheat_sheet`` and ``masked_chain`` name entities only by placeholders (``[E1]`` …,
    mapped to ids in ``placeholders``), so that Masked Trajectory Guidance (§3.2) can show the
    path without its answers.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Stable hash of sample id, writer, paradigm, level, language.")
    question: str
    answer: str
    answer_id: str | None = Field(default=None, description="KG id of the answer entity.")
    answer_aliases: list[str] = Field(default_factory=list)
    cheat_sheet: list[str] = Field(default_factory=list, description="Ordered steps.")
    chain: list[str] = Field(description="The sample's chain: ids alternating with predicates.")
    masked_chain: list[list[str]] = Field(
        default_factory=list, description="([MASK], predicate, [MASK]) triples, one per hop."
    )
    placeholders: dict[str, str] = Field(
        default_factory=dict, description="Placeholder (E1, E2, …) → entity id."
    )
    sample_id: str
    strategy: str
    hops: int
    paradigm: QAParadigm = "identify"
    specialties: list[str] = Field(default_factory=list)
    difficulty: Difficulty = Field(default_factory=Difficulty)
    checks: dict[CheckName, CheckResult] = Field(default_factory=dict)
    language: Literal["en", "zh"] = "en"
    provenance: dict[str, Any] = Field(
        default_factory=dict, description="kg_version, writer (template | model name), ..."
    )
    created_at: str = Field(description="ISO 8601, UTC.")

    @property
    def passed(self) -> bool:
        """Whether every recorded check passed."""
        return all(c.passed for c in self.checks.values())


Termination = Literal["answer", "max_turns", "token_budget", "timeout", "error"]


class Trajectory(BaseModel):
    """One agent rollout (paper §2.2, §3.2) in OpenAI chat format.

    Assistant turns may carry ``reasoning_content`` and ``tool_calls`` (``function.arguments``
    is a JSON string); tool turns carry ``tool_call_id``. ``guidance`` is ``mtg`` when the
    Masked Trajectory Guidance scaffold was in the prompt that generated it.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    qa_id: str | None = None
    rollout: int = 0
    policy: str = Field(description="llm:<endpoint> or path_guided.")
    guidance: Literal["mtg", "none"] = "none"
    question: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = Field(default_factory=list, description="JSON schemas.")
    final_answer: str | None = None
    termination: Termination
    termination_detail: str | None = None
    judge: dict[str, Any] | None = None
    filters: dict[str, Any] | None = Field(
        default=None, description="{'passed': bool, 'reasons': [...]} after filtering."
    )
    stats: dict[str, Any] = Field(default_factory=dict)
    usage: dict[str, Any] = Field(default_factory=dict)
    created_at: str


class EvalResult(BaseModel):
    """One graded prediction of one benchmark item in one rollout."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str
    item_id: str
    rollout: int = 0
    question: str | None = None
    prediction: str | None
    gold: str
    verdict: Literal["correct", "incorrect", "unjudgeable"]
    grader: str = Field(description="rule:<name> or llm:<model>.")
    trajectory_id: str | None = None
    latency_s: float | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict, description="task, hops, level, ...")
