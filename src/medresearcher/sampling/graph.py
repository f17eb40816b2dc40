"""A compact, read-only adjacency of the knowledge graph for fast path search (§3.1.2).

The samplers walk the graph millions of times per run; a networkx ``MultiDiGraph`` with
pydantic attributes on every edge is too heavy for that. :class:`GraphView` keeps, per node,
a tuple of ``(neighbour, predicate, forward)`` steps — both directions of every relation —
plus the node's type, degree and a rarity score, and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import networkx as nx

from medresearcher.schema import Entity, Relation

if TYPE_CHECKING:
    from medresearcher.kg.postgres_store import PostgresGraphStore
    from medresearcher.kg.store import GraphStore
    from medresearcher.sampling.store_view import StoreGraphView

__all__ = ["IN_MEMORY_MAX_ENTITIES", "GraphView", "Step", "rarity_score"]

#: Above this many entities :meth:`GraphView.from_store` reads the store on demand
#: (a view holds ~1 kB per node with its steps; 5 million nodes is several GB).
IN_MEMORY_MAX_ENTITIES = 2_000_000

# (neighbour, predicate, forward): forward=False means the stored edge points the other way.
Step = tuple[str, str, bool]


def rarity_score(attrs: dict[str, Any] | None, mentions: int | None, node_id: str = "") -> float:
    """How rare an entity is: higher is rarer.

    Rare Orphanet disorders score 2.0, other entities flagged ``attrs["rare"]`` 1.5; an
    entity with a corpus mention count ``m`` scores ``1 / (1 + log10(1 + m))`` (1.0 when
    never mentioned, falling with the count); an entity with neither scores 0.1.
    """
    if attrs and attrs.get("rare") is True:
        return 2.0 if node_id.startswith("ORPHA:") else 1.5
    if mentions is not None:
        return 1.0 / (1.0 + math.log10(1 + max(0, mentions)))
    return 0.1


class GraphView:
    """Read-only adjacency over entity ids, traversable in both directions.

    Parameters
    ----------
    types:
        Node id → entity type.
    rarity:
        Node id → rarity score (higher is rarer); missing ids score 0.1.
    triples:
        ``(subj, pred, obj)`` relations as stored; duplicates are dropped.

    Notes
    -----
    Build it with :meth:`from_records`, :meth:`from_networkx` or :meth:`from_store`.
    Neighbour lists are sorted, so nothing depends on the order records arrived in.
    """

    def __init__(
        self,
        types: dict[str, str],
        rarity: dict[str, float],
        triples: Iterable[tuple[str, str, str]],
    ) -> None:
        adj: dict[str, set[Step]] = {node: set() for node in types}
        for subj, pred, obj in triples:
            if subj == obj:
                continue
            adj.setdefault(subj, set()).add((obj, pred, True))
            adj.setdefault(obj, set()).add((subj, pred, False))
        self._adj: dict[str, tuple[Step, ...]] = {n: tuple(sorted(s)) for n, s in adj.items()}
        self._types = {n: types.get(n, "unknown") for n in self._adj}
        self._rarity = {n: float(rarity.get(n, 0.1)) for n in self._adj}
        self._degree = {n: len(steps) for n, steps in self._adj.items()}
        self.n_edges = sum(1 for steps in self._adj.values() for s in steps if s[2])

    # -- constructors -----------------------------------------------------------------

    @classmethod
    def from_records(cls, entities: Iterable[Entity], relations: Iterable[Relation]) -> GraphView:
        """From :class:`Entity` and :class:`Relation` records (a bundle, an import)."""
        types: dict[str, str] = {}
        rarity: dict[str, float] = {}
        for e in entities:
            types[e.id] = e.type
            rarity[e.id] = rarity_score(e.attrs, e.mentions, e.id)
        return cls(types, rarity, ((r.subj, r.pred, r.obj) for r in relations))

    @classmethod
    def from_networkx(cls, graph: nx.MultiDiGraph) -> GraphView:
        """From a ``MultiDiGraph`` whose nodes carry ``type`` (and optionally ``attrs``,
        ``mentions``) and whose edges carry the predicate as key or ``pred`` attribute."""
        types: dict[str, str] = {}
        rarity: dict[str, float] = {}
        for node, data in graph.nodes(data=True):
            types[node] = str(data.get("type", "unknown"))
            rarity[node] = rarity_score(data.get("attrs"), data.get("mentions"), str(node))
        triples = []
        for subj, obj, key, data in graph.edges(keys=True, data=True):
            pred = data.get("pred", key)
            triples.append((subj, str(pred), obj))
        return cls(types, rarity, triples)

    @classmethod
    def from_store(
        cls, store: GraphStore | PostgresGraphStore, *, in_memory: bool | None = None
    ) -> GraphView | StoreGraphView:
        """From a graph store (SQLite or PostgreSQL), through the interface both share.

        In memory (the default up to :data:`IN_MEMORY_MAX_ENTITIES` entities), the view
        reads two streamed projections: ids with type and rarity inputs, and the
        ``(subj, pred, obj)`` triples. Past that, or with ``in_memory=False``, it returns
        a :class:`~medresearcher.sampling.store_view.StoreGraphView` that fetches
        neighbourhoods from the store in batches, so a graph larger than memory can still
        be sampled; both give the same samples.
        """
        if in_memory is None:
            in_memory = store.count_entities() <= IN_MEMORY_MAX_ENTITIES
        if not in_memory:
            from medresearcher.sampling.store_view import StoreGraphView

            return StoreGraphView(store)
        types: dict[str, str] = {}
        rarity: dict[str, float] = {}
        for node, type_, attrs, mentions in store.iter_node_facts():
            types[node] = type_
            rarity[node] = rarity_score(attrs, mentions, node)
        return cls(types, rarity, store.iter_triples())

    # -- queries ----------------------------------------------------------------------

    def __contains__(self, node: object) -> bool:
        return node in self._adj

    def __len__(self) -> int:
        return len(self._adj)

    def nodes(self) -> list[str]:
        """Every node id, sorted."""
        return sorted(self._adj)

    def neighbours(self, node: str) -> tuple[Step, ...]:
        """``(neighbour, predicate, forward)`` for every relation touching ``node``."""
        return self._adj.get(node, ())

    def type(self, node: str) -> str:
        return self._types.get(node, "unknown")

    def degree(self, node: str) -> int:
        """Relations touching ``node``, both directions counted."""
        return self._degree.get(node, 0)

    def rarity(self, node: str) -> float:
        """Rarity score, higher is rarer (see :func:`rarity_score`)."""
        return self._rarity.get(node, 0.1)

    def has_step(self, node: str, step: Step) -> bool:
        """Whether ``node`` has the relation ``step`` = (neighbour, pred, forward)."""
        return step in self._adj.get(node, ())

    def triple(self, node: str, step: Step) -> list[str]:
        """The stored ``[subj, pred, obj]`` of the relation ``step`` leaving ``node``."""
        other, pred, forward = step
        return [node, pred, other] if forward else [other, pred, node]
