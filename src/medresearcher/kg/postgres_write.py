"""The write path of :class:`~medresearcher.kg.postgres_store.PostgresGraphStore`: ``COPY``
batches into staging tables merged with ``INSERT … ON CONFLICT``, and single-record merges.

Kept apart from the reads because it is its own concern (paper §3.1.1: building the graph
from many sources): how records reach the tables and how the shared merge rules
(:mod:`medresearcher.kg.merge`) are applied to them, in memory per batch or row by row.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from medresearcher.errors import InputError
from medresearcher.kg.merge import (
    XREF_PREFERENCE,
    EntityRow,
    merge_entity,
    merge_rows,
    normalise_name,
    relation_columns,
    row_of,
)
from medresearcher.schema import Entity, Relation

if TYPE_CHECKING:
    import psycopg

    from medresearcher.kg.postgres_schema import SqliteDialect

__all__ = ["MATCHES", "PREFERRED", "PostgresWriter"]

# The id an xref resolves to when several entities list it (the shared rule, with ``%``
# escaped for psycopg's placeholders).
PREFERRED = XREF_PREFERENCE.replace("%", "%%")
# One relation by its key columns and its full context (the index holds the context's md5).
MATCHES = "subj = %s AND pred = %s AND obj = %s AND md5(context) = md5(%s) AND context = %s"


class PostgresWriter:
    """The writing methods of the PostgreSQL graph store (a mixin of
    :class:`~medresearcher.kg.postgres_store.PostgresGraphStore`, which opens ``conn``,
    creates the staging tables and sets ``batch_size`` and ``db``)."""

    conn: psycopg.Connection[Any]
    batch_size: int
    db: SqliteDialect

    def _q(self, query: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.conn.execute(query, tuple(params))  # type: ignore[arg-type]

    def add_entities(self, entities: Iterable[Entity], *, merge_xrefs: bool = False) -> int:
        """Add or merge many entities in one transaction; returns how many were read.

        Without ``merge_xrefs`` each batch is folded by id in memory, merged with the rows
        already stored and written with ``COPY``; with it, entities join one by one, since
        each may merge into one added just before.
        """
        count = 0
        with self.conn.transaction():
            if merge_xrefs:
                for entity in entities:
                    self._merge_entity(entity, merge_xrefs=True)
                    count += 1
                return count
            iterator = iter(entities)
            while batch := list(itertools.islice(iterator, self.batch_size)):
                self._copy_entities(batch)
                count += len(batch)
        return count

    def add_entity(self, entity: Entity, *, merge_xrefs: bool = False) -> str:
        """Add ``entity`` or merge it into the one with its id; returns the id it lives at
        (see :meth:`GraphStore.add_entity <medresearcher.kg.store.GraphStore.add_entity>`)."""
        with self.conn.transaction():
            return self._merge_entity(entity, merge_xrefs=merge_xrefs)

    def _copy_entities(self, batch: list[Entity]) -> None:
        rows: dict[str, EntityRow] = {}
        names: dict[str, set[str]] = {}
        xrefs: set[tuple[str, str]] = set()
        for entity in batch:
            names.setdefault(entity.id, set()).update([entity.name, *entity.aliases])
            xrefs.update((entity.id, x) for x in entity.xrefs if x != entity.id)
            stored = rows.get(entity.id)
            rows[entity.id] = row_of(entity) if stored is None else merge_entity(stored, entity)[0]
        for row in self._q(
            "SELECT * FROM entities WHERE id = ANY(%s) FOR UPDATE", (list(rows),)
        ).fetchall():
            stored = EntityRow.from_columns(row)
            names[stored.id].add(stored.name)
            rows[stored.id] = merge_rows(stored, rows[stored.id])
        self._q("TRUNCATE stage_entities, stage_aliases, stage_xrefs")
        with self.conn.cursor().copy("COPY stage_entities FROM STDIN") as copy:
            for row in rows.values():
                copy.write_row(row.columns())
        with self.conn.cursor().copy("COPY stage_aliases FROM STDIN") as copy:
            for entity_id, given in names.items():
                for alias in sorted(given - {rows[entity_id].name}):
                    copy.write_row((entity_id, alias, normalise_name(alias)))
        with self.conn.cursor().copy("COPY stage_xrefs FROM STDIN") as copy:
            for pair in sorted(xrefs):
                copy.write_row(pair)
        columns = [c for c in EntityRow.__dataclass_fields__ if c != "id"] + ["norm_name"]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        self._q(
            f"INSERT INTO entities SELECT * FROM stage_entities ON CONFLICT (id) DO UPDATE "
            f"SET {updates}"
        )
        self._q("INSERT INTO aliases SELECT * FROM stage_aliases ON CONFLICT DO NOTHING")
        self._q(
            "DELETE FROM aliases a USING stage_entities s "
            "WHERE a.entity_id = s.id AND a.alias = s.name"
        )
        self._q("INSERT INTO xrefs SELECT * FROM stage_xrefs ON CONFLICT DO NOTHING")
        self.db.total_changes += len(rows)

    def _merge_entity(self, entity: Entity, *, merge_xrefs: bool) -> str:
        row = self._q("SELECT * FROM entities WHERE id = %s", (entity.id,)).fetchone()
        target = entity.id
        if row is None and merge_xrefs and entity.xrefs:
            keys = list(entity.xrefs)
            found = self._q(
                "SELECT entity_id FROM (SELECT entity_id FROM xrefs WHERE xref = ANY(%s) UNION "
                "SELECT id FROM entities WHERE id = ANY(%s)) t "
                f"ORDER BY {PREFERRED} LIMIT 1",
                (keys, keys),
            ).fetchone()
            if found:
                target = found[0]
                row = self._q("SELECT * FROM entities WHERE id = %s", (target,)).fetchone()
        if row is None:
            merged, names = row_of(entity, target), set(entity.aliases)
            self._q(f"INSERT INTO entities VALUES ({', '.join(['%s'] * 11)})", merged.columns())
        else:
            merged, names = merge_entity(EntityRow.from_columns(row), entity)
            self._q(
                "UPDATE entities SET type=%s, name=%s, name_source=%s, norm_name=%s, "
                "description=%s, description_source=%s, attrs=%s, attr_sources=%s, "
                "mentions=%s, source=%s WHERE id=%s",
                (*merged.columns()[1:], merged.id),
            )
        with self.conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO aliases VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(target, a, normalise_name(a)) for a in sorted(names)],
            )
            cursor.execute(
                "DELETE FROM aliases WHERE entity_id = %s AND alias = %s", (target, merged.name)
            )
            cursor.executemany(
                "INSERT INTO xrefs VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [(target, x) for x in entity.xrefs if x != target],
            )
        self.db.total_changes += 1
        return target

    def add_relations(self, relations: Iterable[Relation]) -> int:
        """Add many relations in one transaction (``COPY`` batches); returns how many were
        read.

        Raises
        ------
        InputError
            Naming the record number and the missing end, when a relation points to an
            entity that is not in the graph (nothing of the call is written).
        """
        count = 0
        iterator = iter(relations)
        with self.conn.transaction():
            while True:
                batch: list[Relation] = []
                failure: BaseException | None = None
                try:
                    batch.extend(itertools.islice(iterator, self.batch_size))
                except Exception as exc:  # a bad record: check what came before it first
                    failure = exc
                    batch = batch or []
                if batch:
                    self._copy_relations(batch, first=count + 1)
                    count += len(batch)
                if failure is not None:
                    raise failure
                if len(batch) < self.batch_size:
                    break
            if count > 100_000:
                self._q("ANALYZE relations")
                self._q("ANALYZE relation_sources")
        return count

    def _copy_relations(self, batch: list[Relation], *, first: int) -> None:
        self._q("TRUNCATE stage_relations")
        with self.conn.cursor().copy("COPY stage_relations FROM STDIN") as copy:
            for seq, r in enumerate(batch, start=first):
                copy.write_row((seq, *relation_columns(r), r.source, r.evidence, r.confidence))
        missing = self._q(
            "SELECT s.seq, s.subj, s.obj, EXISTS (SELECT 1 FROM entities WHERE id = s.subj) "
            "FROM stage_relations s WHERE NOT EXISTS (SELECT 1 FROM entities WHERE id = s.subj) "
            "OR NOT EXISTS (SELECT 1 FROM entities WHERE id = s.obj) ORDER BY s.seq LIMIT 1"
        ).fetchone()
        if missing:
            seq, subj, obj, subj_ok = missing
            field, end = ("obj", obj) if subj_ok else ("subj", subj)
            raise InputError(f"relation {seq}: {field}: entity {end!r} is not in the graph")
        self._q(
            "INSERT INTO relations (subj, pred, obj, context, temporal, spatial, clinical) "
            "SELECT subj, pred, obj, context, temporal, spatial, clinical FROM stage_relations "
            "ORDER BY seq ON CONFLICT (subj, pred, obj, md5(context)) DO NOTHING"
        )
        self._q(
            "INSERT INTO relation_sources SELECT r.id, s.source, (array_agg(s.evidence ORDER BY "
            "s.seq) FILTER (WHERE s.evidence IS NOT NULL))[1], max(s.confidence) "
            "FROM stage_relations s JOIN relations r ON r.subj = s.subj AND r.pred = s.pred "
            "AND r.obj = s.obj AND md5(r.context) = md5(s.context) AND r.context = s.context "
            "GROUP BY r.id, s.source ON CONFLICT (relation_id, source) DO UPDATE SET "
            "confidence = greatest(relation_sources.confidence, excluded.confidence), "
            "evidence = coalesce(relation_sources.evidence, excluded.evidence)"
        )
        self.db.total_changes += len(batch)

    def add_relation(self, relation: Relation) -> bool:
        """Add one relation; False when the same fact was already there (its source is
        still recorded)."""
        with self.conn.transaction():
            for end, field in ((relation.subj, "subj"), (relation.obj, "obj")):
                if not self._q("SELECT 1 FROM entities WHERE id = %s", (end,)).fetchone():
                    raise InputError(f"relation 1: {field}: entity {end!r} is not in the graph")
            columns = relation_columns(relation)
            inserted = self._q(
                "INSERT INTO relations (subj, pred, obj, context, temporal, spatial, clinical) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
                columns,
            ).fetchone()
            key = (*columns[:4], columns[3])
            (relation_id,) = (
                inserted or self._q(f"SELECT id FROM relations WHERE {MATCHES}", key).fetchone()
            )
            self._q(
                "INSERT INTO relation_sources VALUES (%s, %s, %s, %s) ON CONFLICT (relation_id, "
                "source) DO UPDATE SET confidence = greatest(relation_sources.confidence, "
                "excluded.confidence), evidence = coalesce(relation_sources.evidence, "
                "excluded.evidence)",
                (relation_id, relation.source, relation.evidence, relation.confidence),
            )
            self.db.total_changes += 1
            return inserted is not None
