"""The records that cross stage boundaries (ARCHITECTURE.md §3): one definition each.

Field names are the contract between stages. IDs are CURIEs or stable content hashes,
never list positions, so any record can be traced back to where it came from.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SOURCE_TYPES", "Document", "Entity", "Relation", "Sample", "SourceType"]


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
