"""LLM extraction of entities and 6-tuple relations from retrieved documents (§3.1.1).

The model reads the current entity and a few retrieved documents and answers with an
:class:`Extraction`; :func:`link_entity` maps each extracted entity onto the graph (by
xref, then name or alias) and :func:`check_relation` decides whether a relation may enter
it (allowed predicate, evidence span found in the cited, retrieved document).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, Field, field_validator

from medresearcher.kg.store import GraphStore, normalise_name
from medresearcher.schema import Document, Entity

__all__ = [
    "ALLOWED_PREDICATES",
    "EXTRACTION_PROMPT",
    "ExtractedEntity",
    "ExtractedRelation",
    "Extraction",
    "build_messages",
    "evidence_in",
    "link_entity",
    "new_entity",
    "new_entity_id",
]

ALLOWED_PREDICATES: tuple[str, ...] = (
    "has_phenotype",
    "associated_gene",
    "subclass_of",
    "treats",
    "palliates",
    "caused_by",
    "transmitted_by",
    "located_in",
    "has_symptom",
    "complication_of",
    "risk_factor_for",
    "diagnosed_by",
    "interacts_with",
    "contraindicated_with",
)


class ExtractedEntity(BaseModel):
    """An entity named in the documents, as the model reports it."""

    name: str = Field(min_length=1)
    type: str = Field(
        min_length=1, description="disease, phenotype, symptom, gene, drug, anatomy, pathogen"
    )
    aliases: list[str] = Field(default_factory=list)
    xrefs: list[str] = Field(
        default_factory=list, description="Identifiers seen in the text: OMIM:..., HGNC:..."
    )


class ExtractedRelation(BaseModel):
    """⟨subject, predicate, object, temporal, spatial, clinical⟩ with its evidence."""

    subject: str = Field(description="Entity name (as in `entities`) or the current entity.")
    predicate: str
    object: str
    temporal: dict[str, Any] = Field(default_factory=dict)
    spatial: dict[str, Any] = Field(default_factory=dict)
    clinical: dict[str, Any] = Field(default_factory=dict)
    evidence: str = Field(description="A span copied verbatim from the document's text.")
    doc_id: str = Field(description="The doc_id of the document the evidence comes from.")
    confidence: float = Field(default=0.8, json_schema_extra={"minimum": 0.0, "maximum": 1.0})

    @field_validator("temporal", "spatial", "clinical", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("confidence")
    @classmethod
    def _clip(cls, value: float) -> float:
        return min(1.0, max(0.0, value))


class Extraction(BaseModel):
    """The model's whole answer for one discovery step."""

    entities: list[ExtractedEntity] = Field(default_factory=list)
    relations: list[ExtractedRelation] = Field(default_factory=list)


EXTRACTION_PROMPT = """\
You extract a medical knowledge graph from documents.

Current entity: {entity_name} (type: {entity_type}, id: {entity_id}{aliases})

Documents:
{documents}

Task: list the medical entities these documents connect to the current entity, and the
relations between them as 6-tuples <subject, predicate, object, temporal, spatial,
clinical>.
- entities: name, type (disease, phenotype, symptom, gene, drug, anatomy, pathogen),
  aliases, and xrefs (identifiers such as OMIM:301500 or HGNC:4296, only when the text
  gives them).
- relations: subject and object are entity names (the current entity may be named as is);
  predicate is one of: {predicates}. Any other predicate is treated as vague and dropped.
  temporal (onset, age, year), spatial (geography, anatomy) and clinical (frequency,
  stage, population, dose) hold context stated in the text, else {{}}.
- evidence: a span copied verbatim from the document text that states the relation;
  doc_id: the id of that document. Relations without a verbatim span are dropped.
- confidence: 0 to 1, how clearly the text states the relation.
Use only what the documents say; do not add knowledge of your own."""


def build_messages(
    entity: Entity, documents: list[Document], *, max_chars: int = 1500
) -> list[dict[str, Any]]:
    """The chat messages asking for an :class:`Extraction` about ``entity``."""
    parts = []
    for doc in documents:
        text = doc.text if len(doc.text) <= max_chars else doc.text[:max_chars] + " …"
        parts.append(f"[doc_id: {doc.doc_id}] {doc.title}\n{text}")
    aliases = f"; also called {', '.join(entity.aliases[:8])}" if entity.aliases else ""
    prompt = EXTRACTION_PROMPT.format(
        entity_name=entity.name,
        entity_type=entity.type,
        entity_id=entity.id,
        aliases=aliases,
        documents="\n\n".join(parts) or "(none)",
        predicates=", ".join(ALLOWED_PREDICATES),
    )
    return [{"role": "user", "content": prompt}]


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def evidence_in(evidence: str, document: Document) -> bool:
    """Whether ``evidence`` occurs in the document's title or text (case-insensitive,
    whitespace-normalised); an empty span never does."""
    span = _squash(evidence)
    return bool(span) and span in _squash(f"{document.title}\n{document.text}")


def link_entity(
    store: GraphStore, extracted: ExtractedEntity, *, prefer: Collection[str] = ()
) -> str | None:
    """The id of the graph entity ``extracted`` names, or None when it is new.

    By id or xref first, then by name or alias (same type preferred); the store's lookup
    matches normalised names (case, accents, punctuation folded). Finally the stable id a
    discovered twin would have been given. When several entities match (twins from two
    ontologies, listed in each other's xrefs, count as matches too), the one in
    ``prefer`` wins (the entity being expanded), then an exact spelling, then the
    best-connected one, then the smallest id.
    """
    candidates: set[str] = set()
    for xref in extracted.xrefs:
        found = store.resolve(xref.strip())
        if found:
            candidates.add(found)
            break
    names = [extracted.name, *extracted.aliases]
    kind = extracted.type.strip().lower()
    for type_ in (kind, None):
        if candidates:
            break
        for name in names:
            if normalise_name(name):
                candidates.update(store.find(name, type=type_))
    if not candidates:
        return store.resolve(new_entity_id(extracted))
    entities = {c: store.entity(c) for c in candidates}
    for entity in list(entities.values()):
        for xref in entity.xrefs if entity else ():
            twin = store.entity(xref)
            if twin is not None and twin.type == entity.type:
                entities.setdefault(twin.id, twin)
    spelled = set(names)

    def rank(item: tuple[str, Entity | None]) -> tuple:
        entity_id, entity = item
        exact = entity is not None and bool(spelled & {entity.name, *entity.aliases})
        return (entity_id not in prefer, not exact, -store.degree(entity_id), entity_id)

    return min(entities.items(), key=rank)[0]


def new_entity_id(extracted: ExtractedEntity) -> str:
    """``MR:<type>:<slug>``: stable, so the same new entity from two documents merges."""
    slug = normalise_name(extracted.name).replace(" ", "-") or "unnamed"
    kind = normalise_name(extracted.type).replace(" ", "-") or "entity"
    return f"MR:{kind}:{slug}"


def new_entity(extracted: ExtractedEntity, doc_id: str) -> Entity:
    """The graph entity for an extracted one that links to nothing."""
    name = " ".join(extracted.name.split())
    return Entity(
        id=new_entity_id(extracted),
        type=extracted.type.strip().lower(),
        name=name,
        aliases=sorted({a.strip() for a in extracted.aliases if a.strip() and a.strip() != name}),
        xrefs=sorted({x.strip() for x in extracted.xrefs if x.strip()}),
        source=f"discovered:{doc_id}",
    )
