"""Offline checks of a QA record (issue 7 §4; paper §3.1.2–3.1.3), pure functions.

A synthesised question is only worth a trajectory when it needs the chain: the answer must not
be in the question, no entity on the way may be named, the answer must be the chain's end and
unique, the chain long enough, and the cheat sheet that Masked Trajectory Guidance shows
(§3.2) must name nothing. The public release checked none of these; its example question was
answered closed-book. Each check returns a :class:`~medresearcher.schema.CheckResult` recorded
in ``QARecord.checks`` under its name, so that failures stay visible and countable
(``qa stats``) rather than silently dropped.

Names are matched by :func:`leaked_names`: case-, accent- and punctuation-insensitive whole
words, names under three characters ignored (a gene symbol such as ``F8`` would hit too much
ordinary text), CJK names as plain substrings from two characters on. Entity ids (CURIEs)
count as names too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from medresearcher.grading.rules import answer_mentions
from medresearcher.schema import MASK, CheckResult, QARecord, Sample

__all__ = [
    "CHECK_NAMES",
    "MIN_NAME_CHARS",
    "check_answer_is_chain_end",
    "check_answer_not_in_question",
    "check_cheat_sheet_placeholders_only",
    "check_min_hops",
    "check_no_intermediate_names",
    "check_unique_answer",
    "leaked_names",
    "run_checks",
]

#: Names shorter than this (outside CJK) are not looked for.
MIN_NAME_CHARS = 3

CHECK_NAMES = (
    "answer_not_in_question",
    "no_intermediate_names",
    "answer_is_chain_end",
    "unique_answer",
    "min_hops",
    "cheat_sheet_placeholders_only",
)

_QUOTE_AT_MOST = 5


def leaked_names(text: str, names: Iterable[str]) -> list[str]:
    """The ``names`` that ``text`` gives away (each once, in the order given).

    Whole-word and insensitive to case, accents, dashes and possessives ("Anderson–Fabry's
    disease" leaks "Anderson-Fabry disease"); names under :data:`MIN_NAME_CHARS` characters
    are ignored, CJK names match as substrings.
    """
    return answer_mentions(text, names, min_chars=MIN_NAME_CHARS)


def _failed(what: str, leaked: Sequence[str]) -> CheckResult:
    shown = ", ".join(repr(n) for n in leaked[:_QUOTE_AT_MOST])
    more = f" and {len(leaked) - _QUOTE_AT_MOST} more" if len(leaked) > _QUOTE_AT_MOST else ""
    return CheckResult(passed=False, detail=f"{what}: {shown}{more}")


def _chain_entities(record: QARecord) -> list[str]:
    return list(record.chain[0::2]) if len(record.chain) % 2 == 1 else []


def _answer_names(record: QARecord) -> list[str]:
    return [record.answer, *record.answer_aliases]


def _entity_names(entity_ids: Iterable[str], names_by_id: Mapping[str, Sequence[str]]) -> list[str]:
    names: list[str] = []
    for entity_id in entity_ids:
        names += [entity_id, *names_by_id.get(entity_id, ())]
    return names


def check_answer_not_in_question(record: QARecord) -> CheckResult:
    """Neither the answer nor any of its aliases appears in the question."""
    leaked = leaked_names(record.question, _answer_names(record))
    if leaked:
        return _failed("the question names the answer", leaked)
    return CheckResult(passed=True)


def check_no_intermediate_names(
    record: QARecord, names_by_id: Mapping[str, Sequence[str]]
) -> CheckResult:
    """No chain entity other than the answer is named (by name, alias or id) in the question.

    An entity missing from ``names_by_id`` fails the check: it cannot be verified.
    """
    others = [e for e in dict.fromkeys(_chain_entities(record)) if e != record.answer_id]
    unknown = [e for e in others if not names_by_id.get(e)]
    if unknown:
        return _failed("no names known for chain entities (cannot check)", unknown)
    leaked = leaked_names(record.question, _entity_names(others, names_by_id))
    if leaked:
        return _failed("the question names chain entities", leaked)
    return CheckResult(passed=True)


def check_answer_is_chain_end(record: QARecord) -> CheckResult:
    """The answer is the chain's last entity (for attribute and count questions: the answer
    is read from it, ``provenance["answer_source"]["entity"]``)."""
    entities = _chain_entities(record)
    if not entities:
        return CheckResult(passed=False, detail=f"malformed chain of {len(record.chain)} items")
    end = entities[-1]
    if record.answer_id == end:
        return CheckResult(passed=True)
    if record.paradigm in ("attribute", "count"):
        source = record.provenance.get("answer_source")
        entity = source.get("entity") if isinstance(source, Mapping) else None
        if entity == end:
            return CheckResult(passed=True)
        return CheckResult(
            passed=False, detail=f"answer read from {entity!r}, the chain ends at {end!r}"
        )
    return CheckResult(passed=False, detail=f"answer {record.answer_id!r}, chain end {end!r}")


def check_unique_answer(record: QARecord, sample: Sample | None = None) -> CheckResult:
    """The chain leads to one answer only: the sample's uniqueness walk found no competing
    end (``sample.unique``), or the writer counted one candidate (``provenance["candidates"]``).
    """
    if sample is not None and sample.id != record.sample_id:
        return CheckResult(
            passed=False, detail=f"sample {sample.id} is not the record's {record.sample_id}"
        )
    candidates = record.provenance.get("candidates")
    if candidates == 1 or (sample is not None and sample.unique is True):
        return CheckResult(passed=True)
    if sample is not None and sample.unique is False:
        return CheckResult(
            passed=False, detail=f"{sample.competing_ends} competing end(s) reach the same walk"
        )
    if candidates is not None:
        return CheckResult(passed=False, detail=f"{candidates} candidate answers")
    return CheckResult(passed=False, detail="uniqueness unknown (no sample, no candidate count)")


def check_min_hops(record: QARecord, min_hops: int = 2) -> CheckResult:
    """The chain has at least ``min_hops`` edges: fewer needs no multi-hop search."""
    if record.hops < min_hops:
        return CheckResult(passed=False, detail=f"{record.hops} hop(s) < {min_hops}")
    return CheckResult(passed=True)


def check_cheat_sheet_placeholders_only(
    record: QARecord, names_by_id: Mapping[str, Sequence[str]]
) -> CheckResult:
    """The cheat sheet and the masked chain name no entity and not the answer: steps use
    placeholders (``[E1]``…) and every masked triple is ``([MASK], predicate, [MASK])``."""
    names = [*_entity_names(dict.fromkeys(_chain_entities(record)), names_by_id)]
    names += _answer_names(record)
    problems: list[str] = []
    for number, step in enumerate(record.cheat_sheet, start=1):
        if leaked := leaked_names(step, names):
            problems.append(f"step {number} names {', '.join(map(repr, leaked))}")
    if record.hops > 0 and not record.masked_chain:
        problems.append("no masked chain")
    for number, triple in enumerate(record.masked_chain, start=1):
        if len(triple) != 3 or triple[0] != MASK or triple[2] != MASK:
            problems.append(f"masked triple {number} is not ([MASK], predicate, [MASK])")
        elif leaked := leaked_names(triple[1], names):
            problems.append(f"masked triple {number} names {', '.join(map(repr, leaked))}")
    if problems:
        return CheckResult(passed=False, detail="; ".join(problems))
    return CheckResult(passed=True)


def run_checks(
    record: QARecord,
    *,
    names_by_id: Mapping[str, Sequence[str]],
    sample: Sample | None = None,
    min_hops: int = 2,
) -> dict[str, CheckResult]:
    """Every offline check of ``record``, by name (:data:`CHECK_NAMES`).

    Parameters
    ----------
    names_by_id:
        Name and aliases of every chain entity (ids are added by the checks).
    sample:
        The record's sample, for its uniqueness walk.
    min_hops:
        ``settings.qa.min_hops``.
    """
    return {
        "answer_not_in_question": check_answer_not_in_question(record),
        "no_intermediate_names": check_no_intermediate_names(record, names_by_id),
        "answer_is_chain_end": check_answer_is_chain_end(record),
        "unique_answer": check_unique_answer(record, sample),
        "min_hops": check_min_hops(record, min_hops),
        "cheat_sheet_placeholders_only": check_cheat_sheet_placeholders_only(record, names_by_id),
    }
