"""Tool-use and usage statistics of an evaluation run, read from its linked trajectories.

The accuracy metrics (:mod:`medresearcher.evaluation.metrics`) need only graded results; these
need the trajectories the results link to (``EvalResult.trajectory_id``): how many tools a
rollout called, which came first, whether it switched between general and medical tools and
recovered from tool errors (paper §4.1), and what the run cost in tokens, money and time.
Kept apart so the pass@k code stays small; every function is pure, records in, numbers out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from medresearcher.schema import EvalResult, Trajectory

__all__ = ["distribution", "tool_use", "trajectory_calls", "usage_summary"]


def distribution(values: Iterable[float | None]) -> dict[str, Any]:
    """n, mean, p50, p95 and max of the values that are not ``None``."""
    data = np.asarray([v for v in values if v is not None], dtype=float)
    if data.size == 0:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "max": None}
    p50, p95 = np.percentile(data, [50, 95])
    return {
        "n": int(data.size),
        "mean": float(data.mean()),
        "p50": float(p50),
        "p95": float(p95),
        "max": float(data.max()),
    }


def trajectory_calls(trajectory: Trajectory) -> dict[str, Any]:
    """Tool-use facts of one trajectory: from ``stats`` (agent/record.py), else its messages."""
    stats = trajectory.stats
    if "tool_calls" in stats:
        return {
            "tool_calls": int(stats["tool_calls"]),
            "by_tool": dict(stats.get("tool_calls_by_tool") or {}),
            "first_tool": stats.get("first_tool"),
            "switched": bool(stats.get("switched", False)),
            "errors": int(stats.get("errors", 0)),
            "recovered_errors": int(stats.get("recovered_errors", 0)),
            "turns": stats.get("turns"),
        }
    names = [
        (call.get("function") or {}).get("name")
        for message in trajectory.messages
        if message.get("role") == "assistant"
        for call in message.get("tool_calls") or []
    ]
    names = [name for name in names if name]
    turns = sum(1 for message in trajectory.messages if message.get("role") == "assistant")
    return {
        "tool_calls": len(names),
        "by_tool": dict(Counter(names)),
        "first_tool": names[0] if names else None,
        "switched": False,
        "errors": 0,
        "recovered_errors": 0,
        "turns": turns,
    }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def tool_use(
    results: Sequence[EvalResult], trajectories: Mapping[str, Trajectory]
) -> dict[str, Any] | None:
    """Tool-use statistics of the trajectories the results link to (paper §4.1).

    ``first_tool_medical_retriever_share`` and ``switched_share`` are shares of the
    trajectories that called at least one tool; ``accuracy_by_calls`` maps a number of tool
    calls to the accuracy of the results whose trajectory made that many. ``None`` when no
    result links to a known trajectory.
    """
    linked = [
        (r, trajectories[r.trajectory_id]) for r in results if r.trajectory_id in trajectories
    ]
    if not linked:
        return None
    facts = [(r, trajectory_calls(t), t) for r, t in linked]
    calls = [f["tool_calls"] for _, f, _ in facts]
    with_calls = [f for _, f, _ in facts if f["tool_calls"] > 0]
    by_tool: Counter[str] = Counter()
    for _, f, _ in facts:
        by_tool.update(f["by_tool"])
    per_item: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_calls: dict[int, list[bool]] = defaultdict(list)
    for r, f, _ in facts:
        per_item[(r.benchmark, r.item_id)].append(f["tool_calls"])
        by_calls[f["tool_calls"]].append(r.verdict == "correct")
    errors = sum(f["errors"] for _, f, _ in facts)
    recovered = sum(f["recovered_errors"] for _, f, _ in facts)
    return {
        "trajectories": len(linked),
        "unlinked_results": len(results) - len(linked),
        "with_tool_calls": len(with_calls),
        "calls_per_rollout": distribution(calls),
        "calls_per_item": distribution(float(np.mean(v)) for v in per_item.values()),
        "histogram": {str(n): c for n, c in sorted(Counter(calls).items())},
        "by_tool": dict(sorted(by_tool.items())),
        "first_tool": dict(Counter(f["first_tool"] for f in with_calls).most_common()),
        "first_tool_medical_retriever_share": _share(
            sum(f["first_tool"] == "medical_retriever" for f in with_calls), len(with_calls)
        ),
        "switched_share": _share(sum(f["switched"] for f in with_calls), len(with_calls)),
        "errors": errors,
        "recovered_errors": recovered,
        "recovery_rate": _share(recovered, errors),
        "turns": distribution(f["turns"] for _, f, _ in facts),
        "termination": dict(Counter(t.termination for _, _, t in facts).most_common()),
        "accuracy_by_calls": {
            str(n): {"results": len(v), "correct": sum(v), "accuracy": float(np.mean(v))}
            for n, v in sorted(by_calls.items())
        },
    }


def usage_summary(
    results: Sequence[EvalResult], trajectories: Mapping[str, Trajectory] | None = None
) -> dict[str, Any]:
    """Tokens, cost (USD) and latency (s) per result.

    A result's own ``usage`` / ``latency_s`` win; when empty, its trajectory's ``usage`` /
    ``stats["elapsed_s"]`` stand in. The cost total is ``None`` when no usage carries a price.
    """
    trajectories = trajectories or {}
    prompt = completion = total = 0
    costs: list[float] = []
    per_result_tokens: list[float] = []
    latencies: list[float | None] = []
    for r in results:
        traj = trajectories.get(r.trajectory_id or "")
        usage = r.usage or (traj.usage if traj else {})
        p, c = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        t = int(usage.get("total_tokens") or p + c)
        prompt, completion, total = prompt + p, completion + c, total + t
        if usage:
            per_result_tokens.append(t)
        if usage.get("cost_usd") is not None:
            costs.append(float(usage["cost_usd"]))
        latency = r.latency_s
        if latency is None and traj is not None:
            latency = traj.stats.get("elapsed_s")
        latencies.append(latency)
    items = len({(r.benchmark, r.item_id) for r in results})
    return {
        "tokens": {
            "prompt": prompt,
            "completion": completion,
            "total": total,
            "per_result": distribution(per_result_tokens),
        },
        "cost_usd": {
            "total": sum(costs) if costs else None,
            "per_item": sum(costs) / items if costs and items else None,
            "priced_results": len(costs),
        },
        "latency_s": distribution(latencies),
    }
