"""Pass-rate curriculum for GRPO (paper §4.2: difficulty rises with the pass rate).

GRPO learns only from groups whose rollouts disagree: a prompt that every rollout solves has
zero advantage everywhere and costs a full group of generations for nothing. The curriculum
therefore keeps, per prompt, the outcomes of its most recent rollouts and samples a prompt
less the more of them were solved, so the batches drift toward the questions the policy does
not yet master — the effective difficulty rises as the pass rate does.

The rule (a pure function, :func:`curriculum_weight`)::

    p̂ = (solved in the last `window` rollouts + prior · prior_strength)
         / (rollouts kept + prior_strength)
    w  = floor + (1 − floor) · (1 − p̂) ** sharpness

A prompt never tried has p̂ = prior (0.5 by default), so new prompts are neither starved nor
favoured over failing ones; ``floor`` > 0 keeps solved prompts in rotation (they may be
forgotten); ``sharpness`` > 1 pushes harder away from solved prompts.

Pieces:

- :class:`PassRateTracker` — the recent outcomes per prompt id (``observe`` after scoring);
- :func:`curriculum_weight`, :func:`curriculum_weights` — the rule above;
- :class:`CurriculumSampler` — a ``torch.utils.data.Sampler`` of dataset indices, drawn
  without replacement with these weights and re-weighted at every pass over the data, with
  TRL's GRPO layout (each index repeated ``mini_repeat_count`` times, batches repeated
  ``repeat_count`` times) so one group shares one prompt;
- :func:`recording_reward` — wraps the task reward so that each scored completion is
  recorded in the tracker (the hook into TRL: the reward functions are the one place that
  sees ``qa_id`` and the outcome together).
"""

from __future__ import annotations

import functools
import math
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CurriculumConfig",
    "CurriculumSampler",
    "PassRateTracker",
    "curriculum_weight",
    "curriculum_weights",
    "pass_rate_table",
    "recording_reward",
]


@dataclass(frozen=True)
class CurriculumConfig:
    """The curriculum's knobs (printed by the dry-run plan)."""

    window: int = 8
    """Recent rollouts kept per prompt."""
    floor: float = 0.1
    """Weight of a prompt solved in every recent rollout (0 would drop it for good)."""
    prior: float = 0.5
    """Pass rate assumed for a prompt with no rollouts yet."""
    prior_strength: float = 1.0
    """How many pseudo-rollouts the prior counts for."""
    sharpness: float = 1.0
    """Exponent on (1 − p̂): above 1 favours unsolved prompts more strongly."""
    solved_threshold: float = 0.5
    """A task reward at or above this counts as solved."""

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("curriculum window must be at least 1")
        if not 0.0 <= self.floor <= 1.0 or not 0.0 <= self.prior <= 1.0:
            raise ValueError("curriculum floor and prior must lie in [0, 1]")
        if self.prior_strength < 0 or self.sharpness <= 0:
            raise ValueError("curriculum prior_strength must be ≥ 0 and sharpness > 0")


def curriculum_weight(
    solved: int, attempts: int, config: CurriculumConfig = CurriculumConfig()
) -> float:
    """Sampling weight of a prompt solved ``solved`` times in its last ``attempts`` rollouts.

    Decreasing in the smoothed pass rate p̂; equal to ``config.floor`` only when p̂ = 1.
    """
    if attempts < 0 or not 0 <= solved <= attempts:
        raise ValueError(f"solved={solved} of attempts={attempts} is not a count")
    denominator = attempts + config.prior_strength
    rate = (
        (solved + config.prior * config.prior_strength) / denominator
        if denominator > 0
        else config.prior
    )
    return config.floor + (1.0 - config.floor) * (1.0 - rate) ** config.sharpness


