"""Subgraph sampling strategies of MedResearcher-R1 §3.1.2, pure and seeded.

P* = argmax_{p ∈ subgraph(rare entity)} Length(p) s.t. MedicallyValid(p). Every strategy
returns a :class:`~medresearcher.schema.Sample` whose ``nodes``/``edges`` form a connected
subgraph containing its ``chain``, whose ``hops`` is the chain's real length, and whose
``unique``/``competing_ends`` come from :func:`~medresearcher.sampling.validity.competing_ends`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import deque
from typing import Any

import networkx as nx

from medresearcher.sampling.graph import GraphView
from medresearcher.sampling.search import (
    Path,
    bfs_tree,
    longest_path,
    neighbourhood,
    tiebreak,
    tree_path,
)
from medresearcher.sampling.validity import ChainRules, competing_ends, is_medically_valid

__all__ = [
    "STRATEGIES",
    "augmented_chain",
    "community_core_path",
    "dual_core_bridge",
    "max_chain",
    "mixed",
    "sample_id",
]

DEFAULT_RULES = ChainRules()
DEFAULT_WEIGHTS = {
    "max_chain": 0.4,
    "augmented_chain": 0.3,
    "community_core_path": 0.15,
    "dual_core_bridge": 0.15,
}

#: Competing ends are counted up to this many: enough to tell a near-unique chain from a
#: hopeless one, without walking thousands of phenotype-hub branches per sample.
COMPETING_ENDS_LIMIT = 50


def sample_id(strategy: str, seed: int, params: dict[str, Any], anchor: str) -> str:
    """A stable id: ``S:`` + 16 hex digits of sha256 over the canonical JSON of the inputs."""
    blob = json.dumps(
        {"strategy": strategy, "seed": seed, "params": params, "anchor": anchor},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return "S:" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def _chain_strings(path: Path) -> list[str]:
    nodes, hops = path
    out = [nodes[0]]
    for (pred, forward), node in zip(hops, nodes[1:], strict=True):
        out += [pred if forward else "^" + pred, node]
    return out


def _triples(view: GraphView, path: Path) -> list[list[str]]:
    nodes, hops = path
    return [
        view.triple(a, (b, pred, forward))
        for a, b, (pred, forward) in zip(nodes, nodes[1:], hops, strict=False)
    ]


def _sample(
    view: GraphView,
    strategy: str,
    seed: int,
    params: dict[str, Any],
    anchor: str,
    path: Path,
    extra: list[list[str]],
    rules: ChainRules,
) -> Any:
    from medresearcher.schema import Sample

    chain = _chain_strings(path)
    main = _triples(view, path)
    chain_nodes = list(path[0])
    seen_nodes = set(chain_nodes)
    others = sorted({n for t in extra for n in (t[0], t[2])} - seen_nodes)
    seen_edges = {tuple(t) for t in main}
    edges = main + sorted({tuple(t) for t in extra} - seen_edges)  # type: ignore[arg-type]
    ends = competing_ends(view, chain, rules, limit=COMPETING_ENDS_LIMIT)
    params = {**params, "rules": rules.as_params()}
    return Sample(
        id=sample_id(strategy, seed, params, anchor),
        strategy=strategy,
        seed=seed,
        params=params,
        anchor=anchor,
        nodes=chain_nodes + others,
        edges=[list(t) for t in edges],
        chain=chain,
        hops=len(path[1]),
        unique=ends == {chain_nodes[-1]},
        competing_ends=len(ends - {chain_nodes[-1]}),
    )


def _best_path(
    view: GraphView,
    anchor: str,
    max_hops: int,
    rules: ChainRules,
    seed: int,
    budget: int,
    through: bool,
    allowed: set[str] | None = None,
) -> Path:
    nodes, hops = longest_path(
        view, anchor, max_hops, rules, seed=seed, budget=budget, allowed=allowed
    )
    if not through or len(hops) >= max_hops or not hops:
        return nodes, hops
    # Extend backwards from the anchor: the second half, reversed, leads into the anchor.
    first = hops[0]
    back_nodes, back_hops = longest_path(
        view,
        anchor,
        max_hops - len(hops),
        rules,
        seed=seed,
        budget=budget,
        allowed=allowed,
        banned=set(nodes[1:]),
        first_prev=(first[0], not first[1]),
        start_inner=True,
    )
    if not back_hops:
        return nodes, hops
    joined_nodes = back_nodes[::-1] + nodes[1:]
    joined_hops = [(p, not f) for p, f in back_hops[::-1]] + hops
    candidate = _chain_strings((joined_nodes, joined_hops))
    if is_medically_valid(view, candidate, rules)[0]:
        return joined_nodes, joined_hops
    return nodes, hops


def max_chain(
    view: GraphView,
    anchor: str,
    *,
    max_hops: int = 4,
    rules: ChainRules = DEFAULT_RULES,
    seed: int = 0,
    through: bool = False,
    budget: int = 50_000,
) -> Any:
    """The longest medically valid chain from a rare entity (P* of §3.1.2).

    Parameters
    ----------
    view:
        The graph.
    anchor:
        The rare entity the chain starts at (or, with ``through``, passes through).
    max_hops:
        The most edges in the chain; a chain of exactly ``max_hops`` is returned when one
        exists and the search finds it within ``budget``.
    rules:
        MedicallyValid(p).
    seed:
        Breaks ties between equally rare neighbours.
    through:
        Let the anchor sit inside the chain: the longest path from it, extended backwards.
    budget:
        Edge expansions of the depth-first search (deterministic, unlike a time limit).

    Returns
    -------
    Sample
        ``strategy="max_chain"``; ``nodes``/``edges`` are the chain's.

    Notes
    -----
    Depth-first with neighbours rarest first; among chains of the same length the one
    whose entities are rarest (sum of rarity scores) wins. The public release capped the
    depth at half the sample size and enumerated all simple paths; here ``hops`` is the
    chain's real length.

    References
    ----------
    MedResearcher-R1, §3.1.2, "longest-path sampling".
    """
    path = _best_path(view, anchor, max_hops, rules, seed, budget, through)
    params = {"max_hops": max_hops, "through": through, "budget": budget}
    return _sample(view, "max_chain", seed, params, anchor, path, [], rules)


def _side_edges(
    view: GraphView, path: Path, rules: ChainRules, rng: random.Random, per_node: int
) -> list[list[str]]:
    on = set(path[0])
    extra: list[list[str]] = []
    for node in path[0]:
        steps = [s for s in view.neighbours(node) if s[1] in rules.predicates and s[0] not in on]
        if not steps:
            continue
        k = rng.randint(1, per_node)
        for step in rng.sample(steps, min(k, len(steps))):
            extra.append(view.triple(node, step))
            on.add(step[0])
    return extra


def augmented_chain(
    view: GraphView,
    anchor: str,
    *,
    max_hops: int = 4,
    rules: ChainRules = DEFAULT_RULES,
    seed: int = 0,
    side: int = 2,
    through: bool = False,
    budget: int = 50_000,
) -> Any:
    """:func:`max_chain` plus 1 to ``side`` neighbours of each chain node (seeded), as
    constraints and distractors for the question; the chain stays the main path.

    References
    ----------
    MedResearcher-R1, §3.1.2.
    """
    path = _best_path(view, anchor, max_hops, rules, seed, budget, through)
    extra = _side_edges(view, path, rules, random.Random(seed), side)
    params = {"max_hops": max_hops, "side": side, "through": through, "budget": budget}
    return _sample(view, "augmented_chain", seed, params, anchor, path, extra, rules)


def _connect(
    view: GraphView, source: str, targets: set[str], within: set[str], rules: ChainRules
) -> list[list[str]]:
    """Edges of a shortest undirected path from ``source`` to any of ``targets`` inside
    ``within`` (allowed predicates only); empty when none."""
    parent: dict[str, tuple[str, list[str]] | None] = {source: None}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        if node in targets:
            edges = []
            while parent[node] is not None:
                prev, triple = parent[node]  # type: ignore[misc]
                edges.append(triple)
                node = prev
            return edges
        for step in view.neighbours(node):
            other = step[0]
            if step[1] in rules.predicates and other in within and other not in parent:
                parent[other] = (node, view.triple(node, step))
                queue.append(other)
    return []


def community_core_path(
    view: GraphView,
    anchor: str,
    *,
    max_hops: int = 4,
    rules: ChainRules = DEFAULT_RULES,
    seed: int = 0,
    radius: int = 2,
    max_nodes: int = 2_000,
    budget: int = 50_000,
) -> Any:
    """The longest valid path inside the anchor's community, joined to the community core.

    Louvain communities (``networkx.community.louvain_communities(seed=seed)``) are found
    on the anchor's ``radius``-hop neighbourhood (at most ``max_nodes`` nodes; hubs are
    not expanded), never on the whole graph. The core is the community's node of highest
    degree inside the neighbourhood; a shortest path joins it to the chain, so the
    returned subgraph is always connected (the public release's was not).

    References
    ----------
    MedResearcher-R1, §3.1.2; Blondel et al. 2008 (Louvain).
    """
    hood = neighbourhood(view, anchor, radius, rules, max_nodes=max_nodes)
    inside = set(hood)
    graph = nx.Graph()
    graph.add_nodes_from(hood)
    for node in hood:
        for other, pred, _ in view.neighbours(node):
            if pred in rules.predicates and other in inside:
                graph.add_edge(node, other)
    communities = nx.community.louvain_communities(graph, seed=seed) if len(hood) > 2 else [inside]
    community = next(set(c) for c in communities if anchor in c)
    if len(community) < 3:
        community = inside
    degree = graph.degree
    core = max(
        sorted(community - {anchor}) or [anchor],
        key=lambda n: (degree[n], view.rarity(n), -tiebreak(seed, n)),
    )
    path = longest_path(view, anchor, max_hops, rules, seed=seed, budget=budget, allowed=community)
    extra: list[list[str]] = []
    if core not in path[0]:
        extra = _connect(view, core, set(path[0]), community, rules) or _connect(
            view, core, set(path[0]), inside, rules
        )
    params = {"max_hops": max_hops, "radius": radius, "max_nodes": max_nodes, "budget": budget}
    params["core"] = core
    params["community_size"] = len(community)
    return _sample(view, "community_core_path", seed, params, anchor, path, extra, rules)


def dual_core_bridge(
    view: GraphView,
    anchor: str,
    *,
    max_hops: int = 4,
    rules: ChainRules = DEFAULT_RULES,
    seed: int = 0,
    candidates: int = 10,
    side: int = 2,
) -> Any:
    """A shortest valid bridge between the anchor and a second, non-adjacent core.

    The anchor (a rare entity) is the first core; the second is drawn (seeded) among the
    ``candidates`` best-scoring nodes of a breadth-first tree of valid paths from it —
    score: rarity plus log-degree, preferring nodes 2 to ``max_hops`` hops away, the
    farthest first. The bridge is the tree path; 1 to ``side`` neighbours of each core
    are added.

    References
    ----------
    MedResearcher-R1, §3.1.2.
    """
    import math

    tree = bfs_tree(view, anchor, max_hops, rules, seed=seed)
    adjacent = {s[0] for s in view.neighbours(anchor)}
    pool = [n for n, e in tree.items() if e is not None and e[2] >= 2 and n not in adjacent]
    rng = random.Random(seed)
    if pool:
        pool.sort(
            key=lambda n: (
                -tree[n][2],  # type: ignore[index]
                -(view.rarity(n) + math.log1p(view.degree(n))),
                tiebreak(seed, n),
                n,
            )
        )
        other = rng.choice(pool[:candidates])
    else:
        reachable = sorted(n for n in tree if n != anchor)
        other = rng.choice(reachable) if reachable else anchor
    path = tree_path(tree, other) if other != anchor else ([anchor], [])
    extra: list[list[str]] = []
    on = set(path[0])
    for core in dict.fromkeys([anchor, other]):  # a set would iterate in hash order
        steps = [s for s in view.neighbours(core) if s[1] in rules.predicates and s[0] not in on]
        for step in rng.sample(steps, min(rng.randint(1, side), len(steps))):
            extra.append(view.triple(core, step))
            on.add(step[0])
    params = {
        "max_hops": max_hops,
        "candidates": candidates,
        "side": side,
        "cores": [anchor, other],
    }
    return _sample(view, "dual_core_bridge", seed, params, anchor, path, extra, rules)


STRATEGIES = {
    "max_chain": max_chain,
    "augmented_chain": augmented_chain,
    "community_core_path": community_core_path,
    "dual_core_bridge": dual_core_bridge,
}


def mixed(
    view: GraphView,
    anchor: str,
    *,
    max_hops: int = 4,
    rules: ChainRules = DEFAULT_RULES,
    seed: int = 0,
    weights: dict[str, float] | None = None,
) -> Any:
    """Draw a strategy by ``weights`` with ``seed`` and run it; ``Sample.strategy`` is the
    drawn one and ``params["mixed"]`` is True.

    References
    ----------
    MedResearcher-R1, §3.1.2 (mixture of sampling strategies).
    """
    weights = weights or DEFAULT_WEIGHTS
    names = sorted(n for n, w in weights.items() if w > 0)
    unknown = set(names) - set(STRATEGIES)
    if unknown or not names:
        raise ValueError(f"unknown or empty strategies in weights: {sorted(unknown)}")
    drawn = random.Random(seed).choices(names, weights=[weights[n] for n in names])[0]
    sample = STRATEGIES[drawn](view, anchor, max_hops=max_hops, rules=rules, seed=seed)
    params = {**sample.params, "mixed": True, "weights": {n: weights[n] for n in names}}
    return sample.model_copy(
        update={"params": params, "id": sample_id(drawn, seed, params, anchor)}
    )
