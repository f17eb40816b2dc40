"""Growing the graph from rare seeds: neighbour walks and discovery (paper §3.1.1).

From a seed entity the walk goes on step by step: with probability ``p`` it moves to a
uniformly drawn neighbour, e(i+1) ~ Uniform(N(e_i)); otherwise (and whenever the entity
has no neighbour) it *discovers*: the medical retriever finds documents about the
current entity, the extractor model reads them and proposes entities and 6-tuple
relations, which enter the graph only with an allowed predicate and an evidence span
found in a retrieved document, and only when they touch what the graph already held.

Every step goes to a JSONL log keyed ``<seed>:<i>``. The draws of step ``i`` come from an
RNG seeded with (config seed, walk seed, i), so a re-run replays the logged steps (the
entity after a step is its logged ``to``) and carries on exactly where it stopped.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from medresearcher.errors import ConfigError, InputError
from medresearcher.kg.extraction import (
    ALLOWED_PREDICATES,
    ExtractedEntity,
    ExtractedRelation,
    Extraction,
    build_messages,
    evidence_in,
    link_entity,
    new_entity,
)
from medresearcher.kg.store import GraphStore, normalise_name
from medresearcher.llm.errors import LLMCallError, StructuredOutputError
from medresearcher.schema import Document, Entity, Relation
from medresearcher.workspace.jsonl import JsonlWriter, read_jsonl

__all__ = [
    "NO_DISCOVERY",
    "ExpansionConfig",
    "ExpansionReport",
    "ExtractedEntity",
    "ExtractedRelation",
    "Extraction",
    "expand",
    "link_entity",
]

NO_DISCOVERY = "discovery needs an LLM endpoint (configure [llm.extractor])"

# Reasons a proposed relation is turned away (the keys of ExpansionReport.relations_rejected).
VAGUE = "vague predicate"
NOT_RETRIEVED = "doc not retrieved"
NO_EVIDENCE = "evidence not in document"
UNKNOWN_END = "unknown entity"
SELF_LOOP = "self loop"
DISCONNECTED = "touches nothing in the graph"


class Retriever(Protocol):
    def search(self, query: str, *, k: int = ...) -> list[Any]: ...


class Gateway(Protocol):
    async def structured(
        self, endpoint: str, messages: list[dict[str, Any]], schema: type[Extraction]
    ) -> Extraction: ...


@dataclass
class ExpansionConfig:
    """How the graph grows.

    ``max_steps`` is per seed; ``max_nodes`` stops the whole run once that many entities
    were added (counted over the log, so a resumed run keeps the budget).
    """

    walk_probability: float = 0.5
    max_steps: int = 20
    max_nodes: int | None = None
    seed: int = 0
    k: int = 5
    endpoint: str = "extractor"
    discover: bool = True
    max_doc_chars: int = 1500


@dataclass
class ExpansionReport:
    """What one call did (steps replayed from the log are counted in ``resumed`` only)."""

    steps: int = 0
    walks: int = 0
    discoveries: int = 0
    stuck: int = 0
    resumed: int = 0
    entities_added: int = 0
    relations_added: int = 0
    relations_rejected: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def step_rng(config_seed: int, walk_seed: str, index: int) -> random.Random:
    """The RNG of one step: independent of every other step, so replays need no history."""
    return random.Random(f"{config_seed}|{walk_seed}|{index}")


async def expand(
    store: GraphStore,
    seeds: list[str],
    *,
    retriever: Retriever | None,
    gateway: Gateway | None,
    config: ExpansionConfig,
    log_path: Path,
) -> ExpansionReport:
    """Walk from each seed in turn, ``config.max_steps`` steps each; see the module doc.

    Raises
    ------
    ConfigError
        ``config.discover`` without a gateway or a retriever.
    InputError
        A seed that is not in the graph (by id or xref).
    LLMCallError
        A model call that failed for good; the step is logged first.
    """
    if config.discover and gateway is None:
        raise ConfigError(f"graph expansion: {NO_DISCOVERY}, or run it walk-only")
    if config.discover and retriever is None:
        raise ConfigError("graph expansion: discovery needs a retrieval index")
    starts = []
    for seed in seeds:
        found = store.resolve(seed)
        if found is None:
            raise InputError(f"seed {seed!r} is not in the graph")
        starts.append((seed, found))
    discover = config.discover and gateway is not None and retriever is not None
    report = ExpansionReport()
    with JsonlWriter(log_path, key="step_id") as log:
        logged = {str(r["step_id"]): r for r in read_jsonl(log_path)}
        added: set[str] = {e for r in logged.values() for e in r.get("added_entities", [])}
        for seed, current in starts:
            for i in range(config.max_steps):
                step_id = f"{seed}:{i}"
                if step_id in logged:
                    record = logged[step_id]
                    report.resumed += 1
                    current = record["to"]
                    if record["action"] == "stuck":
                        break
                    continue
                if config.max_nodes is not None and len(added) >= config.max_nodes:
                    return report
                rng = step_rng(config.seed, seed, i)
                record = await _step(
                    store, current, rng, retriever, gateway, config, discover, report
                )
                fatal = record.pop("fatal", None)
                if fatal is not None:
                    # Logged under its own key, so that a re-run tries the step again.
                    n = sum(1 for key in log.ids if key.startswith(f"{step_id}#failed"))
                    step_id = f"{step_id}#failed{n + 1}"
                record = {"step_id": step_id, "seed": seed, "index": i, **record}
                log.write(record)
                report.steps += 1
                added.update(record["added_entities"])
                if fatal is not None:
                    raise fatal
                current = record["to"]
                if record["action"] == "stuck":
                    break
    return report


async def _step(
    store: GraphStore,
    current: str,
    rng: random.Random,
    retriever: Retriever | None,
    gateway: Gateway | None,
    config: ExpansionConfig,
    discover: bool,
    report: ExpansionReport,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "action": "walk",
        "from": current,
        "to": current,
        "retrieved": [],
        "added_entities": [],
        "added_relations": [],
        "rejected": [],
        "errors": [],
    }
    draw = rng.random()
    neighbours = sorted({other.id for _, other in store.neighbours(current)} - {current})
    if neighbours and (draw < config.walk_probability or not discover):
        record["to"] = rng.choice(neighbours)
        report.walks += 1
        return record
    if not discover:
        record["action"] = "stuck"
        record["reason"] = f"no neighbours; {NO_DISCOVERY}"
        report.stuck += 1
        return record
    assert retriever is not None and gateway is not None
    record["action"] = "discover"
    report.discoveries += 1
    entity = store.entity(current)
    assert entity is not None
    hits = retriever.search(f"{entity.name} {entity.type}", k=config.k)
    documents = {h.document.doc_id: h.document for h in hits}
    record["retrieved"] = list(documents)
    if not documents:
        record["reason"] = "no documents retrieved"
        return record
    messages = build_messages(entity, list(documents.values()), max_chars=config.max_doc_chars)
    try:
        extraction = await gateway.structured(config.endpoint, messages, Extraction)
    except StructuredOutputError as exc:
        error = f"extraction failed after a repair round: {exc}"
        record["errors"].append(error)
        record["reason"] = "skipped: " + error
        report.errors.append(f"{current}: {error}")
        return record
    except LLMCallError as exc:
        record["errors"].append(str(exc))
        record["reason"] = "run stopped: the model call failed"
        report.errors.append(f"{current}: {exc}")
        record["fatal"] = exc
        return record
    _apply(store, entity, extraction, documents, record, report)
    moved = sorted(
        {
            (s if o == current else o)
            for s, _, o in record["added_relations"] + record.get("confirmed_relations", [])
            if current in (s, o)
        }
    )
    if moved:
        record["to"] = rng.choice(moved)
    return record


def _apply(
    store: GraphStore,
    current: Entity,
    extraction: Extraction,
    documents: dict[str, Document],
    record: dict[str, Any],
    report: ExpansionReport,
) -> None:
    """Link the extracted entities, check each relation, write the accepted ones."""
    # Links are taken before anything is written: "pre-existing" means before this step.
    by_name: dict[str, tuple[str | None, ExtractedEntity]] = {}
    for extracted in extraction.entities:
        linked = link_entity(store, extracted, prefer={current.id})
        for name in (extracted.name, *extracted.aliases):
            by_name.setdefault(normalise_name(name), (linked, extracted))
    current_names = {normalise_name(n) for n in (current.name, *current.aliases, current.id)}

    def end(name: str) -> tuple[str | None, ExtractedEntity | None]:
        norm = normalise_name(name)
        if not norm:
            return None, None
        if norm in current_names:
            return current.id, None
        if norm in by_name:
            return by_name[norm]
        found = store.resolve(name.strip()) or link_entity(
            store, ExtractedEntity(name=name, type="?"), prefer={current.id}
        )
        return found, None

    accepted = []
    for rel in extraction.relations:
        reason = None
        subj, subj_new = end(rel.subject)
        obj, obj_new = end(rel.object)
        if rel.predicate not in ALLOWED_PREDICATES:
            reason = VAGUE
        elif rel.doc_id not in documents:
            reason = NOT_RETRIEVED
        elif not evidence_in(rel.evidence, documents[rel.doc_id]):
            reason = NO_EVIDENCE
        elif (subj is None and subj_new is None) or (obj is None and obj_new is None):
            reason = UNKNOWN_END
        elif subj is None and obj is None:
            reason = DISCONNECTED
        elif subj is not None and subj == obj:
            reason = SELF_LOOP
        if reason:
            report.relations_rejected[reason] += 1
            record["rejected"].append(
                {
                    "subject": rel.subject,
                    "predicate": rel.predicate,
                    "object": rel.object,
                    "doc_id": rel.doc_id,
                    "reason": reason,
                }
            )
            continue
        accepted.append((rel, subj, subj_new, obj, obj_new))

    confirmed = []
    for rel, subj, subj_new, obj, obj_new in accepted:
        if subj is None:
            subj = _create(store, subj_new, rel.doc_id, record, report)
        if obj is None:
            obj = _create(store, obj_new, rel.doc_id, record, report)
        relation = Relation(
            subj=subj,
            pred=rel.predicate,
            obj=obj,
            temporal=rel.temporal,
            spatial=rel.spatial,
            clinical=rel.clinical,
            source=rel.doc_id,
            evidence=" ".join(rel.evidence.split()),
            confidence=rel.confidence,
        )
        if store.add_relation(relation):
            record["added_relations"].append([subj, rel.predicate, obj])
            report.relations_added += 1
        else:
            confirmed.append([subj, rel.predicate, obj])
    if confirmed:
        record["confirmed_relations"] = confirmed


def _create(
    store: GraphStore,
    extracted: ExtractedEntity | None,
    doc_id: str,
    record: dict[str, Any],
    report: ExpansionReport,
) -> str:
    assert extracted is not None
    entity = new_entity(extracted, doc_id)
    existed = store.resolve(entity.id) is not None
    entity_id = store.add_entity(entity, merge_xrefs=True)
    if not existed and entity_id == entity.id and entity_id not in record["added_entities"]:
        record["added_entities"].append(entity_id)
        report.entities_added += 1
    return entity_id
