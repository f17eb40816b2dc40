"""The graph store on PostgreSQL: the interface of :class:`~medresearcher.kg.store.GraphStore`
for graphs larger than one machine's memory (paper §3.1.1; ARCHITECTURE §6).

Same tables, same merge rules (:mod:`medresearcher.kg.merge`), same answers. What differs
is how it moves data: batches go through ``COPY`` into staging tables and are merged with
``INSERT … ON CONFLICT`` (entities folded in memory first, with the shared merge rules),
and reads fetch many rows per round trip (one query for the entities of a neighbourhood,
:meth:`adjacency` for many nodes at once) instead of one query per row. The write path
lives in :mod:`medresearcher.kg.postgres_write`; this module opens the store and reads.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import Any

import networkx as nx
import psycopg
from psycopg import sql

from medresearcher.errors import ConfigError
from medresearcher.kg.merge import normalise_name, relation_columns
from medresearcher.kg.postgres_schema import DDL, STAGING_DDL, SqliteDialect
from medresearcher.kg.postgres_write import MATCHES, PREFERRED, PostgresWriter
from medresearcher.kg.store_reads import (
    entity_of_row,
    graph_stats,
    networkx_graph,
    relation_of_row,
)
from medresearcher.schema import Entity, Relation

__all__ = ["PostgresGraphStore"]

_ENTITY = (
    "SELECT e.*, ARRAY(SELECT alias FROM aliases WHERE entity_id = e.id ORDER BY alias), "
    "ARRAY(SELECT xref FROM xrefs WHERE entity_id = e.id ORDER BY xref) FROM entities e"
)
_RELATION = (
    "SELECT r.subj, r.pred, r.obj, r.temporal, r.spatial, r.clinical, s.source, s.evidence, "
    "s.confidence FROM relations r CROSS JOIN LATERAL (SELECT source, evidence, confidence "
    "FROM relation_sources WHERE relation_id = r.id ORDER BY source LIMIT 1) s"
)


def _entity(row: Sequence[Any]) -> Entity:
    """An :data:`_ENTITY` row: the table's columns, then the aliases and xrefs arrays."""
    return entity_of_row(row, row[11], row[12])


