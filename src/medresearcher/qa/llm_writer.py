"""The LLM question writer (issue 7 §2; paper §3.1.2): a model turns a chain into a question.

The public release wrote questions in one unchecked model call, and its obfuscation and
"question paradigm" settings were never used. Here the model gets the chain with each entity's
name, type, key attributes and the relations between them (from the graph store), the
paradigm, the obfuscation depth and whether to use quantitative clues, and answers with a
structured :class:`WrittenQuestion`. What it writes is then validated against the graph:

- the answer is the chain end's name or an alias (identify, intersect), or one of the end's
  attribute values or counts offered to it (attribute, count), by the rule grader;
- the entity mapping only maps the placeholders it was given to their own ids;
- the cheat sheet names entities by placeholders only;
- the question names neither the answer nor any other chain entity.

An invalid answer gets one repair round with the problems spelled out; a second failure is a
:class:`QARejection` that keeps the reason and the raw output, never a silent drop. The output
model and its validation live in :mod:`medresearcher.qa.writer_validation` (``WrittenQuestion``
is re-exported here).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from medresearcher.errors import InputError
from medresearcher.llm.errors import StructuredOutputError
from medresearcher.prompts import load_prompts
from medresearcher.qa.writer_validation import WrittenQuestion, validate_written
from medresearcher.schema import MASK, Difficulty, Entity, QAParadigm, QARecord, Sample, utc_now

if TYPE_CHECKING:
    from medresearcher.kg.store import GraphStore
    from medresearcher.llm import LLMGateway

__all__ = ["QARejection", "WrittenQuestion", "qa_record_id", "write_llm_question"]

PROMPT = "qa_writer"
_PARADIGMS: tuple[str, ...] = get_args(QAParadigm)
_MAX_ALIASES = 6
_MAX_TARGETS = 8
_MAX_TEXT = 300
#: Bookkeeping attributes of the graph, not facts worth a clue or a question.
_INTERNAL_ATTRS = frozenset({"do_subsets", "rare", "infectious", "name"})


class QARejection(BaseModel):
    """A sample the LLM writer could not turn into a valid question, and why."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The id the record would have had.")
    sample_id: str
    writer: str = Field(description="llm:<model>")
    endpoint: str
    paradigm: str
    level: int
    language: str
    reason: str
    problems: list[str] = Field(default_factory=list)
    raw_output: str | None = Field(default=None, description="The model's last answer.")
    created_at: str


def qa_record_id(sample_id: str, writer: str, paradigm: str, level: int, language: str) -> str:
    """``Q:`` + 16 hex digits of sha256 over sample id, writer, paradigm, level and language."""
    blob = json.dumps([sample_id, writer, paradigm, level, language], separators=(",", ":"))
    return "Q:" + hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- what the model is shown -----------------------------------------------------------------


def _short(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value if isinstance(v, (str, int, float))]
        text = "; ".join(items)
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        return None
    return text if 0 < len(text) <= 200 else None


def _card(entity: Entity, placeholder: str) -> dict[str, Any]:
    attributes = {
        k: s
        for k, v in sorted(entity.attrs.items())
        if k not in _INTERNAL_ATTRS and (s := _short(v)) is not None
    }
    description = (entity.description or "")[:_MAX_TEXT] or None
    return {
        "placeholder": placeholder,
        "id": entity.id,
        "type": entity.type,
        "name": entity.name,
        "aliases": entity.aliases[:_MAX_ALIASES],
        "attributes": attributes,
        "description": description,
    }


def _hops(sample: Sample, placeholders: dict[str, str], store: GraphStore) -> list[dict[str, str]]:
    """Each hop as a statement in the stored direction, with its relation's context."""
    hops = []
    nodes, preds = sample.chain[0::2], sample.chain[1::2]
    for a, pred, b in zip(nodes, preds, nodes[1:], strict=False):
        forward = not pred.startswith("^")
        name = pred.lstrip("^")
        subj, obj = (a, b) if forward else (b, a)
        context: dict[str, Any] = {}
        for relation, other in store.neighbours(subj, predicates=[name], direction="out"):
            if other.id == obj:
                context = {**relation.temporal, **relation.spatial, **relation.clinical}
                break
        hops.append(
            {
                "statement": f"[{placeholders[subj]}] {name} [{placeholders[obj]}]",
                "context": "; ".join(f"{k}: {v}" for k, v in sorted(context.items()) if _short(v)),
            }
        )
    return hops


