"""Concept obfuscation: describe an entity by its own attributes and relations, never by name.

Paper §3.1.2 turns a chain into a question in which every entity is hidden behind what is
known about it ("a gene whose loss causes an X-linked lysosomal storage disorder"), so that
answering needs a lookup per hop. A :class:`Description` is a type noun plus clues; each
:class:`Clue` carries its text and the set of entities it is true of, so the writer can
count how many entities of the graph fit the question it built.

Obfuscation levels:

- 1: clues from the entity's own attributes or own relations (inheritance, onset, prevalence
  class, number of annotated phenotypes, Orphanet group, number of linked genes, ...);
- 2 and up: one clue more, through a neighbour off the chain that is itself described at
  the level below ("linked to a gene implicated in 3 disorders").

No clue may name any chain entity: every text is checked with a :class:`NameMatcher` built
from the names, aliases, symbols and ``same_as`` twins' names of the chain's entities.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from medresearcher.qa.kg_facts import KGFacts, NameMatcher
from medresearcher.qa.lang import Phrases

__all__ = [
    "NEIGHBOUR_PREDICATES",
    "Clue",
    "Description",
    "describe",
    "neighbour_clue",
    "own_clues",
    "safe_own_clues",
]

# Predicates a neighbour clue may go through: identities and negative facts say too little.
NEIGHBOUR_PREDICATES = frozenset(
    {"has_phenotype", "associated_gene", "subclass_of", "has_symptom", "treats", "palliates"}
    | {"located_in", "caused_by", "transmitted_by"}
)
# Clue kinds that a record of the entity states in words (document fields and text), so
# that a search engine can match them; counts and classes come from the graph alone.
SEARCHABLE_CLUES = frozenset({"group", "inheritance", "onset"})

# Neighbour types in order of preference: the ones with the richest own clues first.
_NEIGHBOUR_TYPES = ("gene", "disease", "category", "drug", "pathogen", "anatomy", "phenotype")
_UNKNOWN = {"", "none", "unknown", "no data available", "not yet documented"}
_YEAR_KEYS = ("year", "first_reported", "first_described", "approval_year")


# -- clues --------------------------------------------------------------------------------------


class Clue:
    """One thing said about a hidden entity: its text, the set of entities it fits
    (``members``, computed from the graph's indexes on first use) and a JSON-able ``spec``
    for provenance."""

    __slots__ = ("_make", "_members", "depth", "key", "kind", "spec", "text")

    def __init__(
        self,
        kind: str,
        text: str,
        members: Callable[[], frozenset[str]],
        spec: dict[str, Any],
        depth: int = 1,
        key: tuple[Any, ...] = (),
    ) -> None:
        self.kind, self.text, self.spec, self.depth = kind, text, spec, depth
        self.key = key or (kind, text)  # what the clue says, whoever it is said of
        self._make: Callable[[], frozenset[str]] | None = members
        self._members: frozenset[str] = frozenset()

    @property
    def members(self) -> frozenset[str]:
        """Every entity of the graph this clue is true of."""
        if self._make is not None:
            self._members, self._make = self._make(), None
        return self._members

    def test(self, candidate: str) -> bool:
        return candidate in self.members

    def __repr__(self) -> str:
        return f"Clue({self.kind!r}, {self.text!r})"


@dataclass
class Description:
    """A hidden entity: its type noun and the clues that stand for its name."""

    entity: str
    type: str
    clues: list[Clue]
    _members: frozenset[str] | None = field(default=None, repr=False)

    def text(self, ph: Phrases, kind: str = "a", *, nested: bool = False) -> str:
        return ph.described(self.type, kind, [c.text for c in self.clues], nested=nested)

    def members(self, facts: KGFacts) -> frozenset[str]:
        """Every entity of its type that fits all of its clues."""
        if self._members is None:
            sets = sorted((c.members for c in self.clues), key=len)
            smallest = sets[0] if sets else facts.pool(self.type)
            found = {x for x in smallest if facts.types.get(x) == self.type}
            for other in sets[1:]:
                found &= other
            self._members = frozenset(found)
        return self._members

    def specs(self) -> list[dict[str, Any]]:
        return [{**c.spec, "text": c.text} for c in self.clues]


def _values(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    return [str(v) for v in items if v is not None and str(v).strip().lower() not in _UNKNOWN]


def _inheritance(raw: Any) -> list[str]:
    """ "Autosomal recessive" and "autosomal recessive inheritance" are one value."""
    out = [v.lower().removesuffix(" inheritance").strip() for v in _values(raw)]
    return list(dict.fromkeys(out))


_READERS: dict[str, Callable[[Any], list[Any]]] = {
    "inheritance": _inheritance,
    "onset": _values,
}


def _attr_index(facts: KGFacts, key: str) -> dict[Any, frozenset[str]]:
    """Attribute value → entities with it (list attributes: one entry per value)."""
    memo_key = ("attr", key)
    if memo_key not in facts.memo:
        read = _READERS.get(key, lambda v: [v] if isinstance(v, (str, int, bool)) else [])
        index: dict[Any, set[str]] = {}
        for entity, attrs in facts.attrs.items():
            if key in attrs:
                for value in read(attrs[key]):
                    index.setdefault(value, set()).add(entity)
        facts.memo[memo_key] = {v: frozenset(ids) for v, ids in index.items()}
    return facts.memo[memo_key]


def _count_index(facts: KGFacts, type_: str, pred: str, forward: bool) -> dict[int, frozenset[str]]:
    """Number of ``pred`` relations → entities of ``type_`` with that many."""
    memo_key = ("count", type_, pred, forward)
    if memo_key not in facts.memo:
        index: dict[int, set[str]] = {}
        for entity in facts.pool(type_):
            index.setdefault(len(facts.neighbours(entity, pred, forward)), set()).add(entity)
        facts.memo[memo_key] = {n: frozenset(ids) for n, ids in index.items()}
    return facts.memo[memo_key]


def _any_of(facts: KGFacts, key: str, values: Iterable[Any]) -> Callable[[], frozenset[str]]:
    def members() -> frozenset[str]:
        index = _attr_index(facts, key)
        return frozenset().union(*(index.get(v, frozenset()) for v in values))

    return members


def _memoised(
    facts: KGFacts, key: tuple[Any, ...], make: Callable[[], frozenset[str]]
) -> Callable[[], frozenset[str]]:
    """``make``, computed once per graph for each thing a clue can say (``key``): the same
    clue ("implicated in 2 disorders") recurs across thousands of questions."""

    return lambda: facts.members(key, make)


def _count_key(type_: str, pred: str, forward: bool) -> str:
    return f"{type_}.{'' if forward else '^'}{pred}"


def own_clues(facts: KGFacts, node: str, ph: Phrases, *, skip: Iterable[str] = ()) -> list[Clue]:
    """Every level-1 clue about ``node``: its attributes, its Orphanet groups and the counts
    of its own relations. ``skip`` names clue kinds to leave out (the attribute or count a
    question asks for).

    A clue lists several values ("with onset in infancy or childhood") as any-of: an entity
    fits when it has one of them. That reading fits more entities than "all of", so the
    candidate counts built on it never understate.
    """
    skipped = set(skip)
    type_, attrs = facts.type(node), facts.attrs.get(node, {})
    clues: list[Clue] = []

    def add(kind: str, text: str, members: Callable[[], frozenset[str]], value: Any) -> None:
        if kind not in skipped:
            spec = {"entity": node, "clue": kind, "value": value}
            key = (type_, kind, json.dumps(value, sort_keys=True))
            clues.append(Clue(kind, text, _memoised(facts, key, members), spec, key=key))

    if inheritance := _inheritance(attrs.get("inheritance")):
        shown = ph.either([ph.value("inheritance", v) for v in inheritance])
        add(
            "inheritance",
            ph.text("clues", "inheritance", value=shown),
            _any_of(facts, "inheritance", inheritance),
            inheritance,
        )
    if onset := _values(attrs.get("onset")):
        shown = ph.either([ph.value("onset", v) for v in onset])
        add("onset", ph.text("clues", "onset", value=shown), _any_of(facts, "onset", onset), onset)
    for key in ("prevalence_class", "disorder_type"):
        value = attrs.get(key)
        if not isinstance(value, str) or value.lower() in _UNKNOWN | {"disease", "category"}:
            continue
        shown = ph.value(key, value) if key == "disorder_type" else value
        add(key, ph.text("clues", key, value=shown), _any_of(facts, key, [value]), value)
    if isinstance(attrs.get("n_phenotypes"), int) and attrs["n_phenotypes"] > 0:
        n = attrs["n_phenotypes"]
        text = ph.text("clues", "n_phenotypes", n=n)
        add("n_phenotypes", text, _any_of(facts, "n_phenotypes", [n]), n)
    if attrs.get("infectious") is True:
        add(
            "infectious", ph.text("clues", "infectious"), _any_of(facts, "infectious", [True]), True
        )
    for key in _YEAR_KEYS:
        if isinstance(attrs.get(key), int) and not isinstance(attrs[key], bool):
            text = ph.text("clues", "year", value=attrs[key])
            add("year", text, _any_of(facts, key, [attrs[key]]), attrs[key])
            break
    for group in facts.neighbours(node, "subclass_of"):
        if facts.type(group) == "category":
            add(
                f"group:{group}",
                ph.text("clues", "group", value=facts.names[group]),
                lambda g=group: frozenset(facts.neighbours(g, "subclass_of", False)),
                group,
            )
    for pred, forward in facts.steps(node):
        key = _count_key(type_, pred, forward)
        template = ph.get("clues", "count", key)
        n = len(facts.neighbours(node, pred, forward))
        if template is None or n == 0:
            continue
        text = ph.get("clues", "count_one", key) if n == 1 else None
        add(
            f"count:{'' if forward else '^'}{pred}",
            text or template.format(n=n),
            lambda p=pred, f=forward, n=n: _count_index(facts, type_, p, f).get(n, frozenset()),
            n,
        )
    return clues


def safe_own_clues(
    facts: KGFacts, node: str, ph: Phrases, *, leaks: NameMatcher, skip: Iterable[str] = ()
) -> list[Clue]:
    """:func:`own_clues` less those whose text names something in ``leaks``, and less the
    Orphanet groups whose label sits inside one of those names."""
    return [
        c
        for c in own_clues(facts, node, ph, skip=skip)
        if not leaks(c.text)
        and not (c.kind.startswith("group:") and leaks.contains_label(facts.names[c.spec["value"]]))
    ]


def _neighbours_of(
    facts: KGFacts, pred: str, forward: bool, description: Description
) -> Callable[[], frozenset[str]]:
    """Members of a neighbour clue: entities with a ``pred`` neighbour that fits
    ``description`` (found from the fitting side: the union of their neighbours)."""

    def members() -> frozenset[str]:
        fits = description.members(facts)
        return frozenset().union(*(facts.neighbours(m, pred, not forward) for m in fits))

    return members


def neighbour_clue(
    facts: KGFacts,
    node: str,
    ph: Phrases,
    *,
    depth: int,
    rng: random.Random,
    avoid: set[str],
    leaks: NameMatcher,
) -> Clue | None:
    """A clue through one neighbour of ``node`` off the chain, the neighbour described at
    ``depth`` (1: by one own clue): "linked to a gene implicated in 3 disorders"."""
    options: dict[str, list[tuple[str, bool, str]]] = {}
    for pred, forward in facts.steps(node):
        if pred not in NEIGHBOUR_PREDICATES:
            continue
        for other in facts.neighbours(node, pred, forward):
            if other not in avoid:
                options.setdefault(facts.type(other), []).append((pred, forward, other))
    for type_ in _NEIGHBOUR_TYPES:
        picks = options.get(type_, [])
        rng.shuffle(picks)
        for pred, forward, other in picks[:4]:
            inner = describe(
                facts, other, ph, level=depth, rng=rng, avoid=avoid | {node}, leaks=leaks
            )
            if not inner.clues:
                continue
            template = "clue_forward" if forward else "clue_reverse"
            templates = ph.get("predicates", pred) or ph.get("predicates", "default")
            text = templates[template].format(other=inner.text(ph, nested=True), pred=pred)
            if leaks(text):
                continue
            key = (
                "neighbour",
                pred,
                forward,
                inner.type,
                tuple(sorted(c.key for c in inner.clues)),
            )
            members = _memoised(facts, key, _neighbours_of(facts, pred, forward, inner))
            spec = {"entity": node, "clue": "neighbour", "via": ("" if forward else "^") + pred}
            spec |= {"neighbour": other, "of": inner.specs()}
            kind = f"neighbour:{pred}:{other}"
            return Clue(kind, text, members, spec, depth=depth + 1, key=key)
    return None


def describe(
    facts: KGFacts,
    node: str,
    ph: Phrases,
    *,
    level: int = 1,
    rng: random.Random,
    avoid: Iterable[str] = (),
    leaks: NameMatcher,
    n_own: int = 1,
    skip: Iterable[str] = (),
    searchable_first: bool = False,
) -> Description:
    """Describe ``node`` without naming it, at obfuscation ``level``.

    Parameters
    ----------
    level:
        1: ``n_own`` clues from its own attributes and relations; 2 and up: plus one clue
        through a neighbour off the chain (not in ``avoid``), described at ``level - 1``.
    rng:
        Picks among the most selective clues (seeded: the same inputs, the same text).
    leaks:
        Names no clue may contain; clues that would are dropped, as are Orphanet groups whose
        label sits inside one of the names.
    n_own:
        How many own clues (the chain's start gets two, so that it can be found).
    searchable_first:
        Prefer clues a reader can find in the entity's own record (its classification
        groups, inheritance, onset) over counts that only the graph knows ("with 25
        phenotypes annotated"): the start of a chain has to be found by searching.

    Returns
    -------
    Description
        Possibly without clues (an entity with nothing to say about it but its type).
    """
    candidates = safe_own_clues(facts, node, ph, leaks=leaks, skip=skip)
    ranked = sorted(
        candidates,
        key=lambda c: (
            searchable_first and c.kind.split(":")[0] not in SEARCHABLE_CLUES,
            len(c.members),
            c.kind,
        ),
    )
    chosen: list[Clue] = []
    while len(chosen) < n_own:
        # Among the three most selective clues left, prefer a kind not said yet:
        # "classified under X, with onset in infancy" tells more than two groups.
        said = {c.kind.split(":")[0] for c in chosen}
        left = [c for c in ranked if c not in chosen]
        fresh = [c for c in left if c.kind.split(":")[0] not in said] or left
        if not fresh:
            break
        window = fresh[:3]
        chosen.append(window[rng.randrange(len(window))])
    if level >= 2:
        extra = neighbour_clue(
            facts, node, ph, depth=level - 1, rng=rng, avoid=set(avoid) | {node}, leaks=leaks
        )
        if extra is not None:
            chosen.append(extra)
    return Description(node, facts.type(node), chosen)