@dataclass
class PassRateTracker:
    """Outcomes of the most recent rollouts per prompt id (a bounded window each)."""

    config: CurriculumConfig = field(default_factory=CurriculumConfig)
    history: dict[str, deque[bool]] = field(default_factory=dict)

    def observe(self, prompt_id: str, solved: bool) -> None:
        """Record one rollout of ``prompt_id``."""
        window = self.history.setdefault(prompt_id, deque(maxlen=self.config.window))
        window.append(bool(solved))

    def observe_rewards(self, prompt_ids: Sequence[str], rewards: Sequence[float | None]) -> None:
        """Record a batch of task rewards (``None``: not applicable, not recorded)."""
        for prompt_id, reward in zip(prompt_ids, rewards, strict=True):
            if reward is not None and not math.isnan(reward):
                self.observe(str(prompt_id), reward >= self.config.solved_threshold)

    def pass_rate(self, prompt_id: str) -> float | None:
        """The raw recent pass rate, or ``None`` before any rollout."""
        window = self.history.get(prompt_id)
        return sum(window) / len(window) if window else None

    def weight(self, prompt_id: str) -> float:
        window = self.history.get(prompt_id) or ()
        return curriculum_weight(sum(window), len(window), self.config)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Per prompt: attempts, pass rate and weight (for logs and the run manifest)."""
        return {
            pid: {
                "attempts": len(window),
                "pass_rate": sum(window) / len(window),
                "weight": self.weight(pid),
            }
            for pid, window in self.history.items()
            if window
        }


def curriculum_weights(prompt_ids: Sequence[str], tracker: PassRateTracker) -> list[float]:
    """The weight of each prompt id, in order."""
    return [tracker.weight(str(pid)) for pid in prompt_ids]


def _weighted_order(weights: Sequence[float], rng: random.Random) -> list[int]:
    """All indices, ordered by a weighted draw without replacement (Efraimidis–Spirakis keys
    u^(1/w): the heavier an index, the earlier it tends to come)."""
    keys = []
    for index, weight in enumerate(weights):
        u = rng.random() or 1e-12
        keys.append((math.log(u) / weight if weight > 0 else -math.inf, index))
    keys.sort(reverse=True)
    return [index for _, index in keys]


class CurriculumSampler:
    """Dataset indices for GRPO, ordered by curriculum weight, in TRL's repeat layout.

    Parameters
    ----------
    prompt_ids:
        The prompt id of each dataset row (the ``qa_id`` column).
    tracker:
        Read at the start of every pass over the data, so weights follow the latest rewards.
    mini_repeat_count, batch_size, repeat_count:
        As in TRL's ``RepeatSampler``: each index is yielded ``mini_repeat_count`` times in a
        row (one GRPO group), ``batch_size`` distinct prompts make a generation batch, and each
        batch is repeated ``repeat_count`` times (``num_iterations × steps_per_generation``).
    seed:
        Seeds the draw; every process in a multi-GPU run must use the same seed (and see the
        same tracker state) so that the groups stay aligned, as with TRL's sampler.
    """

    def __init__(
        self,
        prompt_ids: Sequence[str],
        tracker: PassRateTracker,
        *,
        mini_repeat_count: int = 1,
        batch_size: int = 1,
        repeat_count: int = 1,
        seed: int = 0,
    ) -> None:
        self.prompt_ids = [str(pid) for pid in prompt_ids]
        self.tracker = tracker
        self.mini_repeat_count = mini_repeat_count
        self.batch_size = batch_size
        self.repeat_count = repeat_count
        self._rng = random.Random(seed)

    def order(self) -> list[int]:
        """One pass's order of distinct indices under the current weights."""
        return _weighted_order(curriculum_weights(self.prompt_ids, self.tracker), self._rng)

    def __iter__(self) -> Iterator[int]:
        order = self.order()
        usable = len(order) // self.batch_size * self.batch_size
        for start in range(0, usable, self.batch_size):
            chunk = order[start : start + self.batch_size]
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        usable = len(self.prompt_ids) // self.batch_size * self.batch_size
        return usable * self.mini_repeat_count * self.repeat_count


def recording_reward(
    reward: Callable[..., list[float | None]],
    tracker: PassRateTracker,
    *,
    id_column: str = "qa_id",
) -> Callable[..., list[float | None]]:
    """``reward`` (TRL signature ``f(completions, **columns)``) that also records each score in
    ``tracker`` under the row's ``id_column``; the scores are returned unchanged."""

    @functools.wraps(reward)
    def recorded(completions: list[Any], **columns: Any) -> list[float | None]:
        scores = reward(completions, **columns)
        ids = columns.get(id_column)
        if ids is not None:
            all_ids, all_scores = _gathered(list(ids), list(scores))
            tracker.observe_rewards(all_ids, all_scores)
        return scores

    return recorded


def _gathered(ids: list[Any], scores: list[Any]) -> tuple[list[Any], list[Any]]:
    """Every process's ids and scores, in rank order, when training is distributed: each
    process must hold the same tracker state so that its sampler draws the same order (TRL
    splits one global order of indices between the processes)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is there whenever TRL is
        return ids, scores
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return ids, scores
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (ids, scores))
    return [i for p in parts for i in p[0]], [s for p in parts for s in p[1]]


def pass_rate_table(tracker: PassRateTracker) -> Mapping[str, float]:
    """Prompt id → recent pass rate, for reports."""
    return {pid: row["pass_rate"] for pid, row in tracker.snapshot().items()}
