"""Rules-first grading: decide the clear cases without a model, leave the rest to a judge.

Every peer headlines an LLM judge, yet judges are costly, noisy and fallible even on case
("Azacitidine" vs "AZACITIDINE" judged wrong in MedBrowseComp's shipped results;
docs/benchmarks-and-grading.md §1.3). A deterministic pass first settles what rules can settle
(normalised equality, aliases, numbers within a tolerance, dates at the precision the question
asks, the NA class, lists in any order) and says ``None`` — undecided — where only a judge can.
It also serves the QA stage: the LLM writer checks its answer against the knowledge graph with
it, and difficulty calibration (paper §3.1.3) grades closed-book answers with it.

Traps this module avoids on purpose:

- a short gold such as ``"A"`` never matches ``"vitamin A"``: containment needs a whole-word
  hit, a gold of at least four characters, and a short, unhedged final answer;
- articles are dropped only at the start ("the Fabry disease"), so ``"vitamin A"`` does not
  become ``"vitamin"``;
- a four-digit year or a small count is compared exactly, never "within 1 %".

This module holds the verdicts; text normalisation, final-answer extraction and the NA class live
in :mod:`medresearcher.grading.normalise`, numbers and dates in :mod:`medresearcher.grading.values`.
Their public names are re-exported here, where callers have always imported them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from medresearcher.grading.normalise import (
    _CJK,
    NA_ANSWERS,
    _compact,
    _words,
    answer_mentions,
    extract_final_answer,
    is_na,
    normalise_answer,
)
from medresearcher.grading.values import (
    _LEVEL,
    PartialDate,
    Precision,
    Quantity,
    _numbers_in,
    _same_number,
    date_precision_asked,
    parse_date,
    parse_quantity,
)

__all__ = [
    "NA_ANSWERS",
    "PartialDate",
    "Quantity",
    "RuleVerdict",
    "answer_mentions",
    "date_precision_asked",
    "extract_final_answer",
    "grade_by_rules",
    "is_na",
    "normalise_answer",
    "parse_date",
    "parse_quantity",
]

Verdict = Literal["correct", "incorrect"]


@dataclass(frozen=True)
class RuleVerdict:
    """What the rules decided: ``verdict`` is None when no rule could decide (ask a judge).

    ``rule`` names the rule that decided (or why none did); records carry it as
    ``rule:<name>`` (see :attr:`grader`).
    """

    verdict: Verdict | None
    rule: str
    detail: str | None = None

    @property
    def grader(self) -> str:
        return f"rule:{self.rule}"

    @property
    def correct(self) -> bool:
        return self.verdict == "correct"


# -- containment -----------------------------------------------------------------------------

_HEDGES = frozenset(
    (  # noqa: SIM905
        "not no never nor or except excluding unlikely rather instead non either maybe "
        "possibly perhaps"
    ).split()
)
_HEDGES_CJK = ("不", "非", "或", "除了", "可能")


def _contains(answer: str, forms: Sequence[str]) -> str | None:
    """The gold form that the short, unhedged ``answer`` contains as whole words, if any."""
    norm = _words(re.sub(r"\([^)]*\)", " ", answer))
    tokens = norm.split()
    if not tokens or _HEDGES.intersection(tokens) or any(h in norm for h in _HEDGES_CJK):
        return None
    for form in forms:
        gold = _words(form)
        if len(_compact(gold)) < 4 or parse_quantity(gold) is not None:
            continue
        if _CJK.search(gold):
            if gold in norm.replace(" ", "") and len(norm) <= len(gold) + 4:
                return form
        elif f" {gold} " in f" {norm} " and len(tokens) <= len(gold.split()) + 3:
            return form
    return None


# -- the grader ------------------------------------------------------------------------------

_LIST_SPLIT = re.compile(r"\s*(?:[;；、]|,(?!\d{3}(?!\d))|，)\s*")
_PRED_LIST_SPLIT = re.compile(
    r"\s*(?:[;；、]|,(?!\d{3}(?!\d))|，|\s+and\s+|\s+&\s+|和|及)\s*", re.I
)


def _split(text: str, pattern: re.Pattern[str]) -> list[str]:
    parts = [re.sub(r"^(?:and|or)\s+", "", p.strip(), flags=re.I) for p in pattern.split(text)]
    return [p for p in parts if p]


def _scalar(
    pred: str, forms: Sequence[str], precision: Precision | None, rel_tol: float
) -> RuleVerdict:
    """Grade one answer against one gold and its aliases, without lists or containment."""
    gold = forms[0]
    pred_norm = normalise_answer(pred)
    for index, form in enumerate(forms):
        form_norm = normalise_answer(form)
        if form_norm and _compact(form_norm) == _compact(pred_norm):
            return RuleVerdict("correct", "exact" if index == 0 else "alias", form)
    if is_na(gold) or is_na(pred):
        if is_na(gold) and is_na(pred):
            return RuleVerdict("correct", "na")
        if is_na(pred) or parse_quantity(pred) or parse_date(pred, search=True):
            return RuleVerdict("incorrect", "na", "one side is NA, the other is not")
        return RuleVerdict(None, "na", "gold is NA; the answer is a phrase")
    gold_date = parse_date(gold)
    pred_date = None if gold_date is None else parse_date(pred) or parse_date(pred, search=True)
    if gold_date is not None and pred_date is not None:
        wanted = precision or gold_date.precision
        level = min(_LEVEL[wanted], _LEVEL[gold_date.precision])
        target: Precision = ("year", "month", "day")[level - 1]  # type: ignore[assignment]
        if _LEVEL[pred_date.precision] < level:
            shared = pred_date.precision
            if pred_date.fields(shared) != gold_date.fields(shared):
                return RuleVerdict("incorrect", "date", f"differs at {shared} precision")
            return RuleVerdict(None, "date", f"answer only gives the {shared}")
        same = pred_date.fields(target) == gold_date.fields(target)
        return RuleVerdict("correct" if same else "incorrect", "date", f"compared to the {target}")
    gold_number = parse_quantity(gold)
    if gold_number is not None:
        pred_number = parse_quantity(pred)
        if pred_number is None:
            numbers = {q.value: q for q in _numbers_in(pred)}
            if len(numbers) != 1:
                what = "date" if gold_date else "number"
                return RuleVerdict(None, what, f"{len(numbers)} numbers in the answer")
            pred_number = next(iter(numbers.values()))
        if gold_number.unit and pred_number.unit and gold_number.unit != pred_number.unit:
            return RuleVerdict(None, "number", f"units differ: {pred_number.unit}")
        same = _same_number(pred_number, gold_number, rel_tol)
        return RuleVerdict("correct" if same else "incorrect", "number")
    return RuleVerdict(None, "no_rule")


def _grade_list(
    pred: str, gold: list[str], precision: Precision | None, rel_tol: float
) -> RuleVerdict:
    items = _split(pred, _PRED_LIST_SPLIT)
    if len(items) != len(gold):
        return RuleVerdict(None, "list", f"{len(items)} items for {len(gold)}")
    verdicts = [[_scalar(p, [g], precision, rel_tol).verdict for g in gold] for p in items]
    match: dict[int, int] = {}  # gold index → prediction index (augmenting paths)

    def assign(p: int, seen: set[int]) -> bool:
        for g in range(len(gold)):
            if verdicts[p][g] == "correct" and g not in seen:
                seen.add(g)
                if g not in match or assign(match[g], seen):
                    match[g] = p
                    return True
        return False

    if all(assign(p, set()) for p in range(len(items))):
        return RuleVerdict("correct", "list")
    if all(v is not None for row in verdicts for v in row):
        return RuleVerdict("incorrect", "list", "an item has no match")
    return RuleVerdict(None, "list", "some items undecided")


def grade_by_rules(
    prediction: str | None,
    gold: str,
    aliases: Sequence[str] = (),
    *,
    question: str | None = None,
    precision: Precision | None = None,
    rel_tol: float = 1e-2,
) -> RuleVerdict:
    """Grade ``prediction`` against ``gold`` (and its ``aliases``) by rules alone.

    Parameters
    ----------
    prediction:
        The model's reply; its final answer is extracted first (:func:`extract_final_answer`).
    gold, aliases:
        The reference answer and other names of it (from the knowledge graph).
    question:
        Read for the precision a date is asked in (``date: YYYY`` → compare years only).
    precision:
        Overrides the precision read from the question.
    rel_tol:
        Relative tolerance of non-integer numbers (1 %, as MedBrowseComp grades prices).

    Returns
    -------
    RuleVerdict
        ``correct`` or ``incorrect`` when a rule is sure, else ``None``: let a judge decide.
        Rules: ``empty``, ``exact``, ``alias``, ``na``, ``date``, ``number``, ``list``,
        ``contains``, ``no_rule``.
    """
    if prediction is None or not prediction.strip():
        return RuleVerdict("incorrect", "empty", "no answer")
    answer = extract_final_answer(prediction)
    if not normalise_answer(answer):
        return RuleVerdict("incorrect", "empty", "no answer")
    forms = [gold, *(a for a in aliases if a and a.strip())]
    precision = precision or date_precision_asked(question)
    verdict = _scalar(answer, forms, precision, rel_tol)
    if verdict.verdict is not None:
        return verdict
    for form in forms:
        parts = _split(form, _LIST_SPLIT)
        if len(parts) >= 2 and parse_date(form) is None and parse_quantity(form) is None:
            listed = _grade_list(answer, parts, precision, rel_tol)
            if listed.verdict is not None:
                return listed
            verdict = listed
    if (hit := _contains(answer, forms)) is not None:
        return RuleVerdict("correct", "contains", hit)
    return verdict
