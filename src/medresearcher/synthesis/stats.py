"""Behaviour statistics over trajectories (paper §4.1), as numbers, a table and a chart.

The paper reports, for its synthesised trajectories: 78 % start with the medical retriever on
rare entities, 42 % switch between general and medical tools, 34 % recover from an error, and
4.2 tool calls on average. :func:`summarise` computes the same quantities for a set of
trajectories, together with termination reasons and filter rejections by rule, so that a run
can be compared with the paper (:data:`PAPER_REFERENCE`) and with other runs.

Every number is recomputed from the messages (with the per-call error flags the agent recorded
in ``stats["calls"]``, when present), never read from ``Trajectory.stats`` alone: failure
augmentation and rewriting change a trajectory after the agent wrote its statistics.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from medresearcher.agent.record import CallRecord, behaviour_stats
from medresearcher.schema import Trajectory

__all__ = [
    "PAPER_REFERENCE",
    "BehaviourSummary",
    "call_records",
    "is_error_observation",
    "summarise",
    "trajectory_behaviour",
    "write_chart",
]

#: The values of paper §4.1, for side-by-side display.
PAPER_REFERENCE: dict[str, float] = {
    "start_medical_retriever": 0.78,
    "switching": 0.42,
    "error_recovery": 0.34,
    "tool_calls_mean": 4.2,
}

# An error observation as the tool box writes it ("Error: ..."), or as failure augmentation
# or another agent framework words it.
_ERROR_TEXT = re.compile(r"^\s*(?:error|错误)\s*[:：]", re.IGNORECASE)


def is_error_observation(text: str | None) -> bool:
    """Whether a tool message's text reports a failure (``Error: …`` / ``错误：…``)."""
    return bool(text) and bool(_ERROR_TEXT.match(text or ""))


def call_records(trajectory: Trajectory) -> list[CallRecord]:
    """One :class:`~medresearcher.agent.record.CallRecord` per tool call, in order.

    Built from the messages: the name from the assistant's ``tool_calls``, the error flag from
    the tool message with the call's id (its text, or the agent's own flag in
    ``stats["calls"]``). Malformed calls, which have no tool message, come from
    ``stats["calls"]`` and are placed after the calls of their turn. A call without a result
    is not an error here (the ``calls_paired`` filter rejects it).
    """
    recorded = [c for c in trajectory.stats.get("calls") or [] if isinstance(c, dict)]
    flagged = {c.get("call_id") for c in recorded if c.get("error") and c.get("call_id")}
    known_names = {(schema.get("function") or {}).get("name") for schema in trajectory.tools} - {
        None
    }
    results: dict[str, str] = {}
    for message in trajectory.messages:
        if message.get("role") == "tool" and message.get("tool_call_id") is not None:
            results.setdefault(str(message["tool_call_id"]), str(message.get("content") or ""))
    records: list[CallRecord] = []
    turn = 0
    for message in trajectory.messages:
        if message.get("role") != "assistant":
            continue
        turn += 1
        for call in message.get("tool_calls") or []:
            call_id = str(call.get("id") or "")
            name = str((call.get("function") or {}).get("name") or "") or None
            result = results.get(call_id)
            error = call_id in flagged or is_error_observation(result)
            known = name is not None and (not known_names or name in known_names)
            records.append(
                CallRecord(turn=turn, call_id=call_id, name=name, error=error, known=known)
            )
    malformed = [
        CallRecord(turn=int(c.get("turn") or 0), call_id=None, name=None, error=True, known=False)
        for c in recorded
        if c.get("call_id") is None
    ]
    return sorted([*records, *malformed], key=lambda call: call.turn)  # stable: order kept


def trajectory_behaviour(trajectory: Trajectory) -> dict[str, Any]:
    """:func:`~medresearcher.agent.record.behaviour_stats` of the trajectory as it is now."""
    return behaviour_stats(call_records(trajectory))


