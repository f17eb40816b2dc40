"""What both graph stores do the same way when reading: table rows back to records, the
summary counts and the networkx view.

The SQLite store (:mod:`medresearcher.kg.store`) and the PostgreSQL store
(:mod:`medresearcher.kg.postgres_store`) hold the same tables (paper §3.1.1: entities and
6-tuple relations with provenance) and must give the same answers; they differ in how they
fetch rows, not in what a row means. These pure functions are that shared meaning.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import networkx as nx

from medresearcher.schema import Entity, Relation

__all__ = ["STATS_QUERIES", "entity_of_row", "graph_stats", "networkx_graph", "relation_of_row"]

# The counts behind :func:`graph_stats`, in SQL both engines read alike.
STATS_QUERIES = (
    "SELECT type, count(*) FROM entities GROUP BY type ORDER BY 2 DESC",
    "SELECT pred, count(*) FROM relations GROUP BY pred ORDER BY 2 DESC",
    "SELECT source, count(*) FROM relation_sources GROUP BY source ORDER BY 2 DESC, 1",
)


def _json(value: Any) -> Any:
    """A JSON column's value: text is decoded, an already-decoded value is copied."""
    return json.loads(value) if isinstance(value, str) else dict(value)


def entity_of_row(row: Sequence[Any], aliases: Iterable[str], xrefs: Iterable[str]) -> Entity:
    """The :class:`Entity` of an ``entities`` row (its first 11 columns, in table order) with
    its aliases and xrefs (each sorted by the caller)."""
    id_, type_, name, _, _, description, _, attrs, _, mentions, source = row[:11]
    return Entity(
        id=id_,
        type=type_,
        name=name,
        aliases=list(aliases),
        xrefs=list(xrefs),
        attrs=_json(attrs),
        description=description,
        mentions=mentions,
        source=source,
    )


def relation_of_row(row: Sequence[Any]) -> Relation:
    """The :class:`Relation` of ``(subj, pred, obj, temporal, spatial, clinical, source,
    evidence, confidence)``: a ``relations`` row joined with its first source."""
    subj, pred, obj, temporal, spatial, clinical, source, evidence, confidence = row
    return Relation(
        subj=subj,
        pred=pred,
        obj=obj,
        temporal=json.loads(temporal),
        spatial=json.loads(spatial),
        clinical=json.loads(clinical),
        source=source,
        evidence=evidence,
        confidence=confidence,
    )


def graph_stats(fetch_all: Callable[[str], Iterable[tuple[str, int]]]) -> dict[str, Any]:
    """Entity and relation counts, by type, predicate and asserting source; ``fetch_all``
    runs one of :data:`STATS_QUERIES` and returns its rows."""
    by_type, by_pred, by_source = (dict(fetch_all(query)) for query in STATS_QUERIES)
    return {
        "entities": sum(by_type.values()),
        "relations": sum(by_pred.values()),
        "entities_by_type": by_type,
        "relations_by_predicate": by_pred,
        "relation_assertions_by_source": by_source,
    }


def networkx_graph(entities: Iterable[Entity], relations: Iterable[Relation]) -> nx.MultiDiGraph:
    """The records as a multigraph with every attribute on it (edges keyed by predicate)."""
    graph = nx.MultiDiGraph()
    for e in entities:
        graph.add_node(e.id, **e.model_dump(exclude={"id"}))
    for r in relations:
        graph.add_edge(r.subj, r.obj, key=r.pred, **r.model_dump(exclude={"subj", "obj"}))
    return graph
