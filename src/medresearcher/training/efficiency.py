"""The efficiency penalty r_efficiency of paper §4: tool calls that bought nothing.

The paper's reward is r = α·r_task + β·r_expert − γ·r_efficiency; the penalty keeps GRPO from
learning that more calls are always safer. It is rule-based here, so that it is cheap, exact and
the same in TRL and verl; :func:`medresearcher.training.expert.make_judged_efficiency_penalty`
lets a judge confirm the flagged calls where a run wants that.

A call is *wasted* when any of these holds (a call is counted once even if several hold):

1. **repeat** — the same tool with the same arguments (compared as canonical JSON) was already
   called earlier in the rollout; its result is already in the context;
2. **after the answer** — it was made in a turn after an observation that already named the
   gold answer (or one of its aliases; without a gold answer, the rollout's own final answer).
   Calls in the same turn as the revealing one are not counted: they were issued together.
   Purely numeric answers are not looked for, since a number in a page is too often a
   coincidence (a count of 4 matches any "4" in a text);
3. **irrelevant** — the tool cannot serve the question's type (:data:`IRRELEVANT_TOOLS`).

The penalty is the share of wasted calls, in [0, 1]; a rollout without calls costs nothing.
Calls that fail (an unknown tool, bad arguments) are not wasted by this rule: a failed call is
already paid for by the turn it costs and by the task reward.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medresearcher.grading.normalise import answer_mentions
from medresearcher.grading.values import parse_quantity
from medresearcher.training.completion import ParsedCompletion, parse_completion

__all__ = [
    "IRRELEVANT_TOOLS",
    "EfficiencyReport",
    "column",
    "efficiency_penalty",
    "efficiency_report",
    "gold_forms",
    "question_type",
]

#: Tools that cannot help with a question of a given type (QARecord.paradigm).
#:
#: ``clinical_reasoning`` is a Bayesian differential diagnosis: it ranks diseases from findings.
#: It can help to *identify* a disorder (also inside an *intersect* question), but a *count*
#: (how many genes / phenotypes / disorders) or an *attribute* (prevalence, onset, mode of
#: inheritance) is read from records, which the search and reading tools return and a posterior
#: over diseases does not. The search and reading tools serve every type. The table is
#: deliberately small: a wrong entry would teach the policy to avoid a useful tool.
IRRELEVANT_TOOLS: Mapping[str, frozenset[str]] = {
    "identify": frozenset(),
    "intersect": frozenset(),
    "attribute": frozenset({"clinical_reasoning"}),
    "count": frozenset({"clinical_reasoning"}),
}

_LAST_SENTENCE = re.compile(r"([^.?!。？！]*[?？])\s*$")
_COUNT = re.compile(r"\bhow many\b|\bnumber of\b|多少|几个|几种", re.IGNORECASE)
_ATTRIBUTE = re.compile(
    r"\bwhat is (?:its|the)\b|\bat what age\b|\bwhen does\b|\bmode of inheritance\b|"
    r"\bprevalence\b|\bonset\b|遗传方式|患病率|发病年龄",
    re.IGNORECASE,
)
_INTERSECT = re.compile(r"\btwo lines of enquiry\b|\btwo lines of inquiry\b|两条线索", re.I)
_IDENTIFY = re.compile(r"\bwhich\b.*\bis it\b|\bwhat (?:disorder|disease|gene|drug)\b|哪", re.I)


def question_type(question: str | None, paradigm: str | None = None) -> str | None:
    """The question's type: ``paradigm`` when known, else read from the question's wording.

    Returns ``None`` when neither says (then no tool counts as irrelevant).

    >>> question_type("… To how many disorders is this feature annotated?")
    'count'
    >>> question_type("anything", "identify")
    'identify'
    """
    if paradigm in IRRELEVANT_TOOLS:
        return paradigm
    if not question:
        return None
    if _INTERSECT.search(question):
        return "intersect"
    match = _LAST_SENTENCE.search(question.strip())
    last = match.group(1) if match else question
    if _COUNT.search(last):
        return "count"
    if _IDENTIFY.search(last):
        return "identify"
    if _ATTRIBUTE.search(last):
        return "attribute"
    return None


@dataclass(frozen=True)
class EfficiencyReport:
    """Which calls of one rollout were wasted, by index into ``parsed.calls``, and why."""

    calls: int
    repeated: tuple[int, ...] = ()
    after_answer: tuple[int, ...] = ()
    irrelevant: tuple[int, ...] = ()

    @property
    def wasted(self) -> tuple[int, ...]:
        return tuple(sorted({*self.repeated, *self.after_answer, *self.irrelevant}))

    @property
    def penalty(self) -> float:
        """The share of wasted calls, in [0, 1]."""
        return len(self.wasted) / self.calls if self.calls else 0.0


def efficiency_report(
    parsed: ParsedCompletion,
    *,
    question: str | None = None,
    paradigm: str | None = None,
    answer_forms: Sequence[str] = (),
) -> EfficiencyReport:
    """Apply the three rules of this module to one parsed rollout.

    Parameters
    ----------
    parsed:
        The rollout (:func:`~medresearcher.training.completion.parse_completion`).
    question, paradigm:
        Decide the question type for the relevance rule (:func:`question_type`).
    answer_forms:
        The gold answer and its aliases; without them the rollout's own final answer is
        looked for in the observations.
    """
    calls = parsed.calls
    seen: set[str] = set()
    repeated = []
    for index, call in enumerate(calls):
        if call.key in seen:
            repeated.append(index)
        seen.add(call.key)

    forms = [f for f in answer_forms if f and f.strip()]
    if not forms and parsed.final_answer:
        forms = [parsed.final_answer]
    forms = [f for f in forms if parse_quantity(f) is None]
    revealed_turn = None
    if forms:
        for observation in parsed.observations:
            if answer_mentions(observation.text, forms):
                revealed_turn = observation.turn
                break
    after = (
        [i for i, call in enumerate(calls) if call.turn > revealed_turn]
        if revealed_turn is not None
        else []
    )

    kind = question_type(question, paradigm)
    unhelpful = IRRELEVANT_TOOLS.get(kind or "", frozenset())
    irrelevant = [i for i, call in enumerate(calls) if call.name in unhelpful]
    return EfficiencyReport(len(calls), tuple(repeated), tuple(after), tuple(irrelevant))


def column(values: Any, n: int, name: str) -> list[Any]:
    """A TRL keyword column as a list of ``n`` (a scalar or ``None`` is repeated)."""
    if values is None or isinstance(values, (str, bytes, Mapping)):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"reward column {name!r} has {len(values)} values for {n} completions")
    return values


def gold_forms(answer: str | None, aliases: Iterable[str] | None) -> list[str]:
    """The gold answer followed by its aliases, blanks dropped."""
    forms = [answer] if answer else []
    forms.extend(a for a in (aliases or []) if a and str(a).strip())
    return [str(f) for f in forms]


def efficiency_penalty(
    completions: Sequence[Any],
    question: Sequence[str | None] | None = None,
    paradigm: Sequence[str | None] | None = None,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: the efficiency penalty of each completion, in [0, 1].

    A *penalty*: give it a negative weight in ``GRPOConfig.reward_weights`` (−γ = −0.1 in paper
    §4) or use :func:`~medresearcher.training.rewards.make_composite_reward`. Reads the dataset
    columns ``question``, ``paradigm``, ``answer`` and ``answer_aliases`` when present.
    """
    n = len(completions)
    questions = column(question, n, "question")
    paradigms = column(paradigm, n, "paradigm")
    answers = column(kwargs.get("answer"), n, "answer")
    aliases = column(kwargs.get("answer_aliases"), n, "answer_aliases")
    return [
        efficiency_report(
            parse_completion(completion),
            question=questions[i],
            paradigm=paradigms[i],
            answer_forms=gold_forms(answers[i], aliases[i]),
        ).penalty
        for i, completion in enumerate(completions)
    ]
