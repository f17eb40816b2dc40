"""What the LLM question writer must answer with, and the checks its answer must pass.

The model's :class:`WrittenQuestion` is validated against the graph before it becomes a record
(paper §3.1.2; issue 7 §2): the answer must be one the writer was offered (by the rule grader,
so case and aliases do not matter), the entity mapping must map the given placeholders to their
own ids, the cheat sheet must name entities by placeholder only, and the question must name
neither the answer nor another chain entity. The problems found are the text of the repair
round in :func:`medresearcher.qa.llm_writer.write_llm_question`; kept apart from the writer so
the rules a written question obeys can be read, and tested, on their own.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from medresearcher.grading.rules import grade_by_rules
from medresearcher.qa.checks import leaked_names
from medresearcher.schema import Entity

__all__ = ["WrittenQuestion", "validate_written"]

_PLACEHOLDER = re.compile(r"^\[?\s*([A-Za-z]\d+)\s*\]?$")
_PLACEHOLDER_IN_TEXT = re.compile(r"\[([A-Za-z]\d+)\]")


class WrittenQuestion(BaseModel):
    """What the model must answer with (the structured output of the writer prompt)."""

    question: str = Field(min_length=10, description="The question, naming no chain entity.")
    answer: str = Field(min_length=1, description="The answer, copied exactly as given.")
    cheat_sheet: list[str] = Field(
        min_length=1, description="Ordered research steps naming entities by placeholder only."
    )
    entity_mapping: dict[str, str] = Field(
        description="Placeholder used (E1, E2, ...) → the entity id given for it."
    )


def validate_written(
    written: WrittenQuestion,
    *,
    targets: list[dict[str, Any]],
    end: Entity,
    entities: dict[str, Entity],
    placeholders: dict[str, str],
    paradigm: str,
) -> tuple[list[str], dict[str, Any] | None]:
    """The problems of ``written`` (empty when valid) and the target its answer matched."""
    problems: list[str] = []
    aliases = end.aliases if paradigm in ("identify", "intersect") else []
    target = next(
        (
            t
            for t in targets
            if grade_by_rules(
                written.answer, t["value"], aliases if t["label"] == "name" else ()
            ).correct
        ),
        None,
    )
    if target is None:
        offered = "; ".join(repr(t["value"]) for t in targets)
        problems.append(f"the answer {written.answer!r} is none of the given answers ({offered})")
    by_placeholder = {p: i for i, p in placeholders.items()}
    for key, entity_id in written.entity_mapping.items():
        match = _PLACEHOLDER.match(key)
        label = match.group(1).upper() if match else None
        if label is None:
            problems.append(f"entity_mapping key {key!r} is not a placeholder like [E1]")
        elif entity_id not in entities:
            problems.append(f"entity_mapping maps [{label}] to {entity_id!r}, not a chain entity")
        elif by_placeholder.get(label) != entity_id:
            problems.append(
                f"entity_mapping maps [{label}] to {entity_id!r}, but [{label}] is "
                f"{by_placeholder.get(label)!r}"
            )
    answer_names = [target["value"] if target else written.answer, *aliases]
    all_names = [n for e in entities.values() for n in (e.id, e.name, *e.aliases)]
    for number, step in enumerate(written.cheat_sheet, start=1):
        if leaked := leaked_names(step, [*all_names, *answer_names]):
            problems.append(f"cheat sheet step {number} names {', '.join(map(repr, leaked))}")
        for label in _PLACEHOLDER_IN_TEXT.findall(step):
            if label.upper() not in by_placeholder:
                problems.append(f"cheat sheet step {number} uses unknown placeholder [{label}]")
    if leaked := leaked_names(written.question, answer_names):
        problems.append(f"the question gives the answer away: {', '.join(map(repr, leaked))}")
    answer_id = end.id if paradigm in ("identify", "intersect") else None
    others = [n for e in entities.values() if e.id != answer_id for n in (e.id, e.name, *e.aliases)]
    if leaked := leaked_names(written.question, others):
        problems.append(f"the question names chain entities: {', '.join(map(repr, leaked))}")
    return problems, target
