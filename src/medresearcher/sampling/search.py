"""Bounded searches the strategies share: longest valid path, valid BFS tree, neighbourhood."""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Collection

from medresearcher.sampling.graph import GraphView, Step
from medresearcher.sampling.validity import ChainRules, Hop

__all__ = ["Path", "bfs_tree", "longest_path", "neighbourhood", "tiebreak", "tree_path"]

# (nodes, hops): nodes[i] -hops[i]-> nodes[i + 1]
Path = tuple[list[str], list[Hop]]


def tiebreak(seed: int, node: str) -> int:
    """A seeded, order-independent pseudo-random key for ``node``."""
    return zlib.crc32(f"{seed}\x00{node}".encode())


def _ordered(
    view: GraphView,
    node: str,
    rules: ChainRules,
    seed: int,
    allowed: Collection[str] | None,
    banned: Collection[str],
) -> list[Step]:
    steps = [
        s
        for s in view.neighbours(node)
        if s[1] in rules.predicates and (allowed is None or s[0] in allowed) and s[0] not in banned
    ]
    steps.sort(key=lambda s: (-view.rarity(s[0]), tiebreak(seed, s[0]), s[0], s[1], s[2]))
    return steps


def longest_path(
    view: GraphView,
    start: str,
    max_hops: int,
    rules: ChainRules,
    *,
    seed: int = 0,
    budget: int = 50_000,
    allowed: Collection[str] | None = None,
    banned: Collection[str] = frozenset(),
    first_prev: Hop | None = None,
    start_inner: bool = False,
    tie_budget: int = 2_000,
) -> Path:
    """The longest valid simple path from ``start`` with at most ``max_hops`` edges.

    Depth-first, neighbours rarest first then in a seeded order; stops after ``budget``
    edge expansions, or ``tie_budget`` expansions after a path of ``max_hops`` is found
    (spent looking for an equally long one through rarer entities: the tie-break is the
    sum of the rarity scores of the path's nodes). Within the budget the search is
    exhaustive, so the result is optimal whenever fewer than ``budget`` expansions suffice.

    ``allowed`` restricts the nodes a path may visit; ``banned`` excludes some;
    ``first_prev`` is the hop that leads into ``start`` (for joining two halves);
    ``start_inner`` applies the hub cap to ``start`` as well.
    """
    if start not in view or max_hops <= 0 or (start_inner and not rules.inner_ok(view, start)):
        return [start], []
    cache: dict[str, list[Step]] = {}
    path, hops, on = [start], [], {start}
    best_nodes, best_hops, best_score = [start], [], 0.0
    score, expansions, stop_at = 0.0, 0, -1
    top = 2.0  # the highest rarity score, for the tie-break bound
    stack: list[list[object]] = [[start, first_prev, 0]]
    while stack:
        frame = stack[-1]
        node, prev, i = frame[0], frame[1], frame[2]
        depth = len(stack) - 1
        assert isinstance(node, str) and isinstance(i, int)
        expandable = depth < max_hops and (depth == 0 or rules.inner_ok(view, node))
        if expandable and len(best_hops) == max_hops:
            expandable = score + (max_hops - depth) * top > best_score
        pushed = False
        if expandable:
            cands = cache.get(node)
            if cands is None:
                cands = cache[node] = _ordered(view, node, rules, seed, allowed, banned)
            while i < len(cands):
                other, pred, forward = cands[i]
                i += 1
                hop = (pred, forward)
                if (
                    other in on
                    or not rules.pair_ok(prev, hop)  # type: ignore[arg-type]
                    or not rules.type_ok(view, other, depth + 1)
                ):
                    continue
                frame[2] = i
                expansions += 1
                path.append(other)
                hops.append(hop)
                on.add(other)
                score += view.rarity(other)
                if (len(hops), score) > (len(best_hops), best_score):
                    best_nodes, best_hops, best_score = list(path), list(hops), score
                    if len(hops) == max_hops and stop_at < 0:
                        stop_at = expansions + tie_budget
                stack.append([other, hop, 0])
                pushed = True
                break
        if not pushed:
            stack.pop()
            if stack:
                on.discard(path.pop())
                hops.pop()
                score -= view.rarity(node)
        if expansions >= budget or 0 <= stop_at <= expansions:
            break
    return best_nodes, best_hops


def bfs_tree(
    view: GraphView,
    start: str,
    max_depth: int,
    rules: ChainRules,
    *,
    seed: int = 0,
    max_nodes: int = 5_000,
) -> dict[str, tuple[str, Hop, int] | None]:
    """A breadth-first tree of valid paths from ``start``: node → (parent, hop, depth).

    Every tree path obeys the rules (whitelist, hub cap on inner nodes, types, the
    ping-pong and inverse rules against the hop into the parent), so it is a shortest
    valid path for most nodes and a valid chain for all.
    """
    tree: dict[str, tuple[str, Hop, int] | None] = {start: None}
    queue = deque([(start, None, 0)])
    while queue and len(tree) < max_nodes:
        node, prev, depth = queue.popleft()
        if depth >= max_depth or (depth > 0 and not rules.inner_ok(view, node)):
            continue
        for other, pred, forward in _ordered(view, node, rules, seed, None, ()):
            hop = (pred, forward)
            if other in tree or not rules.pair_ok(prev, hop):
                continue
            if not rules.type_ok(view, other, depth + 1):
                continue
            tree[other] = (node, hop, depth + 1)
            queue.append((other, hop, depth + 1))
            if len(tree) >= max_nodes:
                break
    return tree


def tree_path(tree: dict[str, tuple[str, Hop, int] | None], end: str) -> Path:
    """The path from the root of ``tree`` to ``end``."""
    nodes, hops = [end], []
    entry = tree[end]
    while entry is not None:
        parent, hop, _ = entry
        nodes.append(parent)
        hops.append(hop)
        entry = tree[parent]
    return nodes[::-1], hops[::-1]


def neighbourhood(
    view: GraphView,
    start: str,
    radius: int,
    rules: ChainRules,
    *,
    max_nodes: int = 2_000,
) -> list[str]:
    """Nodes within ``radius`` allowed hops of ``start`` (BFS order, at most ``max_nodes``);
    hubs are included but not expanded."""
    seen = {start}
    order = [start]
    queue = deque([(start, 0)])
    while queue and len(order) < max_nodes:
        node, depth = queue.popleft()
        if depth >= radius or (depth > 0 and not rules.inner_ok(view, node)):
            continue
        for other, pred, _ in view.neighbours(node):
            if pred in rules.predicates and other not in seen:
                seen.add(other)
                order.append(other)
                queue.append((other, depth + 1))
                if len(order) >= max_nodes:
                    break
    return order