def _targets(paradigm: str, end: Entity, store: GraphStore) -> list[dict[str, Any]]:
    """The answers the model may choose from, each with where it comes from."""
    if paradigm in ("identify", "intersect"):
        return [{"label": "name", "value": end.name, "source": {"entity": end.id}}]
    if paradigm == "attribute":
        return [
            {"label": key, "value": text, "source": {"entity": end.id, "attribute": key}}
            for key, value in sorted(end.attrs.items())
            if key not in _INTERNAL_ATTRS and (text := _short(value)) is not None
        ][:_MAX_TARGETS]
    counts: Counter[tuple[str, str, str]] = Counter()
    for relation, other in store.neighbours(end.id):
        direction = "out" if relation.subj == end.id else "in"
        counts[(relation.pred, direction, other.type)] += 1
    targets = [
        {
            "label": f"number of {kind} entities linked by {pred} ({direction})",
            "value": str(n),
            "source": {"entity": end.id, "count_of": pred, "direction": direction, "type": kind},
        }
        for (pred, direction, kind), n in sorted(counts.items())
    ]
    targets += [
        {"label": key, "value": str(value), "source": {"entity": end.id, "attribute": key}}
        for key, value in sorted(end.attrs.items())
        if isinstance(value, (int, float))
        and not isinstance(value, bool)
        and key not in _INTERNAL_ATTRS
    ]
    return targets[:_MAX_TARGETS]


def _extra_facts(end: Entity, chain_ids: set[str], store: GraphStore) -> list[str]:
    facts = []
    for relation, other in store.neighbours(end.id):
        if other.id in chain_ids:
            continue
        subj, obj = (end.name, other.name) if relation.subj == end.id else (other.name, end.name)
        facts.append(f"{subj} {relation.pred} {obj} ({other.type})")
    return facts[:5]


# -- the writer ------------------------------------------------------------------------------


def _timestamp(now: datetime | str | None) -> str:
    if isinstance(now, str):
        return now
    moment = now or utc_now()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _check_inputs(sample: Sample, paradigm: str, language: str, level: int) -> None:
    chain = sample.chain
    if not chain or len(chain) % 2 == 0 or len(chain) < 3:
        raise InputError(
            f"sample {sample.id}: field 'chain' must alternate entity ids and predicates with "
            f"at least one hop, got {len(chain)} item(s)"
        )
    if paradigm not in _PARADIGMS:
        raise InputError(f"unknown question paradigm {paradigm!r}; known: {', '.join(_PARADIGMS)}")
    if language not in ("en", "zh"):
        raise InputError(f"unknown question language {language!r}; known: en, zh")
    if level < 1:
        raise InputError(f"obfuscation level must be at least 1, got {level}")


