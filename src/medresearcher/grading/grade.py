"""One entry point for grading: rules first, then the LLM judge for what they leave open.

A deterministic match settles an item without a model call, as xbench and MedResearcher-R1 do
(docs/benchmarks-and-grading.md §3.8, "(c) Grading method"): cheaper, reproducible offline, and
immune to judge noise on case or date format. Only an answer the rules cannot decide (a synonym,
a paraphrase, a more or less specific name) goes to the judge. Every result records which
grader decided, ``rule:<name>`` or ``llm:<model>``, as :class:`~medresearcher.schema.EvalResult`
asks (paper §5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from medresearcher.grading.judge import Judge, Judgement
from medresearcher.grading.normalise import extract_final_answer
from medresearcher.grading.rules import grade_by_rules

__all__ = ["GradeResult", "grade"]

Verdict = Literal["correct", "incorrect", "unjudgeable"]


@dataclass(frozen=True)
class GradeResult:
    """The verdict on one prediction and who gave it.

    ``grader`` is ``rule:<rule name>``, ``llm:<judge model>``, or ``rule:undecided`` when no
    rule decided and no judge was given (then the verdict is ``incorrect``). ``unjudgeable``
    (the judge's output was unreadable) counts as wrong in metrics but is reported apart.
    ``extracted`` is the final answer the grader read from the prediction; ``judgement`` holds
    the judge's full record when the judge decided.
    """

    verdict: Verdict
    grader: str
    detail: str | None = None
    extracted: str | None = None
    judgement: Judgement | None = None

    @property
    def correct(self) -> bool:
        return self.verdict == "correct"


async def grade(
    prediction: str | None,
    gold: str,
    aliases: Sequence[str] = (),
    *,
    question: str | None = None,
    judge: Judge | None = None,
) -> GradeResult:
    """Grade ``prediction`` against ``gold`` and its ``aliases``.

    Parameters
    ----------
    prediction:
        The agent's final reply (``None`` or blank: no answer, graded ``incorrect``).
    gold, aliases:
        The reference answer and its other accepted forms (KG synonyms).
    question:
        Gives the rules the precision a date is asked in, and the judge its context.
    judge:
        Decides what the rules leave undecided; without one such an answer is ``incorrect``
        with grader ``rule:undecided``.

    Raises
    ------
    LLMCallError
        When the judge's endpoint fails for good (the rules never raise).
    """
    ruled = grade_by_rules(prediction, gold, aliases, question=question)
    extracted = extract_final_answer(prediction) if prediction and prediction.strip() else None
    if ruled.verdict is not None:
        return GradeResult(ruled.verdict, ruled.grader, ruled.detail, extracted or None)
    why = f"{ruled.rule}: {ruled.detail}" if ruled.detail else ruled.rule
    if judge is None:
        detail = f"no judge; rules undecided ({why})"
        return GradeResult("incorrect", "rule:undecided", detail, extracted or None)
    judgement = await judge.judge(
        question=question, gold=gold, response=prediction or "", aliases=aliases
    )
    if judgement.verdict == "unjudgeable":
        raw = (judgement.raw or "").strip().replace("\n", " ")
        detail = f"unreadable judge output: {raw[:200]!r}"
    else:
        detail = judgement.reasoning
    return GradeResult(
        judgement.verdict,
        judgement.grader,
        detail,
        judgement.extracted or extracted or None,
        judgement,
    )
