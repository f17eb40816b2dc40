"""The pass-rate curriculum (paper §4.2): solved prompts are sampled less; pure core + sampler."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from medresearcher.training.curriculum import (
    CurriculumConfig,
    CurriculumSampler,
    PassRateTracker,
    curriculum_weight,
    curriculum_weights,
    recording_reward,
)


def test_weight_falls_as_the_pass_rate_rises() -> None:
    config = CurriculumConfig(floor=0.1, prior=0.5, prior_strength=1.0)
    weights = [curriculum_weight(solved, 8, config) for solved in range(9)]
    assert all(a > b for a, b in pairwise(weights))
    assert curriculum_weight(0, 0, config) == pytest.approx(0.1 + 0.9 * 0.5)  # the prior
    no_prior = CurriculumConfig(floor=0.1, prior_strength=0.0)
    assert curriculum_weight(4, 4, no_prior) == pytest.approx(0.1)  # all solved: the floor
    assert curriculum_weight(0, 4, no_prior) == pytest.approx(1.0)
    sharp = CurriculumConfig(floor=0.0, prior_strength=0.0, sharpness=2.0)
    assert curriculum_weight(2, 4, sharp) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        curriculum_weight(5, 4)
    with pytest.raises(ValueError):
        CurriculumConfig(window=0)


def test_tracker_keeps_only_the_most_recent_rollouts() -> None:
    tracker = PassRateTracker(CurriculumConfig(window=3, solved_threshold=0.5))
    tracker.observe_rewards(["a"] * 3, [0.0, 0.0, 0.0])
    assert tracker.pass_rate("a") == 0.0
    tracker.observe_rewards(["a", "a", "a", "b"], [1.0, 1.0, 0.9, None])
    assert tracker.pass_rate("a") == 1.0  # the three failures left the window
    assert tracker.pass_rate("b") is None  # None rewards are not outcomes
    assert tracker.snapshot()["a"]["attempts"] == 3
    assert curriculum_weights(["a", "b"], tracker)[0] < curriculum_weights(["a", "b"], tracker)[1]


def test_recording_reward_feeds_the_tracker_and_returns_scores_unchanged() -> None:
    tracker = PassRateTracker()

    def task(completions, answer, **kwargs):
        return [1.0 if c == a else 0.0 for c, a in zip(completions, answer, strict=True)]

    recorded = recording_reward(task, tracker)
    assert recorded.__name__ == "task"  # TRL logs the reward under this name
    scores = recorded(["x", "y", "x", "x"], answer=["x", "x", "x", "x"], qa_id=["p", "p", "q", "q"])
    assert scores == [1.0, 0.0, 1.0, 1.0]
    assert tracker.pass_rate("p") == 0.5 and tracker.pass_rate("q") == 1.0


def test_sampler_keeps_trl_group_layout() -> None:
    tracker = PassRateTracker()
    sampler = CurriculumSampler(
        [f"p{i}" for i in range(7)], tracker, mini_repeat_count=2, batch_size=3, repeat_count=2
    )
    indices = list(sampler)
    assert len(indices) == len(sampler) == 6 * 2 * 2
    for start in range(0, len(indices), 12):
        block = indices[start : start + 12]
        first = block[:6]
        assert block[6:] == first  # the batch is repeated repeat_count times
        assert first[0::2] == first[1::2]  # each prompt twice in a row: one group
        assert len(set(first)) == 3
    assert len(set(indices)) == 6  # without replacement within a pass


def test_solved_prompts_are_drawn_later_and_less_often() -> None:
    ids = [f"p{i}" for i in range(10)]
    tracker = PassRateTracker(CurriculumConfig(floor=0.05))
    for pid in ids[:5]:  # p0..p4 solved in every recent rollout
        for _ in range(8):
            tracker.observe(pid, True)
    for pid in ids[5:]:
        for _ in range(8):
            tracker.observe(pid, False)
    sampler = CurriculumSampler(ids, tracker, batch_size=5, seed=3)
    first_batch: Counter[str] = Counter()
    for _ in range(400):
        order = sampler.order()
        first_batch.update(ids[i] for i in order[:5])
    solved = sum(first_batch[p] for p in ids[:5])
    unsolved = sum(first_batch[p] for p in ids[5:])
    assert unsolved > 3 * solved
    # with no history every prompt is equally likely
    even = CurriculumSampler(ids, PassRateTracker(), batch_size=5, seed=3)
    counts: Counter[int] = Counter()
    for _ in range(400):
        counts.update(even.order()[:5])
    assert min(counts.values()) > 120 and max(counts.values()) < 280


def test_sampler_follows_new_outcomes_between_passes() -> None:
    ids = ["easy", "hard"]
    tracker = PassRateTracker(CurriculumConfig(floor=0.0, prior_strength=0.0))
    sampler = CurriculumSampler(ids, tracker, batch_size=1, seed=0)
    tracker.observe("easy", True)
    tracker.observe("hard", False)
    assert [sampler.order()[0] for _ in range(20)] == [1] * 20  # weight 0 comes last
