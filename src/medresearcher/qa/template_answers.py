"""What a template question asks of its answer, and the answer itself (paper §3.1.2).

The chain's end is the answer entity; a paradigm decides what is asked about it: its name
(``identify``), one attribute (inheritance, onset, prevalence class, disorder type, gene
symbol), or a count (annotated phenotypes, linked genes, member disorders). This module says
which paradigms an end entity supports and reads the answer text, aliases and source from the
graph; :mod:`medresearcher.qa.template_writer` assembles the question around it.
"""

from __future__ import annotations

from typing import Any

from medresearcher.qa.kg_facts import KGFacts
from medresearcher.qa.lang import phrases

__all__ = ["answer_of", "count_value", "supported_paradigms", "value_of"]

_ATTRIBUTES = ("inheritance", "onset", "prevalence_class", "disorder_type")
_COUNTS = {
    "disease": ("has_phenotype", "associated_gene", "has_symptom"),
    "gene": ("^associated_gene",),
    "phenotype": ("^has_phenotype",),
    "category": ("^subclass_of",),
    "drug": ("treats",),
}
# Attribute values that do not make an answer (placeholders, or too generic to ask for).
_NOT_ANSWERS = {"none", "unknown", "no data available", "disease", "category"}


def supported_paradigms(facts: KGFacts, answer: str, second: list[str] | None) -> dict[str, Any]:
    """Paradigm → what it asks of the end entity (attribute name, counted relation, …)."""
    type_, attrs = facts.type(answer), facts.attrs.get(answer, {})
    out: dict[str, Any] = {"identify": None}
    attributes = []
    if type_ == "gene" and attrs.get("symbol"):
        attributes.append("symbol")
    for key in _ATTRIBUTES:
        value = attrs.get(key)
        values = value if isinstance(value, list) else [value]
        values = [v for v in values if isinstance(v, str) and v.lower() not in _NOT_ANSWERS]
        if len(values) == 1:
            attributes.append(key)
    if attributes:
        out["attribute"] = attributes
    counts = [k for k in _COUNTS.get(type_, ()) if count_value(facts, answer, k)]
    if counts:
        out["count"] = counts
    if second:
        out["intersect"] = second
    return out


def count_value(facts: KGFacts, node: str, key: str) -> int:
    """The count ``key`` names for ``node``: neighbours over a relation (``^`` = incoming),
    or the annotated phenotype count the source gives, when it gives one."""
    if key == "has_phenotype" and isinstance(facts.attrs[node].get("n_phenotypes"), int):
        return int(facts.attrs[node]["n_phenotypes"])
    return len(facts.neighbours(node, key.lstrip("^"), not key.startswith("^")))


def answer_of(
    facts: KGFacts, answer: str, paradigm: str, key: str | None
) -> tuple[str, list[str], dict[str, Any]]:
    """The answer text, its aliases and where it comes from."""
    source: dict[str, Any] = {"entity": answer}
    if paradigm == "attribute" and key:
        raw = facts.attrs[answer][key]
        raw = next(v for v in (raw if isinstance(raw, list) else [raw]) if isinstance(v, str))
        value = raw
        if key == "inheritance":
            value = raw.removesuffix(" inheritance")
            value = value[:1].upper() + value[1:]
        variants = [raw, phrases("zh").value(key, raw), phrases("zh").value(key, value.lower())]
        if key == "inheritance":
            variants.append(f"{value.lower()} inheritance")
        aliases = [v for v in dict.fromkeys(variants) if v.casefold() != value.casefold()]
        return value, aliases, source | {"attribute": key}
    if paradigm == "count" and key:
        source |= {"count_of": key}
        if key == "has_phenotype" and "n_phenotypes" in facts.attrs[answer]:
            source["value_from"] = "attrs.n_phenotypes"
        return str(count_value(facts, answer, key)), [], source
    names = facts.names_of(answer)
    name = facts.names[answer]
    aliases = [n for n in names if n.casefold() != name.casefold()]
    return name, list(dict.fromkeys(aliases)), source | {"field": "name"}


def value_of(facts: KGFacts, entity: str, paradigm: str, key: str) -> str | None:
    """The attribute or count a candidate would answer with (None: it has none)."""
    if paradigm == "attribute" and key not in facts.attrs.get(entity, {}):
        return None
    try:
        return answer_of(facts, entity, paradigm, key)[0]
    except StopIteration:  # an attribute without a string value
        return None
