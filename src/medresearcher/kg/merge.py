"""How contributions to one entity or relation merge: pure functions both stores share.

Paper §3.1.1 grows the graph from many sources (Orphanet, DO, discovered entities); the
order they arrive in must not change the graph. The rules, applied the same way by the
SQLite and the PostgreSQL store:

- aliases and xrefs are unions; every name an entity was given is kept as an alias;
- the name, description and each attribute come from the contribution whose
  ``(source, value)`` sorts first; the type and the record's source are the smallest seen;
  mentions are the largest count seen;
- a relation is identified by subject, predicate, object and its context (temporal,
  spatial, clinical, see :func:`relation_context`); every source that asserted it is kept.

Merging is associative and commutative, so a batch can be folded in memory first and the
result merged with what is stored (:func:`merge_rows`) — what the bulk importer does.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from medresearcher.schema import Entity, Relation

__all__ = [
    "XREF_PREFERENCE",
    "EntityRow",
    "canonical_json",
    "first_contribution",
    "merge_entity",
    "merge_rows",
    "normalise_name",
    "relation_columns",
    "relation_context",
    "row_of",
]

_SPACE = re.compile(r"[\s\-_/,]+")

# SQL ORDER BY over ``entity_id`` for the entity an xref resolves to when several entities
# list it: the Orphanet record first (the graph is built around rare disorders; retrieval's
# ``entity_of`` makes the same choice), then the smallest id.
XREF_PREFERENCE = "(entity_id NOT LIKE 'ORPHA:%'), entity_id"


def normalise_name(name: str) -> str:
    """Case-, accent- and punctuation-folded name for matching ("Anderson–Fabry disease" →
    "anderson fabry disease")."""
    dashes = "".join("-" if unicodedata.category(c) == "Pd" else c for c in name)
    folded = unicodedata.normalize("NFKD", dashes).encode("ascii", "ignore").decode("ascii")
    folded = folded.casefold().replace("'s ", " ").replace("'", "")
    return _SPACE.sub(" ", re.sub(r"[^\w\s\-/,]", " ", folded)).strip()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def relation_context(relation: Relation) -> str:
    """The part of a relation's identity beyond its ends and predicate (the 6-tuple's
    temporal, spatial and clinical context), as one canonical string."""
    return canonical_json([relation.temporal, relation.spatial, relation.clinical])


def relation_columns(relation: Relation) -> tuple[str, ...]:
    """The key and qualifier columns of ``relation`` as the ``relations`` table stores them:
    subject, predicate, object, context, then temporal, spatial and clinical as JSON."""
    return (
        relation.subj,
        relation.pred,
        relation.obj,
        relation_context(relation),
        canonical_json(relation.temporal),
        canonical_json(relation.spatial),
        canonical_json(relation.clinical),
    )


def first_contribution(candidates: Iterable[tuple[str, Any]]) -> tuple[str, Any]:
    """The (source, value) pair that sorts first: the order-independent winner."""
    return min(candidates, key=lambda pair: (pair[0], canonical_json(pair[1])))


@dataclass
class EntityRow:
    """One stored entity with the source of each chosen value (the ``entities`` table row;
    aliases and xrefs live in their own tables)."""

    id: str
    type: str
    name: str
    name_source: str
    description: str | None
    description_source: str | None
    attrs: dict[str, Any] = field(default_factory=dict)
    attr_sources: dict[str, str] = field(default_factory=dict)
    mentions: int | None = None
    source: str = ""

    def columns(self) -> tuple[Any, ...]:
        """The table's columns in order (attrs as canonical JSON, the name normalised)."""
        return (
            self.id,
            self.type,
            self.name,
            self.name_source,
            normalise_name(self.name),
            self.description,
            self.description_source,
            canonical_json(self.attrs),
            canonical_json(self.attr_sources),
            self.mentions,
            self.source,
        )

    @classmethod
    def from_columns(cls, row: Iterable[Any]) -> EntityRow:
        """Read back what :meth:`columns` wrote (JSON text or already-decoded values)."""
        (id_, type_, name, name_source, _, desc, desc_source, attrs, attr_sources, men, src) = row
        return cls(
            id=id_,
            type=type_,
            name=name,
            name_source=name_source,
            description=desc,
            description_source=desc_source,
            attrs=json.loads(attrs) if isinstance(attrs, str) else dict(attrs),
            attr_sources=(
                json.loads(attr_sources) if isinstance(attr_sources, str) else dict(attr_sources)
            ),
            mentions=men,
            source=src,
        )


def row_of(entity: Entity, entity_id: str | None = None) -> EntityRow:
    """The row a new entity makes (stored at ``entity_id``, its own id by default)."""
    return EntityRow(
        id=entity_id or entity.id,
        type=entity.type,
        name=entity.name,
        name_source=entity.source,
        description=entity.description,
        description_source=entity.source if entity.description else None,
        attrs=dict(entity.attrs),
        attr_sources={key: entity.source for key in entity.attrs},
        mentions=entity.mentions,
        source=entity.source,
    )


def merge_rows(stored: EntityRow, new: EntityRow) -> EntityRow:
    """``stored`` with ``new`` merged in (the id stays ``stored``'s).

    A description that is set wins over one that is not; among set ones the first
    ``(source, text)`` wins. Without any, ``stored``'s (None or empty) stays.
    """
    name_source, name = first_contribution(
        [(stored.name_source, stored.name), (new.name_source, new.name)]
    )
    description, description_source = stored.description, stored.description_source
    if new.description and description:
        description_source, description = first_contribution(
            [(description_source, description), (new.description_source, new.description)]
        )
    elif new.description:
        description, description_source = new.description, new.description_source
    attrs, attr_sources = dict(stored.attrs), dict(stored.attr_sources)
    for key, value in new.attrs.items():
        if key in attrs:
            attr_sources[key], attrs[key] = first_contribution(
                [(attr_sources[key], attrs[key]), (new.attr_sources[key], value)]
            )
        else:
            attrs[key], attr_sources[key] = value, new.attr_sources[key]
    mentions = stored.mentions
    if new.mentions is not None:
        mentions = max(mentions or 0, new.mentions)
    return replace(
        stored,
        type=min(stored.type, new.type),
        name=name,
        name_source=name_source,
        description=description,
        description_source=description_source,
        attrs=attrs,
        attr_sources=attr_sources,
        mentions=mentions,
        source=min(stored.source, new.source),
    )


def merge_entity(stored: EntityRow, entity: Entity) -> tuple[EntityRow, set[str]]:
    """``stored`` with ``entity`` merged in, and the names to add as aliases (every name
    either was given, except the name that won)."""
    merged = merge_rows(stored, row_of(entity, stored.id))
    return merged, {stored.name, entity.name, *entity.aliases} - {merged.name}
