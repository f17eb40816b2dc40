"""A sampling view that reads the graph store on demand: for graphs larger than memory.

:class:`~medresearcher.sampling.graph.GraphView` holds the whole adjacency; on a graph of
tens of millions of edges that no longer fits. :class:`StoreGraphView` answers the same
questions (neighbours, type, degree, rarity) by fetching neighbourhoods from the store in
batches — one ``adjacency`` query for a node, then one ``node_facts`` and one ``adjacency``
query for all the neighbours it reveals (the next steps of the walk) — and keeps what it
fetched in a bounded cache. The samplers of
§3.1.2 only look a few hops around their anchor, so a sample touches a small part of the
graph, and it gets the same sample as it would from the full view.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

from medresearcher.sampling.graph import Step, rarity_score

__all__ = ["GraphProjection", "StoreGraphView"]


class GraphProjection(Protocol):
    """What a view needs of a graph store (both stores implement it)."""

    def adjacency(self, ids: Any) -> dict[str, list[tuple[str, str, bool]]]: ...

    def node_facts(self, ids: Any) -> dict[str, tuple[str, dict[str, Any], int | None]]: ...

    def count_entities(self) -> int: ...


class StoreGraphView:
    """Read-only adjacency over a store, fetched in batches as the samplers walk.

    Parameters
    ----------
    store:
        A :class:`~medresearcher.kg.store.GraphStore` or
        :class:`~medresearcher.kg.postgres_store.PostgresGraphStore`.
    cache_nodes:
        Neighbourhoods kept in memory (least recently used dropped first).

    Notes
    -----
    Neighbour lists are de-duplicated, self-loops dropped and sorted, as in
    :class:`GraphView`, so strategies draw the same samples from either view.
    """

    def __init__(self, store: GraphProjection, *, cache_nodes: int = 200_000) -> None:
        self.store = store
        self.cache_nodes = cache_nodes
        self._adj: OrderedDict[str, tuple[Step, ...]] = OrderedDict()
        self._facts: dict[str, tuple[str, float]] = {}
        self._degree: dict[str, int] = {}
        self._size: int | None = None
        self.queries = 0

    # -- fetching -----------------------------------------------------------------------

    def _fetch(self, node: str) -> tuple[Step, ...]:
        self.queries += 1
        steps = self._keep(node, self.store.adjacency([node]).get(node, []))
        self._learn([node, *(other for other, _, _ in steps)])
        return steps

    def _learn(self, ids: list[str]) -> None:
        """Types and rarity of ``ids`` not known yet, and their degrees, in two queries."""
        unknown = [i for i in dict.fromkeys(ids) if i not in self._facts]
        if not unknown:
            return
        self.queries += 1
        facts = self.store.node_facts(unknown)
        for node in unknown:
            type_, attrs, mentions = facts.get(node, ("unknown", {}, None))
            self._facts[node] = (type_, rarity_score(attrs, mentions, node))
        missing = [i for i in unknown if i not in self._degree]
        if missing:  # their neighbourhoods come with their degrees: the walk's next batch
            self.queries += 1
            for node, found in self.store.adjacency(missing).items():
                self._keep(node, found)

    def _keep(self, node: str, found: list[tuple[str, str, bool]]) -> tuple[Step, ...]:
        steps = tuple(sorted({s for s in found if s[0] != node}))
        self._adj[node] = steps
        self._degree[node] = len(steps)
        if len(self._adj) > self.cache_nodes:
            self._adj.popitem(last=False)
        return steps

    def _fact(self, node: str) -> tuple[str, float] | None:
        if node not in self._facts:
            self._learn([node])
        return self._facts.get(node)

    # -- the GraphView interface ----------------------------------------------------------

    def __contains__(self, node: object) -> bool:
        if not isinstance(node, str):
            return False
        fact = self._fact(node)
        return fact is not None and (fact[0] != "unknown" or self.degree(node) > 0)

    def __len__(self) -> int:
        if self._size is None:
            self._size = self.store.count_entities()
        return self._size

    @property
    def n_edges(self) -> int:
        """Relations in the store (duplicates across contexts counted once per context)."""
        stats = getattr(self.store, "stats", None)
        return int(stats()["relations"]) if stats else 0

    def neighbours(self, node: str) -> tuple[Step, ...]:
        """``(neighbour, predicate, forward)`` for every relation touching ``node``."""
        steps = self._adj.get(node)
        if steps is None:
            return self._fetch(node)
        self._adj.move_to_end(node)
        return steps

    def type(self, node: str) -> str:
        fact = self._fact(node)
        return fact[0] if fact else "unknown"

    def degree(self, node: str) -> int:
        """Relations touching ``node``, both directions counted."""
        if node not in self._degree:
            self._learn([node])
        return self._degree.get(node, 0)

    def rarity(self, node: str) -> float:
        """Rarity score, higher is rarer (see :func:`rarity_score`)."""
        fact = self._fact(node)
        return fact[1] if fact else 0.1

    def has_step(self, node: str, step: Step) -> bool:
        return step in self.neighbours(node)

    def triple(self, node: str, step: Step) -> list[str]:
        """The stored ``[subj, pred, obj]`` of the relation ``step`` leaving ``node``."""
        other, pred, forward = step
        return [node, pred, other] if forward else [other, pred, node]
