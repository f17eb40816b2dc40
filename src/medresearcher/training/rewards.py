"""The GRPO reward of paper §4: r = α·r_task + β·r_expert − γ·r_efficiency (α=1, β=0.2, γ=0.1).

Every function here has TRL's reward signature ``f(completions, **columns) -> list[float]``:
``GRPOTrainer`` passes ``prompts=``, ``completions=``, ``completion_ids=`` and every dataset
column (``answer``, ``answer_aliases``, ``question``, ``paradigm``, ``cheat_sheet`` …) as a list
with one value per completion. verl's ``compute_score`` lives in
:mod:`medresearcher.training.verl_reward` and calls :func:`score_parts`, so both engines score
a rollout the same way.

Two ways to train with them in TRL::

    # one function, the paper's weights (the expert term only with a judge endpoint)
    GRPOTrainer(..., reward_funcs=[make_composite_reward(RewardWeights(), expert=expert)])
    # or the terms apart, weighted by TRL (each is then logged on its own)
    GRPOConfig(reward_weights=[1.0, 0.2, -0.1])
    GRPOTrainer(..., reward_funcs=[task_reward, expert, efficiency_penalty])

Nothing here fakes a judgement: without a judge endpoint the expert term is off and its weight
counts as 0 (a warning says so once).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from medresearcher.grading.rules import grade_by_rules
from medresearcher.training.completion import ParsedCompletion, parse_completion
from medresearcher.training.efficiency import (
    column,
    efficiency_penalty,
    efficiency_report,
    gold_forms,
)
from medresearcher.training.expert import ExpertReward, make_expert_reward

__all__ = [
    "CompositeReward",
    "RewardWeights",
    "composite_reward",
    "efficiency_penalty",
    "group_relative_advantages",
    "make_composite_reward",
    "make_expert_reward",
    "score_parts",
    "task_reward",
    "task_score",
]

log = logging.getLogger(__name__)

RewardFunction = Callable[..., list[float]]


@dataclass(frozen=True)
class RewardWeights:
    """α, β, γ of paper §4 (r = α·r_task + β·r_expert − γ·r_efficiency); γ is subtracted."""

    task: float = 1.0
    expert: float = 0.2
    efficiency: float = 0.1


def task_score(
    parsed: ParsedCompletion,
    answer: str | None,
    aliases: Sequence[str] = (),
    question: str | None = None,
) -> float:
    """r_task of one rollout: 1 when the shared rule grader says correct, else 0.

    No final answer, no gold, and what the rules cannot decide all score 0: the task term
    rewards only answers that are verifiably right (an LLM judge is the expert term's job).
    """
    if not answer or parsed.final_answer is None:
        return 0.0
    verdict = grade_by_rules(parsed.final_answer, str(answer), list(aliases), question=question)
    return 1.0 if verdict.correct else 0.0


def task_reward(
    completions: Sequence[Any],
    answer: Sequence[str] | None = None,
    answer_aliases: Sequence[Sequence[str] | None] | None = None,
    question: Sequence[str | None] | None = None,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: r_task (1/0) per completion, by :func:`grade_by_rules`."""
    n = len(completions)
    answers = column(answer, n, "answer")
    aliases = column(answer_aliases, n, "answer_aliases")
    questions = column(question, n, "question")
    return [
        task_score(parse_completion(c), answers[i], list(aliases[i] or []), questions[i])
        for i, c in enumerate(completions)
    ]


def score_parts(
    parsed: ParsedCompletion,
    *,
    answer: str | None,
    aliases: Sequence[str] = (),
    question: str | None = None,
    paradigm: str | None = None,
    weights: RewardWeights = RewardWeights(),
    expert_score: float | None = None,
) -> dict[str, float]:
    """The composite and its parts for one rollout (what verl logs beside ``score``).

    ``expert_score`` is the judge's 0–1 preference, or ``None`` when the expert term is off
    or the judge gave no usable answer: then β·r_expert contributes 0.
    """
    task = task_score(parsed, answer, aliases, question)
    report = efficiency_report(
        parsed, question=question, paradigm=paradigm, answer_forms=gold_forms(answer, aliases)
    )
    expert = 0.0 if expert_score is None else float(expert_score)
    score = weights.task * task + weights.expert * expert - weights.efficiency * report.penalty
    return {
        "score": score,
        "task": task,
        "expert": expert,
        "expert_judged": float(expert_score is not None),
        "efficiency_penalty": report.penalty,
        "tool_calls": float(report.calls),
        "wasted_calls": float(len(report.wasted)),
        "answered": float(parsed.final_answer is not None),
    }


class CompositeReward:
    """r = α·r_task + β·r_expert − γ·r_efficiency as one TRL reward function.

    Named ``composite_reward`` (``__name__``) so that TRL logs it under that name. Without an
    enabled expert, β is treated as 0 and a warning says so the first time it is called.
    """

    __name__ = "composite_reward"

    def __init__(self, weights: RewardWeights, expert: ExpertReward | None) -> None:
        self.weights = weights
        self.expert = expert if expert is not None and expert.enabled else None
        self._warned = False

    @property
    def effective_weights(self) -> RewardWeights:
        """The weights in force: β is 0 while there is no expert."""
        if self.expert is None:
            return RewardWeights(self.weights.task, 0.0, self.weights.efficiency)
        return self.weights

    def __call__(
        self,
        completions: Sequence[Any],
        answer: Sequence[str] | None = None,
        answer_aliases: Sequence[Sequence[str] | None] | None = None,
        question: Sequence[str | None] | None = None,
        paradigm: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        n = len(completions)
        answers = column(answer, n, "answer")
        aliases = column(answer_aliases, n, "answer_aliases")
        questions = column(question, n, "question")
        paradigms = column(paradigm, n, "paradigm")
        expert_scores: list[float | None] = [None] * n
        if self.expert is not None:
            expert_scores = self.expert(
                completions,
                question=question,
                answer=answer,
                answer_aliases=answer_aliases,
                **kwargs,
            )
        elif self.weights.expert and not self._warned:
            log.warning(
                "composite reward: no expert judge endpoint, so the expert term is off "
                "(β = %g treated as 0); r = %g·r_task − %g·r_efficiency",
                self.weights.expert,
                self.weights.task,
                self.weights.efficiency,
            )
        self._warned = True
        weights = self.effective_weights
        return [
            score_parts(
                parse_completion(c),
                answer=answers[i],
                aliases=list(aliases[i] or []),
                question=questions[i],
                paradigm=paradigms[i],
                weights=weights,
                expert_score=expert_scores[i],
            )["score"]
            for i, c in enumerate(completions)
        ]


def make_composite_reward(
    weights: RewardWeights = RewardWeights(),
    *,
    expert: ExpertReward | None = None,
) -> CompositeReward:
    """The composite reward with ``weights``; ``expert`` from :func:`make_expert_reward`."""
    return CompositeReward(weights, expert)


#: The composite with the paper's weights and no expert (β treated as 0).
composite_reward = make_composite_reward()


def group_relative_advantages(
    rewards: Sequence[float], group_size: int, *, scale: bool = True, eps: float = 1e-6
) -> list[float]:
    """GRPO advantages: each reward minus its group's mean, divided by the group's std.

    Groups are consecutive runs of ``group_size`` rewards (the G rollouts of one prompt, as TRL
    and verl lay them out). The std is the unbiased one (ddof = 1), as both engines compute it;
    a group of one, or of equal rewards, has advantage 0. For analysis: the trainers compute
    their own.

    >>> group_relative_advantages([1.0, 0.0, 0.5, 0.5], 2, scale=False)
    [0.5, -0.5, 0.0, 0.0]
    """
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, not {group_size}")
    if len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    advantages: list[float] = []
    for start in range(0, len(rewards), group_size):
        group = [float(r) for r in rewards[start : start + group_size]]
        mean = sum(group) / len(group)
        centred = [r - mean for r in group]
        if scale:
            var = sum(c * c for c in centred) / (len(group) - 1) if len(group) > 1 else 0.0
            std = math.sqrt(var)
            centred = [c / (std + eps) for c in centred]
        advantages.extend(centred)
    return advantages
