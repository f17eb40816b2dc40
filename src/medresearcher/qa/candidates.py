"""How many entities fit a question: the candidate walk behind the template writer's
uniqueness (paper §3.1.2: a question must have one answer).

A question's line is its chain with every entity replaced by clues. :func:`chain_candidates`
walks the graph from every entity that fits the first node's clues, hop by hop, keeping only
neighbours that fit the next node's clues and the hop's edge label (phenotype frequency,
gene association type); what is left at the end is every answer the line allows.
:func:`constrain` then adds constraints on the answer, most selective first, until one
entity is left. :func:`second_line` finds a second chain into the answer for ``intersect``
questions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from medresearcher.qa.kg_facts import KGFacts
from medresearcher.qa.obfuscation import NEIGHBOUR_PREDICATES, Clue, Description
from medresearcher.schema import Sample

__all__ = [
    "EXTRA_CONSTRAINTS",
    "HUB_DEGREE",
    "WALK_BUDGET",
    "Line",
    "chain_candidates",
    "constrain",
    "edge_clue",
    "second_line",
]

#: Edge visits a candidate walk may make before it stops following the chain at that hop
#: and keeps every entity that fits the hop's clues (a superset: never a false "unique").
WALK_BUDGET = 200_000
#: Answer constraints beyond the level's minimum, at most.
EXTRA_CONSTRAINTS = 4
#: A node with more relations than this is not used to start or join a second line.
HUB_DEGREE = 200
_LINE_TYPES = ("gene", "phenotype", "category", "disease", "drug", "pathogen", "anatomy")


@dataclass
class Line:
    """A chain to the answer: nodes, hops ``(pred, forward)``, each node's description (none
    for the answer) and each hop's edge clue ``(label key, label)``."""

    nodes: list[str]
    hops: list[tuple[str, bool]]
    descriptions: list[Description | None]
    edge_clues: list[tuple[str, str] | None]

    def chain(self) -> list[str]:
        out = [self.nodes[0]]
        for (pred, forward), node in zip(self.hops, self.nodes[1:], strict=True):
            out += [pred if forward else "^" + pred, node]
        return out


def edge_clue(facts: KGFacts, a: str, hop: tuple[str, bool], b: str) -> tuple[str, str] | None:
    for key in ("frequency", "association_type"):
        labels = facts.edge_labels(a, hop[0], b, hop[1], key)
        if labels:
            return key, sorted(labels)[0]
    return None


def chain_candidates(facts: KGFacts, line: Line) -> tuple[set[str], bool]:
    """Every entity the question's line can end at, and whether the count is exact.

    The walk starts from every entity that fits the first node's clues and, hop by hop,
    keeps the neighbours along the hop's predicate (and edge label) that fit that node's
    clues. Past :data:`WALK_BUDGET` edge visits in one hop it keeps every entity of the
    hop's type that fits its clues and has such an edge at all: more candidates, never fewer.
    """
    first = line.descriptions[0]
    assert first is not None
    frontier = set(first.members(facts))
    exact = True
    for index, (pred, forward) in enumerate(line.hops, start=1):
        wanted = facts.type(line.nodes[index])
        edge = line.edge_clues[index - 1]
        nxt: set[str] = set()
        visits = 0
        for v in sorted(frontier):
            for w in facts.neighbours(v, pred, forward):
                visits += 1
                if w in nxt or facts.types.get(w) != wanted:
                    continue
                if edge and edge[1] not in facts.edge_labels(v, pred, w, forward, edge[0]):
                    continue
                nxt.add(w)
            if visits > WALK_BUDGET:
                break
        if visits > WALK_BUDGET:
            exact = False
            nxt = {
                w
                for w in facts.pool(wanted)
                if any(
                    not edge or edge[1] in facts.edge_labels(v, pred, w, forward, edge[0])
                    for v in facts.neighbours(w, pred, not forward)
                )
            }
        description = line.descriptions[index]
        frontier = nxt & description.members(facts) if description else nxt
    return frontier, exact


def second_line(
    facts: KGFacts, sample: Sample, nodes: list[str], rng: random.Random
) -> list[str] | None:
    """A chain of one or two hops into the answer from off the main chain, preferring the
    sample's own side edges at the answer: ``[y2, p, y1, p, answer]`` or ``[y1, p, answer]``."""
    answer, banned = nodes[-1], set(nodes)
    side = {e[0] if e[2] == answer else e[2] for e in sample.edges if answer in (e[0], e[2])}

    def into(x: str, exclude: set[str]) -> list[tuple[str, str]]:
        found = []
        for pred, forward in facts.steps(x):
            if pred in NEIGHBOUR_PREDICATES:
                arrow = pred if not forward else "^" + pred  # read from the neighbour to x
                found += [
                    (o, arrow) for o in facts.neighbours(x, pred, forward) if o not in exclude
                ]
        return found

    def rank(item: tuple[str, str]) -> tuple[Any, ...]:
        other = item[0]
        kind = facts.type(other)
        order = _LINE_TYPES.index(kind) if kind in _LINE_TYPES else len(_LINE_TYPES)
        return (other not in side, order, facts.degree(other), rng.random())

    for y1, p1 in sorted(
        (i for i in into(answer, banned) if facts.degree(i[0]) <= HUB_DEGREE), key=rank
    )[:6]:
        outer = [
            (y2, p2)
            for y2, p2 in into(y1, banned | {y1})
            if facts.type(y2) == "disease" and facts.attrs.get(y2)
        ]
        if outer:
            y2, p2 = outer[rng.randrange(len(outer))]
            return [y2, p2, y1, p1, answer]
    candidates = sorted(into(answer, banned), key=rank)
    return [candidates[0][0], candidates[0][1], answer] if candidates else None


def constrain(
    candidates: set[str], pools: list[list[Clue]], minimum: int, rng: random.Random
) -> tuple[list[Clue], set[str]]:
    """Greedy, pool after pool: add the clue that leaves the fewest candidates until one is
    left (and at least ``minimum`` are used), or no clue of the pool narrows the set."""
    chosen: list[Clue] = []
    left = set(candidates)
    for clues in pools:
        passing = {id(c): candidates & c.members for c in clues}
        order = {id(c): rng.random() for c in clues}
        pool = list(clues)
        while pool and len(chosen) < minimum + EXTRA_CONSTRAINTS:
            if len(left) <= 1 and len(chosen) >= minimum:
                break
            best = min(pool, key=lambda c: (len(left & passing[id(c)]), order[id(c)]))
            narrowed = left & passing[id(best)]
            if len(narrowed) == len(left) and len(chosen) >= minimum:
                break
            chosen.append(best)
            pool.remove(best)
            left = narrowed
        if len(left) <= 1 and len(chosen) >= minimum:
            break
    return chosen, left
