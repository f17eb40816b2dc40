"""Masked Trajectory Guidance (paper §3.2): the scaffold that shows the path, not the answers.

MTG gives the generating agent the QA record's reasoning chain as ``([MASK], r_i, [MASK])``
triples plus the cheat sheet, whose steps name entities only by placeholders (``[E1]``, …).
The agent learns *which relations to follow and which tools to use* without being handed any
entity, so the trajectory it writes must still establish every entity from tool results.

The text goes to :func:`medresearcher.agent.run_agent` as ``guidance=``: the loop appends it
to the system prompt the policy sees and keeps it out of ``Trajectory.messages`` (the training
prompt); the text itself is kept in ``stats["generation"]["guidance"]``. A leak detector
(:mod:`medresearcher.synthesis.leaks`) then flags trajectories whose reasoning gives the
scaffold away.

Unlike the public release, which pasted the placeholder path in as "search guidance" that
then leaked into the kept reasoning, the scaffold here is checked before use: a record whose
masked chain or cheat sheet shows an entity raises :class:`~medresearcher.errors.InputError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medresearcher.errors import InputError
from medresearcher.prompts import load_prompts
from medresearcher.qa.cheatsheet import masked_chain
from medresearcher.qa.checks import leaked_names
from medresearcher.schema import MASK, QARecord

__all__ = ["MTG_PROMPT", "mtg_prompt_version", "mtg_scaffold"]

#: The prompt file of the scaffold (``prompts/mtg.yaml``).
MTG_PROMPT = "mtg"


def mtg_prompt_version() -> str:
    """The ``version:`` of ``prompts/mtg.yaml``, recorded with each guided trajectory."""
    return load_prompts(MTG_PROMPT).version


def mtg_scaffold(
    record: QARecord,
    language: str | None = None,
    *,
    names_by_id: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The MTG guidance text for ``record`` (paper §3.2).

    Parameters
    ----------
    record:
        A QA record with ``masked_chain`` (computed from ``chain`` when empty) and, usually,
        a ``cheat_sheet`` of placeholder steps.
    language:
        ``en`` or ``zh`` (default: the record's language).
    names_by_id:
        Entity id → name and aliases (as :func:`medresearcher.qa.batch.chain_names` gives
        them); when given, the scaffold is also checked for every chain entity's names.

    Returns
    -------
    str
        Text for ``run_agent(..., guidance=...)``: the masked triples, the placeholder plan
        and the instruction never to mention either.

    Raises
    ------
    InputError
        The record has no chain to guide with, a triple is not masked, or the scaffold would
        show a chain entity (its id, a name given in ``names_by_id``, or the answer) that the
        question itself does not already show.
    """
    language = language or record.language
    triples = record.masked_chain or (masked_chain(record.chain) if record.chain else [])
    if not triples:
        raise InputError(f"QA record {record.id}: no masked chain or chain to guide with")
    for number, triple in enumerate(triples, start=1):
        if len(triple) != 3 or triple[0] != MASK or triple[2] != MASK:
            raise InputError(
                f"QA record {record.id}: masked_chain[{number - 1}] is {triple!r}, not "
                f"({MASK}, relation, {MASK})"
            )
    text = load_prompts(MTG_PROMPT).render(
        "scaffold",
        language,
        hops=len(triples),
        triples=[
            {"relation": triple[1], "reverse": triple[1].startswith("^")} for triple in triples
        ],
        steps=[step.strip() for step in record.cheat_sheet if step.strip()],
    )
    shown = _shown_entities(text, record, names_by_id or {})
    if shown:
        raise InputError(
            f"QA record {record.id}: its MTG scaffold would show {', '.join(shown)} "
            "(fix the cheat sheet: placeholders only)"
        )
    return text


def _shown_entities(
    text: str, record: QARecord, names_by_id: Mapping[str, Sequence[str]]
) -> list[str]:
    """Chain and placeholder entities (and the answer) that ``text`` names but the question
    does not."""
    forms: dict[str, list[str]] = {}
    for entity_id in dict.fromkeys([*record.chain[0::2], *record.placeholders.values()]):
        forms[entity_id] = [entity_id, *names_by_id.get(entity_id, ())]
    answer_key = record.answer_id or "answer"
    if record.paradigm in ("identify", "intersect"):
        forms.setdefault(answer_key, []).extend([record.answer, *record.answer_aliases])
    shown = []
    for key, names in forms.items():
        leaked = [n for n in leaked_names(text, names) if not leaked_names(record.question, [n])]
        leaked += [n for n in names if ":" in n and n in text and n not in record.question]
        if leaked:
            shown.append(f"{key} as {sorted(set(leaked))[0]!r}")
    return shown
