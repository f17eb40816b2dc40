"""The offline template QA writer: a sampled chain becomes a multi-hop question (§3.1.2–3.1.3).

An honest model-free method: per-predicate phrase templates (``qa/lang/*.yaml``) narrate the
chain from its start to its end, every entity hidden behind clues from its own attributes and
relations (:mod:`medresearcher.qa.obfuscation`); the chain's end is the answer. Paradigms:

- ``identify``: name the end entity;
- ``attribute``: an attribute of the end (inheritance, onset, prevalence class, gene symbol);
- ``count``: a number about the end (annotated phenotypes, linked genes, member disorders);
- ``intersect``: a second chain from elsewhere meets the first at the end.

The demo graph's chains mostly run disease → phenotype → disease, so a bare chain rarely
has one end. The writer walks the graph with every clue of the question as a filter, then
adds distinguishing constraints from the answer's attributes and relations (greedily, the
most selective first) until one entity fits or the clues run out; ``provenance`` records
how many fit (``candidates``) and which constraints were used.

What each paradigm asks of the answer, and the answer's text and aliases, live in
:mod:`medresearcher.qa.template_answers`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Literal

from medresearcher.errors import InputError
from medresearcher.kg.store import GraphStore
from medresearcher.qa.candidates import Line, chain_candidates, constrain, edge_clue, second_line
from medresearcher.qa.cheatsheet import cheat_sheet, masked_chain, placeholder_map
from medresearcher.qa.kg_facts import KGFacts, NameMatcher, facts_for
from medresearcher.qa.lang import Phrases, phrases
from medresearcher.qa.obfuscation import (
    Clue,
    Description,
    describe,
    neighbour_clue,
    safe_own_clues,
)
from medresearcher.qa.specialties import specialties_of
from medresearcher.qa.template_answers import answer_of, supported_paradigms, value_of
from medresearcher.schema import Difficulty, QAParadigm, QARecord, Sample, utc_now

__all__ = ["PARADIGMS", "TEMPLATE_VERSION", "UnsupportedParadigm", "write_template_question"]

TEMPLATE_VERSION = "1"
PARADIGMS: tuple[str, ...] = ("identify", "attribute", "count", "intersect")
# Drawn when no paradigm is asked for, among those the sample supports.
PARADIGM_WEIGHTS = {"identify": 0.4, "attribute": 0.2, "count": 0.2, "intersect": 0.2}


class UnsupportedParadigm(InputError):
    """The paradigm asked for needs something the chain's end does not have (an attribute
    question about a phenotype, say): a batch skips such samples, a single call reports it."""


def _stable_int(*parts: Any) -> int:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def _parse(sample: Sample, facts: KGFacts) -> tuple[list[str], list[tuple[str, bool]]]:
    chain = sample.chain
    if len(chain) < 3 or len(chain) % 2 == 0:
        raise InputError(
            f"sample {sample.id}: chain: needs entity, predicate, entity, ... "
            f"(at least one hop), got {len(chain)} item(s)"
        )
    nodes = list(chain[0::2])
    hops = [(p[1:], False) if p.startswith("^") else (p, True) for p in chain[1::2]]
    for node in nodes:
        if node not in facts.types:
            raise InputError(f"sample {sample.id}: chain: entity {node!r} is not in the graph")
    for (pred, forward), a, b in zip(hops, nodes, nodes[1:], strict=False):
        if b not in facts.neighbours(a, pred, forward):
            arrow = pred if forward else "^" + pred
            raise InputError(f"sample {sample.id}: chain: no edge {a} -{arrow}-> {b} in the graph")
    return nodes, hops


def _line(
    facts: KGFacts,
    ph: Phrases,
    chain: Sequence[str],
    *,
    level: int,
    rng: random.Random,
    leaks: NameMatcher,
    avoid: set[str],
) -> Line:
    nodes = list(chain[0::2])
    hops = [(p[1:], False) if p.startswith("^") else (p, True) for p in chain[1::2]]
    descriptions: list[Description | None] = [
        describe(
            facts,
            node,
            ph,
            level=level,
            rng=rng,
            avoid=avoid,
            leaks=leaks,
            n_own=2 if i == 0 else 1,
            searchable_first=i == 0,
        )
        for i, node in enumerate(nodes[:-1])
    ]
    descriptions.append(None)
    edges = [edge_clue(facts, a, hop, b) for a, hop, b in zip(nodes, hops, nodes[1:], strict=False)]
    return Line(nodes, hops, descriptions, edges)


def _narrate(facts: KGFacts, ph: Phrases, line: Line, target: str) -> list[str]:
    """The line as sentences: where to start, then one sentence per hop."""
    first = line.descriptions[0]
    assert first is not None
    start_kind = "rare" if facts.attrs.get(first.entity, {}).get("rare") is True else "a"
    sentences = [ph.text("frames", "start", desc=first.text(ph, start_kind))]
    for index, (pred, forward) in enumerate(line.hops, start=1):
        prev = line.nodes[index - 1]
        description = line.descriptions[index]
        if description is None:
            following = target
        else:
            seen = {facts.type(n) for n in line.nodes[:index]}
            following = description.text(ph, "another" if description.type in seen else "a")
        templates = ph.get("predicates", pred) or ph.get("predicates", "default")
        direction = "forward" if forward else "reverse"
        fields = {"this": ph.noun(facts.type(prev), "this"), "next": following, "pred": pred}
        edge = line.edge_clues[index - 1]
        key = direction
        if edge and edge[0] == "frequency" and f"{direction}_freq" in templates:
            key, fields["freq"] = f"{direction}_freq", ph.value("frequency", edge[1])
        elif edge and edge[0] == "association_type" and f"{direction}_assoc" in templates:
            key, fields["assoc"] = f"{direction}_assoc", ph.value("association_type", edge[1])
        sentences.append(ph.sentence(templates[key].format_map(fields)))
    return sentences


def _answer_clues(
    facts: KGFacts,
    ph: Phrases,
    answer: str,
    *,
    level: int,
    rng: random.Random,
    leaks: NameMatcher,
    avoid: set[str],
    skip: set[str],
) -> tuple[list[Clue], list[Clue]]:
    """The constraints the question may put on the answer: its own clues, and up to three
    clues through neighbours off the chain (described at ``max(1, level - 1)``)."""
    own = safe_own_clues(facts, answer, ph, leaks=leaks, skip=skip)
    via: list[Clue] = []
    used: set[str] = set()
    for _ in range(3):
        extra = neighbour_clue(
            facts, answer, ph, depth=max(1, level - 1), rng=rng, avoid=avoid | used, leaks=leaks
        )
        if extra is None:
            break
        used.add(extra.spec["neighbour"])
        via.append(extra)
    return own, via


def _question(
    facts: KGFacts,
    ph: Phrases,
    lines: list[Line],
    paradigm: str,
    key: str | None,
    constraints: list[Clue],
) -> str:
    """The question: the line(s) as sentences, the answer's constraints, the frame."""
    answer_type = facts.type(lines[0].nodes[-1])
    noun = ph.noun(answer_type)
    sentences: list[str] = []
    if len(lines) > 1:
        sentences.append(ph.text("frames", "intersect", "intro", noun=noun))
        sentences.append(ph.text("frames", "intersect", "first"))
    sentences += _narrate(facts, ph, lines[0], ph.text("frames", "target", noun=noun))
    if len(lines) > 1:
        sentences.append(ph.text("frames", "intersect", "second"))
        sentences += _narrate(facts, ph, lines[1], ph.text("frames", "same_target", noun=noun))
    if constraints:
        described = ph.described(answer_type, "a", [c.text for c in constraints])
        sentences.append(ph.text("frames", "constraints", desc=described))
    if paradigm in ("attribute", "count"):
        sentences.append(ph.text("frames", paradigm, key or ""))
    else:
        sentences.append(ph.text("frames", "identify", noun=noun))
    return str(ph.get("compose", "space")).join(sentences)


