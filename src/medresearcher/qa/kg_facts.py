"""The knowledge graph as the template QA writer reads it: in memory, read once per store.

The writer asks, for every question, which entities fit each clue and which neighbours an
entity has along a predicate — thousands of lookups. :class:`KGFacts` reads a
:class:`~medresearcher.kg.store.GraphStore` with three queries into dictionaries (under a
second for the demo graph) and is cached per store. :class:`NameMatcher` tells whether a
text names an entity, the way the QA leakage checks read names.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from medresearcher.kg.store import GraphStore

__all__ = ["KGFacts", "NameMatcher", "facts_for"]

#: Clue member sets kept per graph (least recently used dropped first).
MEMBER_CACHE = 4096

_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


class KGFacts:
    """What the writer needs of a :class:`GraphStore`, in memory: types, names, attributes,
    both directions of every relation and the frequency / association type on its edge.

    Read with three queries (under a second for the demo graph) and cached per store by
    :func:`facts_for`; every question after the first reads only dictionaries.
    """

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self.types: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self.attrs: dict[str, dict[str, Any]] = {}
        by_type: dict[str, list[str]] = {}
        for id_, type_, name, attrs in store.db.execute(
            "SELECT id, type, name, attrs FROM entities ORDER BY id"
        ):
            self.types[id_], self.names[id_], self.attrs[id_] = type_, name, json.loads(attrs)
            by_type.setdefault(type_, []).append(id_)
        self._pools = by_type
        adj: dict[tuple[str, str, bool], set[str]] = {}
        self.edges: dict[tuple[str, str, str], dict[str, set[str]]] = {}
        self.n_relations = 0
        for subj, pred, obj, freq, assoc in store.db.execute(
            "SELECT subj, pred, obj, json_extract(clinical, '$.frequency'), "
            "json_extract(clinical, '$.association_type') FROM relations"
        ):
            self.n_relations += 1
            adj.setdefault((subj, pred, True), set()).add(obj)
            adj.setdefault((obj, pred, False), set()).add(subj)
            for key, value in (("frequency", freq), ("association_type", assoc)):
                if isinstance(value, str):
                    self.edges.setdefault((subj, pred, obj), {}).setdefault(key, set()).add(value)
        self._adj = {key: tuple(sorted(values)) for key, values in adj.items()}
        self._steps: dict[str, set[tuple[str, bool]]] = {}
        for node, pred, forward in self._adj:
            self._steps.setdefault(node, set()).add((pred, forward))
        self._aliases: dict[str, list[str]] = {}
        self._degree: dict[str, int] = {}
        self.memo: dict[Any, Any] = {}  # one index per attribute and per counted relation
        self._members: OrderedDict[tuple[Any, ...], frozenset[str]] = OrderedDict()

    def members(self, key: tuple[Any, ...], make: Callable[[], frozenset[str]]) -> frozenset[str]:
        """``make()``, remembered under ``key`` for the :data:`MEMBER_CACHE` most recently
        used keys: what one clue says ("implicated in 2 disorders") recurs across questions."""
        found = self._members.get(key)
        if found is None:
            found = self._members[key] = make()
            if len(self._members) > MEMBER_CACHE:
                self._members.popitem(last=False)
        else:
            self._members.move_to_end(key)
        return found

    def type(self, node: str) -> str:
        return self.types.get(node, "entity")

    def neighbours(self, node: str, pred: str, forward: bool = True) -> tuple[str, ...]:
        return self._adj.get((node, pred, forward), ())

    def degree(self, node: str) -> int:
        """Relations touching ``node`` (both directions)."""
        if node not in self._degree:
            self._degree[node] = sum(
                len(self._adj[(node, p, f)]) for p, f in self._steps.get(node, ())
            )
        return self._degree[node]

    def steps(self, node: str) -> list[tuple[str, bool]]:
        """``(predicate, forward)`` of every relation touching ``node``, sorted."""
        return sorted(self._steps.get(node, ()))

    def edge_labels(self, a: str, pred: str, b: str, forward: bool, key: str) -> set[str]:
        """Labels (``frequency`` or ``association_type``) on the edge walked a → b."""
        stored = (a, pred, b) if forward else (b, pred, a)
        return self.edges.get(stored, {}).get(key, set())

    def pool(self, type_: str) -> list[str]:
        """Every entity of a type, sorted."""
        return self._pools.get(type_, [])

    def aliases(self, node: str) -> list[str]:
        if node not in self._aliases:
            self._aliases[node] = [
                a
                for (a,) in self.store.db.execute(
                    "SELECT alias FROM aliases WHERE entity_id = ? ORDER BY alias", (node,)
                )
            ]
        return self._aliases[node]

    def names_of(self, node: str, *, twins: bool = True) -> list[str]:
        """Name, aliases, gene symbol and full name, and (with ``twins``) the same of its
        ``same_as`` twins: every string that names the entity."""
        out = [self.names.get(node, node), *self.aliases(node)]
        attrs = self.attrs.get(node, {})
        out += [str(attrs[k]) for k in ("symbol", "full_name") if attrs.get(k)]
        if twins:
            for other in (
                *self.neighbours(node, "same_as"),
                *self.neighbours(node, "same_as", False),
            ):
                out += self.names_of(other, twins=False)
        return list(dict.fromkeys(n for n in out if n))


_FACTS: weakref.WeakKeyDictionary[GraphStore, tuple[int, KGFacts]] = weakref.WeakKeyDictionary()


def facts_for(store: GraphStore) -> KGFacts:
    """The :class:`KGFacts` of ``store``, read once and reread after the store is written."""
    changes = store.db.total_changes
    cached = _FACTS.get(store)
    if cached is None or cached[0] != changes:
        cached = (changes, KGFacts(store))
        _FACTS[store] = cached
    return cached[1]


_CJK_SPAN = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_SPACE_NEAR_CJK = re.compile(f"(?<=[{_CJK_SPAN}])\\s+|\\s+(?=[{_CJK_SPAN}])")
_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b")


@functools.lru_cache(maxsize=1 << 16)
def _words(text: str) -> str:
    """Case-, accent- and punctuation-folded text, as the QA checks compare names
    (``medresearcher.qa.checks.leaked_names``): NFKC, casefold, Latin accents dropped,
    possessive 's dropped, punctuation and symbols as spaces, no spaces around CJK."""
    text = unicodedata.normalize("NFKC", text).casefold()
    kept: list[str] = []
    for char in unicodedata.normalize("NFD", text):
        if unicodedata.category(char) == "Mn" and kept and kept[-1].isascii():
            continue
        kept.append(char)
    text = _POSSESSIVE.sub("", unicodedata.normalize("NFC", "".join(kept)))
    text = "".join(
        " " if unicodedata.category(c)[0] in "PSZC" and c not in "%$" else c for c in text
    )
    return _SPACE_NEAR_CJK.sub("", " ".join(text.split()))


