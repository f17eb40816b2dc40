"""The graph store: entities and 6-tuple relations with their provenance, in SQLite.

Paper §3.1.1 grows a graph of rare entities whose relations carry temporal, spatial and
clinical context. The public release kept flat JSON files per run and re-read all of them
every iteration; here one SQLite file (WAL mode: readers while one writer works) holds
everything, indexed for the questions the samplers and expansion ask: neighbours by
predicate and type, degree, lookups by alias and xref.

Merging is order-independent (the rules live in :mod:`medresearcher.kg.merge`, shared with
the PostgreSQL store), so importing sources in any order gives the same graph:

- aliases and xrefs are unions; every name an entity was given is kept as an alias;
- the name, description and each attribute come from the contribution whose
  ``(source, value)`` sorts first;
- a relation is identified by subject, predicate, object and its context (temporal,
  spatial, clinical); every source that asserted it is kept, the record shows the first.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import networkx as nx

from medresearcher.errors import InputError
from medresearcher.kg.merge import (
    XREF_PREFERENCE,
    EntityRow,
    merge_entity,
    normalise_name,
    relation_columns,
    relation_context,
    row_of,
)
from medresearcher.kg.store_reads import (
    entity_of_row,
    graph_stats,
    networkx_graph,
    relation_of_row,
)
from medresearcher.schema import Entity, Relation

__all__ = ["GraphStore", "normalise_name"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, name_source TEXT NOT NULL,
    norm_name TEXT NOT NULL, description TEXT, description_source TEXT,
    attrs TEXT NOT NULL, attr_sources TEXT NOT NULL, mentions INTEGER, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entities_type ON entities(type);
CREATE INDEX IF NOT EXISTS entities_norm ON entities(norm_name);
CREATE TABLE IF NOT EXISTS aliases (
    entity_id TEXT NOT NULL, alias TEXT NOT NULL, norm_alias TEXT NOT NULL,
    PRIMARY KEY (entity_id, alias));
CREATE INDEX IF NOT EXISTS aliases_norm ON aliases(norm_alias);
CREATE TABLE IF NOT EXISTS xrefs (
    entity_id TEXT NOT NULL, xref TEXT NOT NULL, PRIMARY KEY (entity_id, xref));
CREATE INDEX IF NOT EXISTS xrefs_xref ON xrefs(xref);
CREATE TABLE IF NOT EXISTS relations (
    id INTEGER PRIMARY KEY, subj TEXT NOT NULL, pred TEXT NOT NULL, obj TEXT NOT NULL,
    context TEXT NOT NULL, temporal TEXT NOT NULL, spatial TEXT NOT NULL,
    clinical TEXT NOT NULL, UNIQUE (subj, pred, obj, context));
CREATE INDEX IF NOT EXISTS relations_subj ON relations(subj, pred);
CREATE INDEX IF NOT EXISTS relations_obj ON relations(obj, pred);
CREATE TABLE IF NOT EXISTS relation_sources (
    relation_id INTEGER NOT NULL, source TEXT NOT NULL, evidence TEXT,
    confidence REAL NOT NULL, PRIMARY KEY (relation_id, source));
"""


