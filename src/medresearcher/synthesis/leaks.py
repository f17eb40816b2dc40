"""The scaffold-leak detector (paper §3.2, issue 9 §2): reasoning that gives MTG away.

A trajectory generated with Masked Trajectory Guidance is only worth training on if its
reasoning could have been written without the guidance. Two kinds of text betray it:

1. **Naming a masked entity too early**: an assistant turn (its content, its
   ``reasoning_content`` or, by default, its tool-call arguments) names a chain entity — by
   name, alias or id — before any tool observation contained it. Entities the question
   itself shows are not masked. An observation's echo of the call's own arguments (the query
   in a search header, the id of a read) shows nothing: a name the agent wrote itself is not
   evidence.
2. **Mentioning the guidance**: "the guidance", "hint", "cheat sheet", ``[MASK]``,
   ``[E1]``-style placeholders, and their Chinese equivalents (指引, 提示信息, 小抄, 占位符, …)
   in the agent's content or reasoning. Ordinary medical uses ("FDA guidance", "clinical
   guidance", "the results hint at …", "临床指引") are not counted.

Names are matched by :func:`medresearcher.qa.checks.leaked_names` (case-, accent- and
punctuation-insensitive whole words, CJK as substrings), the same matcher the QA checks use.
The path-guided policy's fallback thoughts ("the research guidance points to …") are flagged
too: that is exactly what a trained model must not learn to say.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from medresearcher.qa.checks import leaked_names
from medresearcher.schema import QARecord, Trajectory

__all__ = ["guidance_mentions", "masked_entities", "scaffold_leaks"]

# Words before "guidance" that make it a real-world document, not our scaffold.
_GUIDANCE_OWNERS = frozenset(
    [
        "fda",
        "ema",
        "nice",
        "who",
        "cdc",
        "regulatory",
        "clinical",
        "practice",
        "treatment",
        "management",
        "dietary",
        "official",
        "consensus",
        "government",
        "agency",
        "industry",
        "national",
        "international",
    ]
)
_EN_GUIDANCE = re.compile(r"\bguidance\b", re.IGNORECASE)
_EN_OTHER = re.compile(
    r"\bhints?\b(?!\s+(?:at|that|towards?)\b)"  # "the hint", not "the results hint at"
    r"|\bcheat[\s-]*sheets?\b"
    r"|\[\s*mask\s*\]"
    r"|\bmasked\s+(?:chain|path|entit(?:y|ies)|triples?)\b"
    r"|\[\s*E\d+\s*\]"
    r"|\bplaceholders?\b",
    re.IGNORECASE,
)
_ZH_GUIDANCE = re.compile(r"(?<!临床)(?<!诊疗)(?<!治疗)(?<!用药)(?<!监管)指引")
_ZH_OTHER = re.compile(
    r"指导信息|引导信息|提示信息|题目提示|给出的提示|根据提示|按照提示|小抄|作弊|备忘单|占位符|掩码|被遮蔽"
)


def guidance_mentions(text: str) -> list[str]:
    """The phrases of ``text`` that refer to the guidance itself, in order of appearance."""
    found: list[tuple[int, str]] = []
    for match in _EN_GUIDANCE.finditer(text):
        before = re.findall(r"[A-Za-z]+", text[max(0, match.start() - 40) : match.start()])
        after = text[match.end() : match.end() + 20].lower()
        if (before and before[-1].lower() in _GUIDANCE_OWNERS) or after.lstrip().startswith(
            ("document", "for industry")
        ):
            continue
        found.append((match.start(), match.group(0)))
    for pattern in (_EN_OTHER, _ZH_GUIDANCE, _ZH_OTHER):
        found += [(m.start(), m.group(0)) for m in pattern.finditer(text)]
    return [phrase for _, phrase in sorted(found)]


def masked_entities(
    record: QARecord, names_by_id: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Entity id → every form that names it (id, name, aliases; the answer's forms for its
    entity), for the chain's entities and the placeholders' (a second chain's) entities."""
    forms: dict[str, list[str]] = {}
    for entity_id in dict.fromkeys([*record.chain[0::2], *record.placeholders.values()]):
        forms[entity_id] = list(dict.fromkeys([entity_id, *names_by_id.get(entity_id, ())]))
    if record.answer_id and record.answer_id in forms:
        answer_forms = [record.answer, *record.answer_aliases]
        forms[record.answer_id] = list(dict.fromkeys([*forms[record.answer_id], *answer_forms]))
    return forms


