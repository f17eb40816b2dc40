"""Evaluation metrics over graded results (issue 10 item 4; paper §5 reports pass@1).

Every function here is pure: records in, plain numbers out. :func:`compute_metrics` assembles
them into the JSON-ready dict that ``metrics.json``, the reports and ``eval compare`` read.
Tool-use and usage statistics (from trajectories) live in :mod:`.tool_use` and are re-exported.

Vocabulary (it differs between papers; see docs/benchmarks-and-grading.md §3.4):

- **avg pass@1** — the mean over items of ``c/n`` (n rollouts, c correct); with every item
  run for every rollout this is the mean of the per-rollout accuracies ("Avg@n",
  "Average_Pass@1"). It is the headline number.
- **pass@k** — the unbiased estimator of Chen et al. (2021), eq. 1:
  ``1 − C(n−c, k)/C(n, k)`` averaged over the items that have ``n ≥ k`` rollouts. With
  ``n == k`` it is the share of items with at least one correct rollout ("Pass@3").
- **best pass@1** — the accuracy of the best single rollout index ("Highest_Pass@1"); an
  optimistic number, reported for comparison only.

An ``unjudgeable`` verdict counts as wrong and is reported on its own. Confidence intervals
are percentile bootstraps that resample items, never rollouts, since rollouts of one item are
not independent.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medresearcher.errors import InputError
from medresearcher.evaluation.tool_use import (
    distribution,
    tool_use,
    trajectory_calls,
    usage_summary,
)
from medresearcher.schema import EvalResult, Trajectory

__all__ = [
    "DEFAULT_BREAKDOWN_KEYS",
    "METRICS_SCHEMA",
    "ItemOutcome",
    "accuracy_block",
    "best_pass_at_1",
    "bootstrap_ci",
    "breakdown",
    "compute_metrics",
    "distribution",
    "grader_shares",
    "item_outcomes",
    "pass_at_k",
    "per_rollout_accuracy",
    "tool_use",
    "trajectory_calls",
    "usage_summary",
    "verdict_counts",
]

log = logging.getLogger(__name__)

METRICS_SCHEMA = "medresearcher.eval-metrics/1"
DEFAULT_BREAKDOWN_KEYS = (
    "benchmark",
    "task",
    "hops",
    "paradigm",
    "specialties",
    "level",
    "language",
    "na_gold",
)
MISSING = "(missing)"


@dataclass(frozen=True)
class ItemOutcome:
    """One benchmark item: which of its rollouts were graded correct, and its metadata."""

    benchmark: str
    item_id: str
    correct: dict[int, bool]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.correct)

    @property
    def c(self) -> int:
        return sum(self.correct.values())


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one item: ``1 − C(n−c, k) / C(n, k)`` (Chen et al. 2021, eq. 1).

    Computed as the product ``1 − ∏_{i=n−c+1}^{n} (1 − k/i)``, which never forms the large
    binomials. Raises ``ValueError`` unless ``0 ≤ c ≤ n`` and ``1 ≤ k ≤ n``.
    """
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def item_outcomes(results: Iterable[EvalResult]) -> list[ItemOutcome]:
    """Group results by (benchmark, item id); a repeated (item, rollout) keeps the last one."""
    correct: dict[tuple[str, str], dict[int, bool]] = defaultdict(dict)
    metadata: dict[tuple[str, str], dict[str, Any]] = {}
    repeats = 0
    for result in results:
        key = (result.benchmark, result.item_id)
        repeats += result.rollout in correct[key]
        correct[key][result.rollout] = result.verdict == "correct"
        metadata.setdefault(key, {}).update(result.metadata)
    if repeats:
        log.warning(
            "%d results repeat an (item, rollout) already seen; the last one counts", repeats
        )
    return [
        ItemOutcome(key[0], key[1], dict(sorted(correct[key].items())), metadata[key])
        for key in correct
    ]