def _now(now: datetime | str | None) -> str:
    if isinstance(now, str):
        return now
    moment = now or utc_now()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _kg_label(store: GraphStore, facts: KGFacts) -> str:
    return f"{store.path.name}:{len(facts.types)}e:{facts.n_relations}r"


def write_template_question(
    sample: Sample,
    store: GraphStore,
    *,
    paradigm: QAParadigm | None = None,
    level: int = 1,
    language: Literal["en", "zh"] = "en",
    seed: int = 0,
    now: datetime | str | None = None,
) -> QARecord:
    """Write one question from ``sample``'s chain, offline (paper §3.1.2–3.1.3).

    Parameters
    ----------
    sample:
        A sampled chain; its last entity is the answer.
    store:
        The graph the sample was drawn from (read once into memory, cached per store).
    paradigm:
        identify, attribute, count or intersect; ``None`` draws one (seeded) among those
        the sample supports.
    level:
        Obfuscation level and difficulty (1 = plainest): the depth of every description
        and the least number of constraints on the answer (one fewer for ``intersect``,
        whose second line is itself a constraint).
    language:
        ``en`` or ``zh`` (the language pack of ``qa/lang``).
    seed:
        Varies the clues picked; the same inputs give the same record.
    now:
        ``created_at`` (a datetime or an ISO string); default: the current time.

    Returns
    -------
    QARecord
        With ``answer_id`` = the chain's end, ``cheat_sheet`` / ``masked_chain`` /
        ``placeholders``, ``specialties``, ``difficulty.level = level``, and ``provenance``
        holding ``candidates`` (entities that fit every clue), ``constraints`` and
        ``answer_source``. ``checks`` is left empty (the checks stage fills it).

    Raises
    ------
    InputError
        A chain without a hop, an entity or edge not in ``store``, an unknown paradigm or
        language, a level below 1, or a paradigm the chain's end does not support.
    """
    if paradigm is not None and paradigm not in PARADIGMS:
        raise InputError(f"sample {sample.id}: paradigm: {paradigm!r} is not one of {PARADIGMS}")
    if language not in ("en", "zh"):
        raise InputError(f"sample {sample.id}: language: {language!r} is not en or zh")
    if not isinstance(level, int) or level < 1:
        raise InputError(f"sample {sample.id}: level: must be an integer >= 1, got {level!r}")
    facts = facts_for(store)
    nodes, _ = _parse(sample, facts)
    answer = nodes[-1]
    second = None
    if paradigm in (None, "intersect"):
        line_rng = random.Random(_stable_int(sample.id, seed, "line"))
        second = second_line(facts, sample, nodes, line_rng)
    supported = supported_paradigms(facts, answer, second)
    if paradigm is None:
        names = [p for p in PARADIGMS if p in supported]
        drawn = random.Random(_stable_int(sample.id, seed, "paradigm"))
        paradigm = drawn.choices(names, weights=[PARADIGM_WEIGHTS[p] for p in names])[0]  # type: ignore[assignment]
    elif paradigm not in supported:
        raise UnsupportedParadigm(
            f"sample {sample.id}: paradigm: {paradigm!r} is not supported by the chain's end "
            f"{answer} (supported: {', '.join(supported)})"
        )
    assert paradigm is not None
    rng = random.Random(_stable_int(sample.id, seed, paradigm, level, language))
    ph = phrases(language)
    key = rng.choice(supported[paradigm]) if paradigm in ("attribute", "count") else None
    second_chain = second if paradigm == "intersect" else None
    text_answer, aliases, source = answer_of(facts, answer, paradigm, key)

    chain_ids = list(dict.fromkeys([*nodes, *(second_chain or [])[0::2]]))
    forbidden = [n for node in chain_ids for n in (node, *facts.names_of(node))]
    if paradigm in ("attribute", "count"):
        forbidden += [text_answer, *aliases]
    leaks = NameMatcher(forbidden)
    avoid = set(chain_ids)
    main = _line(facts, ph, sample.chain, level=level, rng=rng, leaks=leaks, avoid=avoid)
    candidates, exact = chain_candidates(facts, main)
    lines = [main]
    if second_chain:
        other = _line(facts, ph, second_chain, level=level, rng=rng, leaks=leaks, avoid=avoid)
        other_candidates, other_exact = chain_candidates(facts, other)
        candidates &= other_candidates
        exact = exact and other_exact
        lines.append(other)
    candidates.add(answer)  # true of the answer by construction; kept if a label was odd

    skip = {key} if paradigm == "attribute" and key else set()
    if paradigm == "count" and key:
        skip = {f"count:{key}"} | ({"n_phenotypes"} if key == "has_phenotype" else set())
    own, via = _answer_clues(
        facts, ph, answer, level=level, rng=rng, leaks=leaks, avoid=avoid, skip=skip
    )
    # Level 1 says what the answer itself is first, and goes through neighbours only when
    # that is not enough; higher levels mix both from the start.
    pools = [own, via] if level == 1 else [own + via]
    minimum = max(0, level - 1) if paradigm == "intersect" else level
    constraints, left = constrain(candidates, pools, minimum, rng)

    question = _question(facts, ph, lines, paradigm, key, constraints)
    placeholders = placeholder_map(sample.chain, second_chain or [])
    by_entity = {v: k for k, v in placeholders.items()}
    node_clues = {
        d.entity: [c.text for c in d.clues]
        for line in lines
        for d in line.descriptions
        if d is not None and d.clues
    }
    steps = cheat_sheet(
        sample.chain,
        paradigm,
        language,
        types={n: facts.type(n) for n in chain_ids},
        clues=node_clues,
        constraints=[c.text for c in constraints],
        answer_key=key,
        second_chain=second_chain,
    )
    values = {value_of(facts, x, paradigm, key) for x in left} if key else None
    provenance: dict[str, Any] = {
        "writer": "template",
        "template_version": f"{TEMPLATE_VERSION}/{language}-{ph.version}",
        "kg": _kg_label(store, facts),
        "seed": seed,
        "candidates": len(left),
        "candidates_exact": exact,
        "constraints": [{**c.spec, "text": c.text} for c in constraints],
        "clues": {
            by_entity[d.entity]: d.specs()
            for line in lines
            for d in line.descriptions
            if d is not None
        },
        "answer_source": source,
    }
    if values is not None:
        provenance["distinct_answers"] = len(values)
    if second_chain:
        provenance["second_chain"] = list(second_chain)
        provenance["second_masked_chain"] = masked_chain(second_chain)
    if found := leaks.find(question):
        provenance["leak"] = found  # from a template word; the checks stage will flag it
    record_id = (
        "Q:"
        + hashlib.sha256(
            json.dumps([sample.id, "template", paradigm, level, language]).encode()
        ).hexdigest()[:16]
    )
    return QARecord(
        id=record_id,
        question=question,
        answer=text_answer,
        answer_id=answer,
        answer_aliases=aliases,
        cheat_sheet=steps,
        chain=list(sample.chain),
        masked_chain=masked_chain(sample.chain),
        placeholders=placeholders,
        sample_id=sample.id,
        strategy=sample.strategy,
        hops=sample.hops,
        paradigm=paradigm,
        specialties=specialties_of(chain_ids, store),
        difficulty=Difficulty(level=level),
        language=language,
        provenance=provenance,
        created_at=_now(now),
    )
