"""An in-memory graph under construction: entities merged by id, relations deduplicated."""

from __future__ import annotations

import re
from typing import Any

from medresearcher.schema import Document, Entity, Relation


def slug(label: str) -> str:
    """A stable id fragment for things the sources name only by label."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


class BundleGraph:
    """Entities, relations and documents, each keyed so that adding twice merges."""

    def __init__(self) -> None:
        self.entities: dict[str, Entity] = {}
        self.relations: dict[tuple[str, str, str, str], Relation] = {}
        self.documents: dict[str, Document] = {}

    def entity(self, id: str, type: str, name: str, source: str, **fields: Any) -> Entity:
        """Add an entity, or merge aliases, xrefs and attrs into the one already there."""
        current = self.entities.get(id)
        if current is None:
            current = Entity(id=id, type=type, name=name, source=source, **fields)
            self.entities[id] = current
            return current
        for alias in fields.get("aliases", []):
            if alias not in current.aliases and alias != current.name:
                current.aliases.append(alias)
        for xref in fields.get("xrefs", []):
            if xref not in current.xrefs:
                current.xrefs.append(xref)
        for key, value in fields.get("attrs", {}).items():
            current.attrs.setdefault(key, value)
        if not current.description and fields.get("description"):
            current.description = fields["description"]
        return current

    def relate(self, subj: str, pred: str, obj: str, source: str, **fields: Any) -> None:
        key = (subj, pred, obj, source)
        if key not in self.relations:
            self.relations[key] = Relation(subj=subj, pred=pred, obj=obj, source=source, **fields)

    def document(self, doc: Document) -> None:
        self.documents.setdefault(doc.doc_id, doc)

    def prune_dangling(self) -> int:
        """Drop relations whose ends are not entities; returns how many were dropped."""
        keep = {
            key: rel
            for key, rel in self.relations.items()
            if rel.subj in self.entities and rel.obj in self.entities
        }
        dropped = len(self.relations) - len(keep)
        self.relations = keep
        return dropped