def scaffold_leaks(
    trajectory: Trajectory,
    record: QARecord,
    names_by_id: Mapping[str, Sequence[str]],
    *,
    check_arguments: bool = True,
) -> list[str]:
    """Where ``trajectory``'s reasoning gives the MTG scaffold away; empty when it does not.

    Parameters
    ----------
    trajectory:
        The rollout to inspect (guided or not: an exploration rollout that names the answer
        before seeing it guessed it, which is worth knowing too).
    record:
        Its QA record: the chain (and placeholders) say which entities are masked.
    names_by_id:
        Entity id → name and aliases (:func:`medresearcher.qa.batch.chain_names`).
    check_arguments:
        Also look for masked entities in tool-call arguments (a call that reads a record by
        an id nobody has shown leaks as surely as a thought that names it).

    Returns
    -------
    list[str]
        One line per finding: the message index, the field, and what was named or said.
    """
    masked = masked_entities(record, names_by_id)
    labels = {entity_id: key for key, entity_id in record.placeholders.items()}
    question = "\n".join(dict.fromkeys([record.question, trajectory.question]))
    shown = {entity_id for entity_id, forms in masked.items() if _mentions(question, forms)}
    arguments: dict[str, list[str]] = {}
    leaks: list[str] = []
    for index, message in enumerate(trajectory.messages):
        role = message.get("role")
        if role == "tool":
            text = _without_echo(
                str(message.get("content") or ""), arguments.get(message.get("tool_call_id"), [])
            )
            shown |= {e for e, forms in masked.items() if e not in shown and _mentions(text, forms)}
            continue
        if role != "assistant":
            continue
        for field, text in _assistant_texts(message, arguments, check_arguments):
            for phrase in dict.fromkeys(guidance_mentions(text)) if field != "arguments" else ():
                leaks.append(f"message {index} ({field}): mentions the guidance ({phrase!r})")
            for entity_id, forms in masked.items():
                if entity_id in shown:
                    continue
                named = _mentions(text, forms)
                if named:
                    label = f"{labels[entity_id]} " if entity_id in labels else ""
                    leaks.append(
                        f"message {index} ({field}): names {label}{named[0]!r} ({entity_id}) "
                        "before any observation showed it"
                    )
    return leaks


def _mentions(text: str, forms: Sequence[str]) -> list[str]:
    """The forms ``text`` names: whole-word names, and ids verbatim (``ORPHA:558``)."""
    found = leaked_names(text, forms)
    found += [f for f in forms if ":" in f and f not in found and f in text]
    return found


def _assistant_texts(
    message: Mapping[str, Any], arguments: dict[str, list[str]], check_arguments: bool
) -> Iterable[tuple[str, str]]:
    """(field, text) of an assistant turn; records each call's argument strings by id."""
    for field in ("reasoning_content", "content"):
        value = message.get(field)
        if isinstance(value, str) and value.strip():
            yield field, value
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        raw = function.get("arguments")
        strings = _strings(_parsed(raw))
        arguments[str(call.get("id"))] = strings
        if check_arguments and strings:
            yield "arguments", "\n".join(strings)


def _parsed(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _without_echo(text: str, echoed: Sequence[str]) -> str:
    """``text`` less one occurrence of each argument string its call sent."""
    for item in echoed:
        if len(item) > 2:
            text = text.replace(item, " ", 1)
    return text