def per_rollout_accuracy(items: Sequence[ItemOutcome]) -> dict[int, dict[str, Any]]:
    """Rollout index → accuracy over the items that have that rollout, and their number."""
    by_rollout: dict[int, list[bool]] = defaultdict(list)
    for item in items:
        for rollout, ok in item.correct.items():
            by_rollout[rollout].append(ok)
    return {r: {"value": float(np.mean(v)), "items": len(v)} for r, v in sorted(by_rollout.items())}


def best_pass_at_1(items: Sequence[ItemOutcome]) -> dict[str, Any]:
    """The best single rollout index and its accuracy (optimistic: a max over rollouts)."""
    rollouts = per_rollout_accuracy(items)
    if not rollouts:
        return {"value": None, "rollout": None}
    best = max(rollouts, key=lambda r: (rollouts[r]["value"], -r))
    return {"value": rollouts[best]["value"], "rollout": best}


def bootstrap_ci(
    scores: Sequence[float], *, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> list[float] | None:
    """Percentile bootstrap interval of the mean of per-item ``scores``.

    Items are resampled with replacement (``numpy.random.default_rng(seed)``), so the same
    inputs and seed give the same interval. ``None`` when there are no scores or no resamples.
    """
    values = np.asarray(scores, dtype=float)
    if values.size == 0 or resamples <= 0:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // values.size)
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        means[start : start + rows] = values[
            rng.integers(0, values.size, (rows, values.size))
        ].mean(1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def accuracy_block(
    items: Sequence[ItemOutcome],
    *,
    k: Sequence[int] = (1, 3),
    bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """avg pass@1 and pass@k of a set of items, each with its bootstrap interval."""
    per_item = [item.c / item.n for item in items]
    block: dict[str, Any] = {
        "items": len(items),
        "results": sum(item.n for item in items),
        "correct": sum(item.c for item in items),
        "avg_pass@1": float(np.mean(per_item)) if per_item else None,
        "ci": bootstrap_ci(per_item, resamples=bootstrap, seed=seed, level=level),
        "pass@k": {},
    }
    for kk in k:
        scores = [pass_at_k(item.n, item.c, kk) for item in items if item.n >= kk]
        block["pass@k"][str(kk)] = {
            "value": float(np.mean(scores)) if scores else None,
            "ci": bootstrap_ci(scores, resamples=bootstrap, seed=seed, level=level),
            "items": len(scores),
        }
    return block


def _values_of(item: ItemOutcome, key: str) -> list[str]:
    """The category labels of one item under ``key`` (a dotted metadata path; lists fan out)."""
    if key == "benchmark":
        return [item.benchmark]
    value: Any = item.metadata
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return [MISSING]
    if isinstance(value, (list, tuple, set)):
        return [str(v) for v in value] or ["(none)"]
    if isinstance(value, Mapping):
        return [json.dumps(value, sort_keys=True)]
    return [str(value)]


def _category_order(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1 + (label == MISSING), 0.0, label)


def breakdown(
    items: Sequence[ItemOutcome],
    key: str,
    *,
    k: Sequence[int] = (1, 3),
    bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Accuracy per category of any metadata key (task, hops, paradigm, specialties, level…).

    List values (``specialties``) put an item in every category it names; items without the
    key form the ``(missing)`` category, so no item silently drops out. Numeric labels sort
    by value.
    """
    groups: dict[str, list[ItemOutcome]] = defaultdict(list)
    for item in items:
        for label in dict.fromkeys(_values_of(item, key)):
            groups[label].append(item)
    return {
        label: accuracy_block(groups[label], k=k, bootstrap=bootstrap, seed=seed, level=level)
        for label in sorted(groups, key=_category_order)
    }


def verdict_counts(results: Sequence[EvalResult]) -> dict[str, Any]:
    """Verdict counts; ``unjudgeable`` and ``no_answer`` (no prediction) also as shares."""
    counts = Counter(r.verdict for r in results)
    no_answer = sum(1 for r in results if not (r.prediction or "").strip())
    total = len(results)
    return {
        "correct": counts["correct"],
        "incorrect": counts["incorrect"],
        "unjudgeable": counts["unjudgeable"],
        "unjudgeable_share": counts["unjudgeable"] / total if total else None,
        "no_answer": no_answer,
        "no_answer_share": no_answer / total if total else None,
    }


def grader_shares(results: Sequence[EvalResult]) -> dict[str, Any]:
    """Which grader decided: shares of ``rule`` and ``llm`` (judge), and counts per grader."""
    counts = Counter(r.grader for r in results)
    kinds = Counter(r.grader.split(":", 1)[0] for r in results)
    total = len(results)
    return {
        "rule": kinds["rule"] / total if total else None,
        "llm": kinds["llm"] / total if total else None,
        "other": (total - kinds["rule"] - kinds["llm"]) / total if total else None,
        "counts": dict(sorted(counts.items())),
    }


def _json_ready(value: Any) -> Any:
    """Plain Python types, floats rounded to 6 digits, NaN as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), 6)
    return value


def compute_metrics(
    results: Iterable[EvalResult],
    trajectories: Iterable[Trajectory] | Mapping[str, Trajectory] | None = None,
    *,
    k: Sequence[int] = (1, 3),
    bootstrap: int = 1000,
    seed: int = 0,
    by: Sequence[str] | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """Every metric of one evaluation run, as the JSON-ready dict written to ``metrics.json``.

    Parameters
    ----------
    results
        The run's graded results (one per item and rollout).
    trajectories
        The linked trajectories (by ``EvalResult.trajectory_id``); without them the
        ``tool_use`` section is ``None`` and usage comes from the results alone.
    k
        The pass@k values to estimate; a k larger than an item's rollouts skips that item.
    bootstrap, seed, level
        Resamples, seed and level of the item-level bootstrap intervals (0 turns them off).
    by
        Metadata keys (dotted paths allowed) to break down by; default: those of
        :data:`DEFAULT_BREAKDOWN_KEYS` that some result carries (``benchmark`` only when
        there are several). MedBrowseComp's ``na_gold`` category ``False`` is its
        NA-excluded accuracy (docs/benchmarks-and-grading.md §1.2).
    """
    results = list(results)
    if not results:
        raise InputError("no results to measure: the results file is empty")
    ks = sorted({int(v) for v in k})
    if not ks or ks[0] < 1:
        raise InputError(f"pass@k needs k >= 1 (got {list(k)})")
    if trajectories is None:
        by_id: dict[str, Trajectory] = {}
    elif isinstance(trajectories, Mapping):
        by_id = dict(trajectories)
    else:
        by_id = {t.id: t for t in trajectories}
    items = item_outcomes(results)
    benchmarks = sorted({item.benchmark for item in items})
    if by is None:
        present = {key for r in results for key in r.metadata}
        by = [
            key
            for key in DEFAULT_BREAKDOWN_KEYS
            if key in present or (key == "benchmark" and len(benchmarks) > 1)
        ]
    options = {"k": ks, "bootstrap": bootstrap, "seed": seed, "level": level}
    accuracy = accuracy_block(items, **options)
    accuracy["best_pass@1"] = best_pass_at_1(items)
    accuracy["per_rollout"] = per_rollout_accuracy(items)
    metrics = {
        "schema": METRICS_SCHEMA,
        "benchmarks": benchmarks,
        "counts": {
            "results": len(results),
            "items": len(items),
            "rollouts": max(item.n for item in items),
            "min_rollouts": min(item.n for item in items),
        },
        "bootstrap": {"resamples": bootstrap, "seed": seed, "level": level, "unit": "item"},
        "accuracy": accuracy,
        "verdicts": verdict_counts(results),
        "graders": grader_shares(results),
        "by": {key: breakdown(items, key, **options) for key in by},
        "tool_use": tool_use(results, by_id),
        "usage": usage_summary(results, by_id),
    }
    return _json_ready(metrics)
