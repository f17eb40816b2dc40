"""MedicallyValid(p) and answer uniqueness for reasoning chains (paper §3.1.2).

A chain is ``[e0, p1, e1, p2, e2, ...]``; ``^p`` marks an edge followed against its stored
direction. The rules keep chains that a question writer can turn into a multi-hop question:
no hubs as inner hops (a category such as "rare genetic disease" links everything), no
predicate outside the whitelist, no up-and-down along ``subclass_of``, no revisits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medresearcher.sampling.graph import GraphView

__all__ = [
    "DEFAULT_PREDICATES",
    "ChainRules",
    "competing_ends",
    "is_medically_valid",
    "parse_chain",
]

DEFAULT_PREDICATES: frozenset[str] = frozenset(
    {
        "has_phenotype",
        "subclass_of",
        "associated_gene",
        "has_symptom",
        "treats",
        "palliates",
        "located_in",
        "caused_by",
        "transmitted_by",
    }
)
"""Every demo predicate except ``same_as`` (an identity, not a hop), ``lacks_phenotype``
and ``not_indicated`` (negative facts)."""

# A hop as the rules see it: (predicate, forward).
Hop = tuple[str, bool]


@dataclass(frozen=True)
class ChainRules:
    """What makes a chain medically valid.

    Attributes
    ----------
    predicates:
        Predicates a chain may use (either direction).
    max_hub_degree:
        Inner nodes of a chain must have at most this degree; the ends may have more.
    allowed_types:
        Optional entity types allowed per position (``allowed_types[i]`` for ``e_i``;
        ``None`` entries and positions past the list are free).
    no_subclass_pingpong:
        Forbid ``subclass_of`` followed by ``^subclass_of`` or the reverse (siblings).
    no_consecutive_inverse:
        Forbid any ``p`` followed by ``^p`` or the reverse (disease → phenotype → disease).
        Off by default: on a disease-centred graph most multi-hop chains are of this form.
    """

    predicates: frozenset[str] = DEFAULT_PREDICATES
    max_hub_degree: int = 200
    allowed_types: Sequence[set[str] | frozenset[str] | None] | None = None
    no_subclass_pingpong: bool = True
    no_consecutive_inverse: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "predicates", frozenset(self.predicates))

    def as_params(self) -> dict[str, Any]:
        """A JSON-able description (for ``Sample.params`` and ids)."""
        types = (
            None
            if self.allowed_types is None
            else [None if t is None else sorted(t) for t in self.allowed_types]
        )
        return {
            "predicates": sorted(self.predicates),
            "max_hub_degree": self.max_hub_degree,
            "allowed_types": types,
            "no_subclass_pingpong": self.no_subclass_pingpong,
            "no_consecutive_inverse": self.no_consecutive_inverse,
        }

    # -- incremental checks used by the searches ---------------------------------------

    def type_ok(self, view: GraphView, node: str, position: int) -> bool:
        if self.allowed_types is None or position >= len(self.allowed_types):
            return True
        allowed = self.allowed_types[position]
        return allowed is None or view.type(node) in allowed

    def pair_ok(self, prev: Hop | None, hop: Hop) -> bool:
        """Whether ``hop`` may follow ``prev`` (the ping-pong and inverse rules)."""
        if prev is None or prev[0] != hop[0] or prev[1] == hop[1]:
            return True
        if self.no_consecutive_inverse:
            return False
        return not (self.no_subclass_pingpong and hop[0] == "subclass_of")

    def inner_ok(self, view: GraphView, node: str) -> bool:
        return view.degree(node) <= self.max_hub_degree


def parse_chain(chain: Sequence[str]) -> tuple[list[str], list[Hop]]:
    """``[e0, p1, e1, ...]`` → (nodes, hops) with ``^p`` turned into ``(p, False)``."""
    if len(chain) % 2 == 0:
        raise ValueError(f"a chain alternates entities and predicates, got {len(chain)} items")
    nodes = list(chain[0::2])
    hops = [(p[1:], False) if p.startswith("^") else (p, True) for p in chain[1::2]]
    return nodes, hops


def is_medically_valid(
    view: GraphView, chain: Sequence[str], rules: ChainRules | None = None
) -> tuple[bool, str]:
    """MedicallyValid(p) of §3.1.2: whether ``chain`` is a valid simple path of ``view``.

    Parameters
    ----------
    view:
        The graph.
    chain:
        ``[e0, p1, e1, ...]``; ``^p`` is an edge followed against its direction.
    rules:
        The rules; :class:`ChainRules` defaults when ``None``.

    Returns
    -------
    (bool, str)
        Whether it is valid, and the first reason it is not (``"ok"`` when it is).

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.MultiDiGraph()
    >>> g.add_edge("D", "P", key="has_phenotype")
    'has_phenotype'
    >>> is_medically_valid(GraphView.from_networkx(g), ["D", "has_phenotype", "P"])
    (True, 'ok')
    """
    rules = rules or ChainRules()
    try:
        nodes, hops = parse_chain(chain)
    except ValueError as err:
        return False, str(err)
    if len(set(nodes)) != len(nodes):
        return False, "revisits a node"
    for i, node in enumerate(nodes):
        if node not in view:
            return False, f"{node} is not in the graph"
        if not rules.type_ok(view, node, i):
            return False, f"{node} ({view.type(node)}) not allowed at position {i}"
        if 0 < i < len(nodes) - 1 and not rules.inner_ok(view, node):
            return False, f"inner node {node} is a hub (degree {view.degree(node)})"
    prev: Hop | None = None
    for i, hop in enumerate(hops):
        if hop[0] not in rules.predicates:
            return False, f"predicate {hop[0]} is not allowed"
        if not view.has_step(nodes[i], (nodes[i + 1], hop[0], hop[1])):
            arrow = hop[0] if hop[1] else "^" + hop[0]
            return False, f"no edge {nodes[i]} -{arrow}-> {nodes[i + 1]}"
        if not rules.pair_ok(prev, hop):
            return False, f"hop {i + 1} goes straight back along {hop[0]}"
        prev = hop
    return True, "ok"


def competing_ends(
    view: GraphView,
    chain: Sequence[str],
    rules: ChainRules | None = None,
    *,
    max_states: int = 20_000,
    limit: int | None = None,
) -> set[str]:
    """Every end reached by following the chain's predicates from its start.

    The walk takes, at each hop, every edge with the chain's predicate and direction that
    the rules allow (no revisits, no inner hubs, types per position), so the chain's own
    end is always among the results; the question it yields has a unique answer when the
    set is exactly ``{chain end}``.

    Parameters
    ----------
    max_states:
        Partial walks to explore before falling back to a node-set walk that ignores
        revisits (an over-approximation: never claims uniqueness that does not hold).
    limit:
        Stop once this many ends other than the chain's own are found. Uniqueness is still
        decided exactly; only the count of competitors is capped. Walks through phenotype
        hubs reach thousands of ends, and counting them all cost ~50 ms per sample.

    References
    ----------
    MedResearcher-R1 §3.1.2 (uniqueness of the answer of a sampled chain).
    """
    rules = rules or ChainRules()
    nodes, hops = parse_chain(chain)
    if not hops:
        return {nodes[0]}
    last = len(hops)
    ends: set[str] = set()
    states = 0
    stack: list[tuple[str, int, frozenset[str]]] = [(nodes[0], 0, frozenset({nodes[0]}))]
    while stack:
        node, depth, seen = stack.pop()
        states += 1
        if states > max_states:
            return _frontier_ends(view, nodes[0], hops, rules)
        if depth == last:
            ends.add(node)
            if limit is not None and len(ends - {nodes[-1]}) >= limit:
                return ends | {nodes[-1]}
            continue
        if depth > 0 and not rules.inner_ok(view, node):
            continue
        pred, forward = hops[depth]
        for other, p, f in view.neighbours(node):
            if (
                p == pred
                and f == forward
                and other not in seen
                and rules.type_ok(view, other, depth + 1)
            ):
                stack.append((other, depth + 1, seen | {other}))
    ends.add(nodes[-1])
    return ends


def _frontier_ends(view: GraphView, start: str, hops: list[Hop], rules: ChainRules) -> set[str]:
    frontier = {start}
    for depth, (pred, forward) in enumerate(hops):
        nxt: set[str] = set()
        for node in frontier:
            if depth > 0 and not rules.inner_ok(view, node):
                continue
            for other, p, f in view.neighbours(node):
                if (
                    p == pred
                    and f == forward
                    and other != start
                    and rules.type_ok(view, other, depth + 1)
                ):
                    nxt.add(other)
        frontier = nxt
    return frontier
