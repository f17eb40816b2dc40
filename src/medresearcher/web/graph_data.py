"""The graph as the web UI shows it: entities, relations with their clinical context and
sources, search by name, alias or id, and a sample's subgraph — as JSON-ready dicts.

Nothing here knows about HTTP; the routes call these on the graph thread
(:class:`medresearcher.web.state.GraphAccess`). Every relation carries its provenance (the
sources that asserted it, paper §3.1.1's 6-tuple plus source), so a fact on screen can be
traced back to the dataset or document it came from.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from medresearcher.kg import GraphStore, normalise_name
from medresearcher.schema import Entity, Relation, Sample

__all__ = [
    "NameIndex",
    "entity_json",
    "neighbourhood",
    "relation_json",
    "sample_graph",
    "search_entities",
]

MAX_LIMIT = 200


@dataclass(frozen=True)
class NameIndex:
    """Normalised names and aliases of every entity, for substring search.

    :meth:`GraphStore.find` matches whole names only; a user typing "Fabry" expects
    "Fabry disease" and "Anderson-Fabry disease". Built once (well under a second for the
    demo graph's 20,000 entities) and kept by the app.
    """

    rows: tuple[tuple[str, str, bool], ...]  # (normalised name or alias, id, is the name)

    @classmethod
    def from_store(cls, store: GraphStore) -> NameIndex:
        rows: list[tuple[str, str, bool]] = []
        for entity in store.iter_entities():
            rows.append((normalise_name(entity.name), entity.id, True))
            rows.extend((normalise_name(alias), entity.id, False) for alias in entity.aliases)
        return cls(tuple(rows))

    def matches(self, query: str, limit: int) -> list[str]:
        """Ids whose name or an alias starts with, has a word starting with, or contains
        ``query`` (normalised), best first: names before aliases, shorter before longer."""
        norm = normalise_name(query)
        if not norm:
            return []
        ranked: dict[str, tuple[int, int, str]] = {}
        for text, entity_id, is_name in self.rows:
            if norm not in text:
                continue
            if text == norm:
                rank = 0
            elif text.startswith(norm):
                rank = 1
            elif f" {norm}" in f" {text}":
                rank = 2
            else:
                rank = 3
            key = (rank * 2 + (0 if is_name else 1), len(text), entity_id)
            if entity_id not in ranked or key < ranked[entity_id]:
                ranked[entity_id] = key
        return [i for i, _ in sorted(ranked.items(), key=lambda item: item[1])[:limit]]


def entity_json(entity: Entity, store: GraphStore, *, full: bool = False) -> dict[str, Any]:
    """An entity for the page: id, type, name, aliases, and with ``full`` its attributes,
    xrefs, description, source and degree."""
    data: dict[str, Any] = {
        "id": entity.id,
        "type": entity.type,
        "name": entity.name,
        "aliases": entity.aliases[:8],
    }
    if full:
        data.update(
            aliases=entity.aliases,
            xrefs=entity.xrefs,
            attrs=entity.attrs,
            description=entity.description,
            source=entity.source,
            degree=store.degree(entity.id),
        )
    return data


def relation_json(relation: Relation, store: GraphStore) -> dict[str, Any]:
    """A relation as an edge: ends, predicate, its 6-tuple context and every source."""
    frequency = relation.clinical.get("frequency")
    return {
        "source": relation.subj,
        "target": relation.obj,
        "pred": relation.pred,
        "label": f"{relation.pred} · {frequency}" if frequency else relation.pred,
        "frequency": frequency,
        "clinical": relation.clinical,
        "temporal": relation.temporal,
        "spatial": relation.spatial,
        "sources": store.sources_of(relation) or [relation.source],
        "evidence": relation.evidence,
        "confidence": relation.confidence,
    }


def search_entities(store: GraphStore, names: NameIndex, query: str, *, limit: int = 20) -> list:
    """Entities matching ``query`` as an id or xref, an exact name or alias, then by
    substring of a name or alias (:class:`NameIndex`)."""
    query = query.strip()[:200]
    if not query:
        return []
    limit = max(1, min(limit, MAX_LIMIT))
    ids: list[str] = []
    resolved = store.resolve(query)
    if resolved:
        ids.append(resolved)
    ids += store.find(query)
    ids += names.matches(query, limit)
    found = []
    for entity_id in dict.fromkeys(ids):
        entity = store.entity(entity_id)
        if entity is not None:
            found.append({**entity_json(entity, store), "degree": store.degree(entity_id)})
        if len(found) >= limit:
            break
    return found


def neighbourhood(
    store: GraphStore,
    entity_id: str,
    *,
    limit: int = 40,
    predicates: Sequence[str] | None = None,
) -> dict[str, Any] | None:
    """``entity_id``, up to ``limit`` neighbours and the relations to them, or None when the
    entity is unknown.

    Neighbours are taken round-robin over predicates (each predicate in name order), so that
    a disorder's one gene is shown next to its 76 phenotypes rather than cut off by them.
    """
    centre = store.entity(entity_id)
    if centre is None:
        return None
    limit = max(1, min(limit, MAX_LIMIT))
    by_predicate: dict[str, list[tuple[Relation, Entity]]] = defaultdict(list)
    for relation, other in store.neighbours(entity_id, predicates=predicates or None):
        by_predicate[relation.pred].append((relation, other))
    total = sum(len(pairs) for pairs in by_predicate.values())
    chosen: list[tuple[Relation, Entity]] = []
    queues = [pairs for _, pairs in sorted(by_predicate.items())]
    rank = 0
    while len(chosen) < limit and any(rank < len(q) for q in queues):
        for queue in queues:
            if rank < len(queue) and len(chosen) < limit:
                chosen.append(queue[rank])
        rank += 1
    nodes = {centre.id: entity_json(centre, store)}
    for _, other in chosen:
        nodes.setdefault(other.id, entity_json(other, store))
    return {
        "centre": entity_json(centre, store, full=True),
        "nodes": list(nodes.values()),
        "edges": [relation_json(relation, store) for relation, _ in chosen],
        "total": total,
        "shown": len(chosen),
        "by_predicate": {pred: len(pairs) for pred, pairs in sorted(by_predicate.items())},
    }


def _relations_of(store: GraphStore, triples: Iterable[Sequence[str]]) -> list[Relation]:
    found = []
    for subj, pred, obj in (tuple(t) for t in triples if len(t) == 3):
        for relation, other in store.neighbours(subj, predicates=[pred], direction="out"):
            if other.id == obj:
                found.append(relation)
    return found


def chain_edges(sample_chain: Sequence[str]) -> list[list[str]]:
    """The chain's hops as stored triples ``[subj, pred, obj]`` (``^p`` hops reversed)."""
    triples = []
    for index in range(1, len(sample_chain), 2):
        left, pred, right = sample_chain[index - 1], sample_chain[index], sample_chain[index + 1]
        if pred.startswith("^"):
            triples.append([right, pred[1:], left])
        else:
            triples.append([left, pred, right])
    return triples


def sample_graph(store: GraphStore, sample: Sample) -> dict[str, Any]:
    """A sample's nodes and edges (with context and sources) and its chain, for drawing:
    chain edges are marked ``in_chain`` and chain nodes carry their ``chain_index``."""
    chain_triples = chain_edges(sample.chain)
    chain_keys = {tuple(t) for t in chain_triples}
    triples = [list(t) for t in dict.fromkeys(tuple(t) for t in [*sample.edges, *chain_triples])]
    edges = []
    for relation in _relations_of(store, triples):
        edge = relation_json(relation, store)
        edge["in_chain"] = (relation.subj, relation.pred, relation.obj) in chain_keys
        edges.append(edge)
    chain_nodes = sample.chain[::2]
    nodes = []
    for entity_id in dict.fromkeys([*chain_nodes, *sample.nodes]):
        entity = store.entity(entity_id)
        node = (
            entity_json(entity, store)
            if entity
            else {"id": entity_id, "type": "unknown", "name": entity_id, "aliases": []}
        )
        node["chain_index"] = chain_nodes.index(entity_id) if entity_id in chain_nodes else None
        nodes.append(node)
    names = {node["id"]: node["name"] for node in nodes}
    chain = [
        {"entity": item, "name": names.get(item, item)} if index % 2 == 0 else {"predicate": item}
        for index, item in enumerate(sample.chain)
    ]
    return {"sample": sample.model_dump(), "nodes": nodes, "edges": edges, "chain": chain}
