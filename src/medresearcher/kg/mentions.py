"""Finding entity mentions in text: Aho–Corasick over names and aliases, whole words only.

Used by rare-entity mining (:mod:`medresearcher.kg.rarity`) to count how often each entity
is mentioned in a corpus. Gene symbols and upper-case acronyms match case-sensitively
("GLA" the gene, not "gla" inside a word; "ALL" the leukaemia, not "all"); everything else
ignores case, and any run of punctuation in a name matches any single separator, so
"Anderson-Fabry", "Anderson Fabry" and "Anderson–Fabry" are one name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from operator import itemgetter
from typing import Any, NamedTuple

import ahocorasick

from medresearcher.schema import Entity

__all__ = ["Match", "MentionMatcher"]

_NO_LETTER = re.compile(r"[\W\d_]*")  # a term without any letter: a number, a dash, ...
_WS = re.compile(r"\s")
# Every ASCII byte that is not a letter or a digit becomes a space; other bytes stay.
_ASCII_SEPARATORS = bytes(c if chr(c).isalnum() else 32 for c in range(128)) + bytes(
    range(128, 256)
)
_OTHER_SEPARATORS = re.compile(r"[^\w\x00-\x7f]")  # non-ASCII, not a letter or digit


class Match(NamedTuple):
    """One mention: ``text[start:end]`` names ``entity_id`` (``term`` as written there)."""

    start: int
    end: int
    entity_id: str
    term: str


def _is_acronym(term: str) -> bool:
    """Upper-case symbols such as ``MEN2A``, ``CANDLE``, ``HLA-B27``: no lower-case letter,
    at least two upper-case ones, no whitespace."""
    if _WS.search(term) or any(c.islower() for c in term):
        return False
    return sum(c.isupper() for c in term) >= 2


class MentionMatcher:
    """Find mentions of entity names and aliases in text, at word boundaries.

    Parameters
    ----------
    entries:
        :class:`~medresearcher.schema.Entity` objects (name and aliases), or
        ``(term, entity_id)`` pairs.
    min_length:
        Shorter terms are skipped (two-letter acronyms such as ``FD`` match too much).
    exact_acronyms:
        Match upper-case symbols (``CANDLE``, ``WED``) case-sensitively: the disease
        acronym must not count every "candle".

    Notes
    -----
    - A match is not preceded or followed by a letter or digit: ``GLA`` is not in
      ``GLAD``, ``angiokeratoma`` not in ``angiokeratomas`` (no stemming: inflections are
      other words; add them as aliases when they matter).
    - Any non-alphanumeric character of a name matches any one such character:
      "Anderson-Fabry" also matches "Anderson Fabry" and "Anderson–Fabry".
    - Case-insensitive, except a gene's symbol (the name of a ``gene`` entity) and, with
      ``exact_acronyms``, upper-case symbols: the gene ``CAT`` is not "cat".
    - Terms without a letter (numbers) or shorter than ``min_length`` are skipped.
    - Overlapping names of one entity are one mention (leftmost, then longest, wins):
      "Anderson-Fabry disease" is one mention of Fabry disease. Names of *different*
      entities each count ("childhood spinal muscular atrophy" also mentions "spinal
      muscular atrophy").

    How: text and names are normalised (separators become spaces, lengths kept) and
    padded with spaces, so the automata (one lower-cased, one exact) report whole words
    only, from a root with a single edge.

    Examples
    --------
    >>> m = MentionMatcher([("Fabry disease", "ORPHA:324"), ("GLA", "HGNC:4296")])
    >>> sorted(m.count("GLA variants cause Fabry Disease; GLAD and gla do not.").items())
    [('HGNC:4296', 1), ('ORPHA:324', 1)]
    """

    def __init__(
        self,
        entries: Iterable[Entity | tuple[str, str]],
        *,
        min_length: int = 3,
        exact_acronyms: bool = True,
    ) -> None:
        self.min_length = min_length
        self.exact_acronyms = exact_acronyms
        folded: dict[str, set[str]] = {}
        exact: dict[str, set[str]] = {}
        for entry in entries:
            if isinstance(entry, Entity):
                terms = [(entry.name, entry.type == "gene"), *((a, False) for a in entry.aliases)]
                entity_id = entry.id
            else:
                term, entity_id = entry
                terms = [(term, False)]
            for term, symbol in terms:
                key = _normalize(term).strip()
                if len(key) < min_length or _NO_LETTER.fullmatch(key):
                    continue
                if symbol or (exact_acronyms and _is_acronym(term)):
                    exact.setdefault(key, set()).add(entity_id)
                else:
                    folded.setdefault(_fold(key), set()).add(entity_id)
        self.terms = len(folded) + len(exact)
        names: Counter[str] = Counter()  # how many distinct names each entity has
        for ids in (*folded.values(), *exact.values()):
            names.update(ids)
        # Automaton values: the entity id when the name is the entity's only one and cannot
        # overlap itself (counted in C); else an index into (len + 1, entity ids, simple).
        self._table: list[tuple[int, tuple[str, ...], bool]] = []
        self._own_length: dict[str, int] = {}
        self._folded = self._automaton(folded, names)
        self._exact = self._automaton(exact, names)

    def __len__(self) -> int:
        return self.terms

    def _automaton(self, terms: Mapping[str, set[str]], names: Counter[str]) -> Any:
        if not terms:
            return None
        automaton = ahocorasick.Automaton()
        for term, ids in terms.items():
            words = term.split()
            simple = not any(words[:k] == words[-k:] for k in range(1, len(words)))
            (only,) = ids if len(ids) == 1 else (None,)
            if simple and only is not None and names[only] == 1:
                automaton.add_word(f" {term} ", only)
                self._own_length[only] = len(term) + 1
            else:
                automaton.add_word(f" {term} ", len(self._table))
                self._table.append((len(term) + 1, tuple(sorted(ids)), simple))
        automaton.make_automaton()
        return automaton

    def _hits(self, padded: str) -> list[tuple[int, Any]]:
        """Raw occurrences ``(last, value)`` in normalised, space-padded text: the padded
        name " term " ends at ``last``, so the name is ``text[last - L : last - 1]``."""
        hits: list[tuple[int, Any]] = []
        if self._folded is not None:
            hits.extend(self._folded.iter(_fold(padded)))
        if self._exact is not None:
            hits.extend(self._exact.iter(padded))
        return hits

    def _spans(self, hits: Iterable[tuple[int, Any]]) -> dict[str, list[tuple[int, int]]]:
        """``(start, end)`` spans in the text per entity id."""
        spans: dict[str, list[tuple[int, int]]] = {}
        table, own = self._table, self._own_length
        for last, value in hits:
            if type(value) is int:
                length, ids, _ = table[value]
            else:
                length, ids = own[value], (value,)
            for entity_id in ids:
                spans.setdefault(entity_id, []).append((last - length, last - 1))
        return spans

    def iter_matches(self, text: str) -> Iterator[Match]:
        """The mentions in ``text``, in order of position (see the class notes)."""
        spans = self._spans(self._hits(_padded(text)))
        found = [
            Match(start, end, entity_id, text[start:end])
            for entity_id, entity_spans in spans.items()
            for start, end in _leftmost_longest(entity_spans)
        ]
        found.sort()
        return iter(found)

    def count(self, text: str) -> Counter[str]:
        """Mentions per entity id in ``text`` (the same as counting :meth:`iter_matches`)."""
        return self._count(_padded(text))

    def _count(self, padded: str) -> Counter[str]:
        """The hot path: names with their own value are counted in C; spans are computed
        only for entities where two found names could overlap."""
        hits = self._hits(padded)
        counts: Counter[str] = Counter(map(itemgetter(1), hits))
        shared = [value for value in counts if type(value) is int]
        if not shared:
            return counts
        table = self._table
        overlapping: set[str] = set()
        for value in shared:
            n = counts.pop(value)
            _, ids, simple = table[value]
            for entity_id in ids:
                if entity_id in counts or (n > 1 and not simple):
                    overlapping.add(entity_id)
                counts[entity_id] += n
        if overlapping:
            values = {v for v in shared if not overlapping.isdisjoint(table[v][1])}
            spans = self._spans(hit for hit in hits if hit[1] in values)
            for entity_id in overlapping:
                counts[entity_id] = len(_leftmost_longest(spans[entity_id]))
        return counts


def _padded(text: str) -> str:
    """The text the automata scan: normalised, with a space on each side."""
    return f" {_normalize(text)} "


def _normalize(text: str) -> str:
    """``text`` with every character that is not a letter or a digit replaced by a space
    (same length: positions stay valid). ASCII goes through ``bytes.translate``."""
    out = text.encode("utf-8", "surrogatepass").translate(_ASCII_SEPARATORS)
    normal = out.decode("utf-8", "surrogatepass")
    return normal if text.isascii() else _OTHER_SEPARATORS.sub(" ", normal)


def _fold(text: str) -> str:
    """Lower-case ``text`` keeping its length, so that positions stay valid."""
    folded = text.lower()
    if len(folded) == len(text):
        return folded
    return "".join(c if len(low := c.lower()) != 1 else low for c in text)


def _leftmost_longest(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Non-overlapping spans: leftmost first, the longest at one start."""
    kept: list[tuple[int, int]] = []
    last_end = -1
    for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start >= last_end:
            kept.append((start, end))
            last_end = end
    return kept