async def write_llm_question(
    gateway: LLMGateway,
    endpoint: str,
    sample: Sample,
    store: GraphStore,
    *,
    language: Literal["en", "zh"] = "en",
    level: int = 1,
    quantitative: bool = True,
    paradigm: str = "identify",
    now: datetime | str | None = None,
) -> QARecord | QARejection:
    """Write one question for ``sample`` with the model behind ``endpoint``.

    Parameters
    ----------
    gateway, endpoint:
        The LLM gateway and the name of the writer endpoint (``[llm.writer]``).
    sample:
        A sampled chain (paper §3.1.2); its end is the answer.
    store:
        The graph store the chain's entities, attributes and relations are read from.
    language:
        ``en`` or ``zh``: the language of the question and the cheat sheet.
    level:
        Obfuscation depth (1 = one clue per entity; higher levels are more indirect and add
        constraints); it becomes ``difficulty.level``.
    quantitative:
        Ask for at least one quantitative clue (prevalence class, onset, counts, years).
    paradigm:
        ``identify`` (the chain end), ``attribute`` (one of its attributes), ``count`` (a count
        of its relations or a numeric attribute) or ``intersect`` (two lines of evidence).
    now:
        The creation time (default: now, UTC).

    Returns
    -------
    QARecord | QARejection
        The record (checks not yet run), or the rejection with its reason and raw output.

    Raises
    ------
    InputError
        A sample without a chain, an unknown paradigm or language, an entity missing from the
        store; nothing is written.
    LLMCallError
        The endpoint failed for good (retried by the gateway); the batch decides what to do.
    """
    _check_inputs(sample, paradigm, language, level)
    chain_ids = list(dict.fromkeys(sample.chain[0::2]))
    entities: dict[str, Entity] = {}
    for entity_id in chain_ids:
        entity = store.entity(entity_id)
        if entity is None:
            raise InputError(f"sample {sample.id}: chain entity {entity_id!r} is not in the store")
        entities[entity_id] = entity
    placeholders = {entity_id: f"E{n}" for n, entity_id in enumerate(chain_ids, start=1)}
    end = entities[sample.chain[-1]]
    model = gateway.endpoint(endpoint).settings.model
    writer = f"llm:{model}"
    record_id = qa_record_id(sample.id, writer, paradigm, level, language)
    prompts = load_prompts(PROMPT)
    created_at = _timestamp(now)

    def reject(reason: str, problems: Sequence[str] = (), raw: str | None = None) -> QARejection:
        return QARejection(
            id=record_id,
            sample_id=sample.id,
            writer=writer,
            endpoint=endpoint,
            paradigm=paradigm,
            level=level,
            language=language,
            reason=reason,
            problems=list(problems),
            raw_output=raw,
            created_at=created_at,
        )

    targets = _targets(paradigm, end, store)
    if not targets:
        return reject(f"the chain end {end.id} has nothing to ask for a {paradigm} question")
    variables = {
        "entities": [_card(entities[i], placeholders[i]) for i in chain_ids],
        "hops": _hops(sample, placeholders, store),
        "paradigm": paradigm,
        "targets": targets,
        "answer_placeholder": placeholders[end.id],
        "extra_facts": _extra_facts(end, set(chain_ids), store) if paradigm == "intersect" else [],
        "level": level,
        "quantitative": quantitative,
    }
    messages = [
        {"role": "system", "content": prompts.render("system", language)},
        {"role": "user", "content": prompts.render("user", language, **variables)},
    ]
    checks = {
        "targets": targets,
        "end": end,
        "entities": entities,
        "placeholders": placeholders,
        "paradigm": paradigm,
    }
    try:
        written = await gateway.structured(endpoint, messages, WrittenQuestion)
    except StructuredOutputError as exc:
        return reject(f"malformed output: {exc}", raw=exc.raw)
    problems, target = validate_written(written, **checks)
    repaired = False
    if problems:
        repair = [
            *messages,
            {"role": "assistant", "content": written.model_dump_json()},
            {"role": "user", "content": prompts.render("repair", language, problems=problems)},
        ]
        try:
            written = await gateway.structured(endpoint, repair, WrittenQuestion)
        except StructuredOutputError as exc:
            return reject(f"malformed repair: {exc}", problems, raw=exc.raw)
        problems, target = validate_written(written, **checks)
        if problems:
            return reject("; ".join(problems), problems, raw=written.model_dump_json())
        repaired = True
    assert target is not None
    identify = paradigm in ("identify", "intersect")
    provenance: dict[str, Any] = {
        "writer": writer,
        "prompt_version": prompts.version,
        "endpoint": endpoint,
        "obfuscation_level": level,
        "quantitative": quantitative,
        "model_answer": written.answer,
        "repaired": repaired,
    }
    if not identify:
        provenance["answer_source"] = target["source"]
    return QARecord(
        id=record_id,
        question=written.question.strip(),
        answer=target["value"],
        answer_id=end.id if identify else None,
        answer_aliases=list(end.aliases) if identify else [],
        cheat_sheet=[step.strip() for step in written.cheat_sheet if step.strip()],
        chain=list(sample.chain),
        masked_chain=[[MASK, pred, MASK] for pred in sample.chain[1::2]],
        placeholders={p: i for i, p in placeholders.items()},
        sample_id=sample.id,
        strategy=sample.strategy,
        hops=sample.hops,
        paradigm=paradigm,  # type: ignore[arg-type]
        difficulty=Difficulty(level=level),
        language=language,
        provenance=provenance,
        created_at=created_at,
    )