class GraphStore:
    """Entities and relations in one SQLite file; use as a context manager.

    Writes are batched in transactions by :meth:`add_entities` / :meth:`add_relations`;
    single adds commit on their own.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # -- writing ----------------------------------------------------------------------

    def add_entities(self, entities: Iterable[Entity], *, merge_xrefs: bool = False) -> int:
        """Add or merge many entities in one transaction; returns how many were read."""
        count = 0
        with self._transaction():
            for entity in entities:
                self._merge_entity(entity, merge_xrefs=merge_xrefs)
                count += 1
        return count

    def add_entity(self, entity: Entity, *, merge_xrefs: bool = False) -> str:
        """Add ``entity`` or merge it into the one with its id; returns the id it lives at.

        With ``merge_xrefs``, an entity whose id is new merges into an existing entity that
        shares an xref with it (or whose id is one of its xrefs): how discovered entities
        join the ones already there. Imports keep it off, so that twins in different
        ontologies stay two nodes linked by ``same_as``.
        """
        with self._transaction():
            return self._merge_entity(entity, merge_xrefs=merge_xrefs)

    def add_relations(self, relations: Iterable[Relation]) -> int:
        """Add many relations in one transaction; returns how many were read.

        Raises
        ------
        InputError
            Naming the record number and the missing end, when a relation points to an
            entity that is not in the graph (nothing of the batch is written).
        """
        count = 0
        with self._transaction():
            for count, relation in enumerate(relations, start=1):
                self._add_relation(relation, record=count)
        return count

    def add_relation(self, relation: Relation) -> bool:
        """Add one relation; False when the same fact was already there (its source is
        still recorded)."""
        with self._transaction():
            return self._add_relation(relation, record=1)

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)

    def _merge_entity(self, entity: Entity, *, merge_xrefs: bool) -> str:
        row = self.db.execute("SELECT * FROM entities WHERE id = ?", (entity.id,)).fetchone()
        target = entity.id
        if row is None and merge_xrefs:
            keys = [*entity.xrefs]
            found = (
                self.db.execute(
                    "SELECT entity_id FROM (SELECT entity_id FROM xrefs WHERE xref IN "
                    f"({','.join('?' * len(keys))}) UNION SELECT id AS entity_id FROM entities "
                    f"WHERE id IN ({','.join('?' * len(keys))})) "
                    f"ORDER BY {XREF_PREFERENCE} LIMIT 1",
                    (*keys, *keys),
                ).fetchone()
                if keys
                else None
            )
            if found:
                target = found[0]
                row = self.db.execute("SELECT * FROM entities WHERE id = ?", (target,)).fetchone()
        if row is None:
            merged, names = row_of(entity, target), set(entity.aliases)
            self.db.execute("INSERT INTO entities VALUES (?,?,?,?,?,?,?,?,?,?,?)", merged.columns())
        else:
            merged, names = merge_entity(EntityRow.from_columns(row), entity)
            self.db.execute(
                "UPDATE entities SET type=?, name=?, name_source=?, norm_name=?, description=?, "
                "description_source=?, attrs=?, attr_sources=?, mentions=?, source=? WHERE id=?",
                (*merged.columns()[1:], merged.id),
            )
        for alias in names:
            self.db.execute(
                "INSERT OR IGNORE INTO aliases VALUES (?,?,?)",
                (target, alias, normalise_name(alias)),
            )
        self.db.execute(
            "DELETE FROM aliases WHERE entity_id = ? AND alias = ?", (target, merged.name)
        )
        for xref in entity.xrefs:
            if xref != target:
                self.db.execute("INSERT OR IGNORE INTO xrefs VALUES (?,?)", (target, xref))
        return target

    def _add_relation(self, relation: Relation, *, record: int) -> bool:
        for end, field in ((relation.subj, "subj"), (relation.obj, "obj")):
            if not self.db.execute("SELECT 1 FROM entities WHERE id = ?", (end,)).fetchone():
                raise InputError(f"relation {record}: {field}: entity {end!r} is not in the graph")
        columns = relation_columns(relation)
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO relations (subj, pred, obj, context, temporal, spatial, "
            "clinical) VALUES (?,?,?,?,?,?,?)",
            columns,
        )
        added = cursor.rowcount == 1
        relation_id = self.db.execute(
            "SELECT id FROM relations WHERE subj=? AND pred=? AND obj=? AND context=?",
            columns[:4],
        ).fetchone()[0]
        self.db.execute(
            "INSERT INTO relation_sources VALUES (?,?,?,?) ON CONFLICT DO UPDATE SET "
            "confidence = max(confidence, excluded.confidence), "
            "evidence = coalesce(evidence, excluded.evidence)",
            (relation_id, relation.source, relation.evidence, relation.confidence),
        )
        return added

    # -- reading ----------------------------------------------------------------------

    def entity(self, entity_id: str) -> Entity | None:
        row = self.db.execute("SELECT * FROM entities WHERE id = ?", (entity_id,)).fetchone()
        return None if row is None else self._entity(row)

    def names_of(self, ids: Iterable[str]) -> dict[str, list[str]]:
        """Each entity's name followed by its aliases (the id alone when unknown): the
        strings that leak checks, leak filters and readers look for in text."""
        found: dict[str, list[str]] = {}
        for entity_id in dict.fromkeys(ids):
            entity = self.entity(entity_id)
            found[entity_id] = [entity.name, *entity.aliases] if entity else [entity_id]
        return found

    def _entity(self, row: tuple) -> Entity:
        id_ = row[0]
        aliases = self.db.execute(
            "SELECT alias FROM aliases WHERE entity_id = ? ORDER BY alias", (id_,)
        )
        xrefs = self.db.execute("SELECT xref FROM xrefs WHERE entity_id = ? ORDER BY xref", (id_,))
        return entity_of_row(row, [a for (a,) in aliases], [x for (x,) in xrefs])

    def iter_entities(self) -> Iterator[Entity]:
        for row in self.db.execute("SELECT * FROM entities ORDER BY id").fetchall():
            yield self._entity(row)

    def iter_relations(self) -> Iterator[Relation]:
        rows = self.db.execute("SELECT id FROM relations ORDER BY subj, pred, obj, context")
        for (relation_id,) in rows.fetchall():
            yield self._relation(relation_id)

    def _relation(self, relation_id: int) -> Relation:
        columns = self.db.execute(
            "SELECT subj, pred, obj, temporal, spatial, clinical FROM relations WHERE id = ?",
            (relation_id,),
        ).fetchone()
        first_source = self.db.execute(
            "SELECT source, evidence, confidence FROM relation_sources WHERE relation_id = ? "
            "ORDER BY source LIMIT 1",
            (relation_id,),
        ).fetchone()
        return relation_of_row((*columns, *first_source))

    def sources_of(self, relation: Relation) -> list[str]:
        """Every source that asserted ``relation`` (its provenance)."""
        context = relation_context(relation)
        return [
            s
            for (s,) in self.db.execute(
                "SELECT source FROM relation_sources JOIN relations ON id = relation_id "
                "WHERE subj=? AND pred=? AND obj=? AND context=? ORDER BY source",
                (relation.subj, relation.pred, relation.obj, context),
            )
        ]

    def find(self, name: str, *, type: str | None = None) -> list[str]:
        """Ids of entities whose name or an alias normalises to ``name``'s form."""
        norm = normalise_name(name)
        ids = {
            i for (i,) in self.db.execute("SELECT id FROM entities WHERE norm_name = ?", (norm,))
        }
        ids |= {
            i
            for (i,) in self.db.execute(
                "SELECT entity_id FROM aliases WHERE norm_alias = ?", (norm,)
            )
        }
        if type is not None:
            ids = {
                i
                for i in ids
                if self.db.execute(
                    "SELECT 1 FROM entities WHERE id = ? AND type = ?", (i, type)
                ).fetchone()
            }
        return sorted(ids)

    def resolve(self, identifier: str) -> str | None:
        """The entity with this id, or the one that lists it as an xref."""
        if self.db.execute("SELECT 1 FROM entities WHERE id = ?", (identifier,)).fetchone():
            return identifier
        row = self.db.execute(
            f"SELECT entity_id FROM xrefs WHERE xref = ? ORDER BY {XREF_PREFERENCE}", (identifier,)
        ).fetchone()
        return row[0] if row else None

    def neighbours(
        self,
        entity_id: str,
        *,
        predicates: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        direction: str = "both",
    ) -> list[tuple[Relation, Entity]]:
        """Relations touching ``entity_id`` and the entity at their other end, filtered by
        predicate and by the other end's type; ``direction`` is out, in or both."""
        queries = []
        if direction in ("out", "both"):
            queries.append(("SELECT id, obj FROM relations WHERE subj = ?", "obj"))
        if direction in ("in", "both"):
            queries.append(("SELECT id, subj FROM relations WHERE obj = ?", "subj"))
        result = []
        for sql, _ in queries:
            params: list[Any] = [entity_id]
            if predicates:
                sql += f" AND pred IN ({','.join('?' * len(predicates))})"
                params += list(predicates)
            for relation_id, other in self.db.execute(sql + " ORDER BY id", params).fetchall():
                entity = self.entity(other)
                if entity is not None and (not types or entity.type in types):
                    result.append((self._relation(relation_id), entity))
        return result

    def degree(self, entity_id: str) -> int:
        (n,) = self.db.execute(
            "SELECT count(*) FROM relations WHERE subj = ? OR obj = ?", (entity_id, entity_id)
        ).fetchone()
        return int(n)

    def subgraph(self, ids: Iterable[str]) -> tuple[list[Entity], list[Relation]]:
        """The entities ``ids`` and the relations among them (the induced subgraph)."""
        wanted = sorted(set(ids))
        entities = [e for e in (self.entity(i) for i in wanted) if e is not None]
        present = {e.id for e in entities}
        relations = [
            r
            for r in self.iter_relations_touching(present)
            if r.subj in present and r.obj in present
        ]
        return entities, relations

    def iter_relations_touching(self, ids: set[str]) -> Iterator[Relation]:
        seen: set[int] = set()
        for entity_id in sorted(ids):
            for (relation_id,) in self.db.execute(
                "SELECT id FROM relations WHERE subj = ? OR obj = ?", (entity_id, entity_id)
            ):
                if relation_id not in seen:
                    seen.add(relation_id)
                    yield self._relation(relation_id)

    def to_networkx(self, ids: Iterable[str] | None = None) -> nx.MultiDiGraph:
        """The graph (or the subgraph induced by ``ids``) with every attribute on it."""
        if ids is None:
            entities, relations = list(self.iter_entities()), list(self.iter_relations())
        else:
            entities, relations = self.subgraph(ids)
        return networkx_graph(entities, relations)

    # -- projections for sampling -------------------------------------------------------

    def iter_node_facts(self) -> Iterator[tuple[str, str, dict[str, Any], int | None]]:
        """``(id, type, attrs, mentions)`` of every entity: what a sampling view keeps."""
        for id_, type_, attrs, mentions in self.db.execute(
            "SELECT id, type, attrs, mentions FROM entities ORDER BY id"
        ):
            yield id_, type_, json.loads(attrs), mentions

    def iter_triples(self) -> Iterator[tuple[str, str, str]]:
        """``(subj, pred, obj)`` of every relation, streamed."""
        yield from self.db.execute("SELECT subj, pred, obj FROM relations")

    def node_facts(self, ids: Iterable[str]) -> dict[str, tuple[str, dict[str, Any], int | None]]:
        """``id → (type, attrs, mentions)`` for the ids that exist."""
        found = {}
        for chunk in _chunks(sorted(set(ids))):
            marks = ",".join("?" * len(chunk))
            for id_, type_, attrs, mentions in self.db.execute(
                f"SELECT id, type, attrs, mentions FROM entities WHERE id IN ({marks})", chunk
            ):
                found[id_] = (type_, json.loads(attrs), mentions)
        return found

    def adjacency(self, ids: Iterable[str]) -> dict[str, list[tuple[str, str, bool]]]:
        """``id → [(other end, predicate, forward)]`` for every relation touching each of
        ``ids``, both directions: how samplers fetch neighbourhoods in batches."""
        wanted = sorted(set(ids))
        found: dict[str, list[tuple[str, str, bool]]] = {i: [] for i in wanted}
        for chunk in _chunks(wanted):
            marks = ",".join("?" * len(chunk))
            for node, pred, other, forward in self.db.execute(
                f"SELECT subj, pred, obj, 1 FROM relations WHERE subj IN ({marks}) UNION ALL "
                f"SELECT obj, pred, subj, 0 FROM relations WHERE obj IN ({marks})",
                (*chunk, *chunk),
            ):
                found[node].append((other, pred, bool(forward)))
        return found

    def count_entities(self) -> int:
        (n,) = self.db.execute("SELECT count(*) FROM entities").fetchone()
        return int(n)

    def stats(self) -> dict[str, Any]:
        return graph_stats(lambda query: self.db.execute(query).fetchall())


def _chunks(items: list[str], size: int = 400) -> Iterator[list[str]]:
    """Slices of ``items`` short enough for SQLite's bound-parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Transaction:
    """BEGIN … COMMIT around a batch (ROLLBACK on error); nested use joins the outer one."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.outer = False

    def __enter__(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
            self.outer = True

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self.outer:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