class BehaviourSummary(BaseModel):
    """Behaviour statistics of a set of trajectories (paper §4.1); shares are in [0, 1]."""

    trajectories: int = 0
    tool_calls_total: int = 0
    tool_calls_mean: float = 0.0
    tool_calls_median: float = 0.0
    tool_calls_histogram: dict[int, int] = Field(
        default_factory=dict, description="Tool calls in a trajectory → trajectories."
    )
    tool_calls_by_tool: dict[str, int] = Field(default_factory=dict)
    first_tool: dict[str, int] = Field(default_factory=dict, description="'none' = no call.")
    start_medical_retriever: float = Field(0.0, description="Share whose first call is it.")
    switching: float = Field(0.0, description="Share switching general ↔ medical tools.")
    with_errors: float = Field(0.0, description="Share with at least one tool error.")
    error_recovery: float = Field(
        0.0, description="Share with at least one error followed by a successful retry."
    )
    recovery_given_error: float | None = Field(
        None, description="Of the trajectories with an error, the share that recovered."
    )
    terminations: dict[str, int] = Field(default_factory=dict)
    guidance: dict[str, int] = Field(default_factory=dict, description="mtg / none counts.")
    filtered: int = Field(0, description="Trajectories with a filter verdict.")
    passed: int = 0
    rejected: int = 0
    rejections_by_rule: dict[str, int] = Field(
        default_factory=dict, description="Rule → rejected trajectories that failed it."
    )


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def summarise(
    trajectories: Iterable[Trajectory], *, filtered: Iterable[Trajectory] | None = None
) -> BehaviourSummary:
    """Behaviour statistics of ``trajectories`` (paper §4.1).

    Parameters
    ----------
    trajectories:
        The set whose behaviour is described (typically every rollout of a run).
    filtered:
        Where the filter verdicts are read from (``Trajectory.filters``); default the
        trajectories themselves. A trajectory may fail several rules: each rule counts it once.

    Returns
    -------
    BehaviourSummary
    """
    items = list(trajectories)
    behaviours = [trajectory_behaviour(t) for t in items]
    counts = [b["tool_calls"] for b in behaviours]
    total = len(items)
    by_tool: Counter[str] = Counter()
    for behaviour in behaviours:
        by_tool.update(behaviour["tool_calls_by_tool"])
    errored = sum(1 for b in behaviours if b["errors"])
    recovered = sum(1 for b in behaviours if b["recovered_errors"])
    verdicts = [t.filters for t in (items if filtered is None else filtered) if t.filters]
    rejections: Counter[str] = Counter()
    for verdict in verdicts:
        if not verdict.get("passed", False):
            rejections.update({str(r.get("rule")) for r in verdict.get("reasons") or []})
    passed = sum(1 for v in verdicts if v.get("passed"))
    return BehaviourSummary(
        trajectories=total,
        tool_calls_total=sum(counts),
        tool_calls_mean=statistics.fmean(counts) if counts else 0.0,
        tool_calls_median=float(statistics.median(counts)) if counts else 0.0,
        tool_calls_histogram=dict(sorted(Counter(counts).items())),
        tool_calls_by_tool=dict(by_tool.most_common()),
        first_tool=dict(Counter(b["first_tool"] or "none" for b in behaviours).most_common()),
        start_medical_retriever=_share(
            sum(1 for b in behaviours if b["first_tool"] == "medical_retriever"), total
        ),
        switching=_share(sum(1 for b in behaviours if b["switched"]), total),
        with_errors=_share(errored, total),
        error_recovery=_share(recovered, total),
        recovery_given_error=recovered / errored if errored else None,
        terminations=dict(Counter(t.termination for t in items).most_common()),
        guidance=dict(Counter(t.guidance for t in items).most_common()),
        filtered=len(verdicts),
        passed=passed,
        rejected=len(verdicts) - passed,
        rejections_by_rule=dict(rejections.most_common()),
    )


def write_chart(summary: BehaviourSummary, path: str | Path, *, title: str | None = None) -> Path:
    """Draw the summary as a PNG with four panels: tool calls per trajectory, the §4.1 shares
    against the paper's, termination reasons, and rejections by rule. Uses matplotlib's Agg
    backend, so it needs no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    hist_ax, share_ax, term_ax, reject_ax = axes.flat

    histogram = summary.tool_calls_histogram
    counts = list(range(max(histogram, default=0) + 1))
    hist_ax.bar(counts, [histogram.get(n, 0) for n in counts], color="#4c72b0")
    hist_ax.set_title(f"tool calls per trajectory (mean {summary.tool_calls_mean:.2f}; paper 4.2)")
    hist_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    hist_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    hist_ax.set_xlabel("tool calls")
    hist_ax.set_ylabel("trajectories")

    labels = [
        "start with\nmedical_retriever",
        "switch general\n↔ medical",
        "recover from\nan error",
    ]
    ours = [summary.start_medical_retriever, summary.switching, summary.error_recovery]
    paper = [PAPER_REFERENCE[k] for k in ("start_medical_retriever", "switching", "error_recovery")]
    positions = range(len(labels))
    share_ax.bar([p - 0.2 for p in positions], [100 * v for v in ours], 0.4, label="this run")
    share_ax.bar(
        [p + 0.2 for p in positions],
        [100 * v for v in paper],
        0.4,
        label="paper §4.1",
        color="#bbbbbb",
    )
    share_ax.set_xticks(list(positions), labels)
    share_ax.set_ylabel("% of trajectories")
    share_ax.set_ylim(0, 100)
    share_ax.set_title("behaviour")
    share_ax.legend()

    _bars(term_ax, summary.terminations, "termination", "#55a868")
    _bars(
        reject_ax,
        summary.rejections_by_rule,
        f"rejections by rule ({summary.rejected} of {summary.filtered} rejected)",
        "#c44e52",
    )

    fig.suptitle(title or f"{summary.trajectories} trajectories")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax: Any, counts: dict[str, int], title: str, color: str) -> None:
    from matplotlib.ticker import MaxNLocator

    if counts:
        names = list(counts)
        ax.barh(names[::-1], [counts[n] for n in names][::-1], color=color)
    else:
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title(title)
    ax.set_xlabel("trajectories")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