class NameMatcher:
    """Whether a text mentions any of ``names``, read the way the leakage checks read it:
    whole words, insensitive to case, accents and punctuation; names under 3 characters
    ignored; CJK names as plain substrings (from 2 characters)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.latin: list[str] = []
        self.cjk: list[str] = []
        for name in dict.fromkeys(names):
            needle = _words(name)
            if _CJK.search(needle):
                if len(needle) >= 2:
                    self.cjk.append(needle)
            elif len(needle.replace(" ", "")) >= 3:
                self.latin.append(needle)

    def find(self, text: str) -> str | None:
        """The first (folded) name found in ``text``, or ``None``."""
        folded = _words(text)
        spaced = " " + " ".join(_CJK.sub(lambda m: f" {m.group(0)} ", folded).split()) + " "
        found = next((n for n in self.latin if f" {n} " in spaced), None)
        if found is None and self.cjk:
            compact = folded.replace(" ", "")
            found = next((n for n in self.cjk if n in compact), None)
        return found

    def __call__(self, text: str) -> bool:
        return self.find(text) is not None

    def contains_label(self, label: str) -> bool:
        """Whether a group label sits inside one of the names ("Ehlers-Danlos syndrome" in
        "Ehlers-Danlos syndrome, classic type"): naming it would all but name the entity."""
        norm = _words(label)
        return bool(norm) and any(f" {norm} " in f" {n} " for n in self.latin)