def safe_dsn(dsn: str) -> str:
    """``dsn`` with any password removed, for messages."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable dsn>"
    parts.pop("password", None)
    return " ".join(f"{key}={value}" for key, value in sorted(parts.items()))


class PostgresGraphStore(PostgresWriter):
    """Entities and relations in one PostgreSQL schema; use as a context manager.

    Parameters
    ----------
    dsn:
        libpq connection string (``host=… dbname=…`` or ``postgresql://…``).
    password:
        Passed to the server apart from ``dsn``, so it appears in no string this store
        prints or logs.
    schema:
        The schema holding the tables (created when missing), so several graphs can share
        a database.
    batch_size:
        Records per ``COPY`` batch in :meth:`add_entities` / :meth:`add_relations` (the
        writing methods, inherited from
        :class:`~medresearcher.kg.postgres_write.PostgresWriter`).
    """

    def __init__(
        self,
        dsn: str,
        *,
        password: str | None = None,
        schema: str = "medresearcher",
        batch_size: int = 50_000,
    ) -> None:
        self.dsn, self.schema, self.batch_size = safe_dsn(dsn), schema, batch_size
        # What provenance labels name the graph by (SQLite's is its file, ``kg.sqlite``).
        self.path = PurePosixPath(f"postgresql:{schema}")
        try:
            self.conn = psycopg.connect(
                dsn, autocommit=True, **({"password": password} if password else {})
            )
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"[graph] dsn: cannot connect to {self.dsn}: {reason}") from None
        with self.conn.transaction():
            self.conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            )
            self.conn.execute(
                sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema))
            )
            self.conn.execute(DDL)  # type: ignore[arg-type]
            self.conn.execute(STAGING_DDL)  # type: ignore[arg-type]
        self.db = SqliteDialect(self.conn)

    def __repr__(self) -> str:
        return f"PostgresGraphStore({self.dsn!r}, schema={self.schema!r})"

    def __enter__(self) -> PostgresGraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # -- reading ----------------------------------------------------------------------

    def entity(self, entity_id: str) -> Entity | None:
        row = self._q(f"{_ENTITY} WHERE e.id = %s", (entity_id,)).fetchone()
        return None if row is None else _entity(row)

    def entities(self, ids: Iterable[str]) -> dict[str, Entity]:
        """The entities among ``ids`` that exist, by id (one query)."""
        rows = self._q(f"{_ENTITY} WHERE e.id = ANY(%s)", (sorted(set(ids)),)).fetchall()
        return {row[0]: _entity(row) for row in rows}

    def names_of(self, ids: Iterable[str]) -> dict[str, list[str]]:
        """Each entity's name followed by its aliases (the id alone when unknown)."""
        wanted = list(dict.fromkeys(ids))
        found = self.entities(wanted)
        return {i: [found[i].name, *found[i].aliases] if i in found else [i] for i in wanted}

    def _stream(self, query: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        """Rows of ``query`` through a server-side cursor (the client holds one batch)."""
        with self.conn.cursor(name=f"stream_{id(self)}_{next(_CURSORS)}", withhold=True) as cur:
            cur.itersize = 5000
            cur.execute(query, tuple(params))  # type: ignore[arg-type]
            yield from cur

    def iter_entities(self) -> Iterator[Entity]:
        for row in self._stream(f"{_ENTITY} ORDER BY e.id"):
            yield _entity(row)

    def iter_relations(self) -> Iterator[Relation]:
        for row in self._stream(f"{_RELATION} ORDER BY r.subj, r.pred, r.obj, r.context"):
            yield relation_of_row(row)

    def sources_of(self, relation: Relation) -> list[str]:
        """Every source that asserted ``relation`` (its provenance)."""
        columns = relation_columns(relation)
        rows = self._q(
            "SELECT source FROM relation_sources JOIN relations ON id = relation_id "
            f"WHERE {MATCHES} ORDER BY source",
            (*columns[:4], columns[3]),
        )
        return [s for (s,) in rows]

    def find(self, name: str, *, type: str | None = None) -> list[str]:
        """Ids of entities whose name or an alias normalises to ``name``'s form."""
        norm = normalise_name(name)
        rows = self._q(
            "SELECT id FROM entities WHERE id IN (SELECT id FROM entities WHERE norm_name = %s "
            "UNION SELECT entity_id FROM aliases WHERE norm_alias = %s)"
            + (" AND type = %s" if type is not None else ""),
            (norm, norm) + ((type,) if type is not None else ()),
        )
        return sorted(i for (i,) in rows)

    def resolve(self, identifier: str) -> str | None:
        """The entity with this id, or the one that lists it as an xref."""
        if self._q("SELECT 1 FROM entities WHERE id = %s", (identifier,)).fetchone():
            return identifier
        row = self._q(
            f"SELECT entity_id FROM xrefs WHERE xref = %s ORDER BY {PREFERRED} LIMIT 1",
            (identifier,),
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
        found: list[tuple[Relation, str]] = []
        for end, other, wanted in (("subj", "obj", "out"), ("obj", "subj", "in")):
            if direction not in (wanted, "both"):
                continue
            query = f"{_RELATION} WHERE r.{end} = %s"
            params: list[Any] = [entity_id]
            if predicates:
                query += " AND r.pred = ANY(%s)"
                params.append(list(predicates))
            if types:
                query += f" AND (SELECT type FROM entities WHERE id = r.{other}) = ANY(%s)"
                params.append(list(types))
            for row in self._q(query + " ORDER BY r.id", params):
                relation = relation_of_row(row)
                found.append((relation, getattr(relation, other)))
        entities = self.entities(other for _, other in found)
        return [(r, entities[o]) for r, o in found if o in entities]

    def degree(self, entity_id: str) -> int:
        (n,) = self._q(
            "SELECT count(*) FROM relations WHERE subj = %s OR obj = %s", (entity_id, entity_id)
        ).fetchone()
        return int(n)

    def subgraph(self, ids: Iterable[str]) -> tuple[list[Entity], list[Relation]]:
        """The entities ``ids`` and the relations among them (the induced subgraph)."""
        found = self.entities(ids)
        entities = [found[i] for i in sorted(found)]
        rows = self._q(
            f"{_RELATION} WHERE r.subj = ANY(%s) AND r.obj = ANY(%s) ORDER BY r.id",
            (sorted(found), sorted(found)),
        )
        return entities, [relation_of_row(row) for row in rows]

    def iter_relations_touching(self, ids: set[str]) -> Iterator[Relation]:
        wanted = sorted(ids)
        rows = self._q(
            f"{_RELATION} WHERE r.subj = ANY(%s) OR r.obj = ANY(%s) ORDER BY r.id",
            (wanted, wanted),
        )
        for row in rows.fetchall():
            yield relation_of_row(row)

    def to_networkx(self, ids: Iterable[str] | None = None) -> nx.MultiDiGraph:
        """The graph (or the subgraph induced by ``ids``) with every attribute on it."""
        if ids is None:
            entities, relations = list(self.iter_entities()), list(self.iter_relations())
        else:
            entities, relations = self.subgraph(ids)
        return networkx_graph(entities, relations)

    def stats(self) -> dict[str, Any]:
        return graph_stats(lambda query: self._q(query).fetchall())

    # -- projections for sampling -------------------------------------------------------

    def iter_node_facts(self) -> Iterator[tuple[str, str, dict[str, Any], int | None]]:
        """``(id, type, attrs, mentions)`` of every entity: what a sampling view keeps."""
        import json

        for id_, type_, attrs, mentions in self._stream(
            "SELECT id, type, attrs, mentions FROM entities ORDER BY id"
        ):
            yield id_, type_, json.loads(attrs), mentions

    def iter_triples(self) -> Iterator[tuple[str, str, str]]:
        """``(subj, pred, obj)`` of every relation, streamed."""
        yield from self._stream("SELECT subj, pred, obj FROM relations")

    def node_facts(self, ids: Iterable[str]) -> dict[str, tuple[str, dict[str, Any], int | None]]:
        """``id → (type, attrs, mentions)`` for the ids that exist (one query)."""
        import json

        rows = self._q(
            "SELECT id, type, attrs, mentions FROM entities WHERE id = ANY(%s)", (list(set(ids)),)
        )
        return {i: (t, json.loads(a), m) for i, t, a, m in rows}

    def adjacency(self, ids: Iterable[str]) -> dict[str, list[tuple[str, str, bool]]]:
        """``id → [(other end, predicate, forward)]`` for every relation touching each of
        ``ids``, both directions, in one query: how samplers fetch neighbourhoods in batches."""
        wanted = list(set(ids))
        found: dict[str, list[tuple[str, str, bool]]] = {i: [] for i in wanted}
        rows = self._q(
            "SELECT subj, pred, obj, true FROM relations WHERE subj = ANY(%s) UNION ALL "
            "SELECT obj, pred, subj, false FROM relations WHERE obj = ANY(%s)",
            (wanted, wanted),
        )
        for node, pred, other, forward in rows:
            found[node].append((other, pred, forward))
        return found

    def count_entities(self) -> int:
        (n,) = self._q("SELECT count(*) FROM entities").fetchone()
        return int(n)


_CURSORS = itertools.count()
