"""Plots of an evaluation run's metrics: PNG bytes drawn from metrics.json alone.

Every plot is drawn from the metrics dict (matplotlib's Agg canvas via ``Figure``, no pyplot
state), so a number on a plot is a number in metrics.json. :mod:`.report` embeds them in the
HTML report and saves them beside it; :mod:`.compare` draws one bar chart of several runs.
Kept apart so matplotlib is imported only where a figure is drawn.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_CATEGORIES", "bar_with_ci", "plot_name", "render_plots"]

MAX_CATEGORIES = 40


def plot_name(key: str) -> str:
    """The file name of the accuracy plot of breakdown ``key`` (safe for any label)."""
    return "accuracy_by_" + re.sub(r"[^A-Za-z0-9_-]+", "_", key) + ".png"


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def bar_with_ci(title: str, labels: list[str], blocks: list[Mapping[str, Any]]) -> bytes:
    """Horizontal bars of avg pass@1 with their bootstrap intervals as error bars."""
    values = [b["avg_pass@1"] or 0.0 for b in blocks]
    low = [max(0.0, v - (b["ci"] or [v, v])[0]) for v, b in zip(values, blocks, strict=True)]
    high = [max(0.0, (b["ci"] or [v, v])[1] - v) for v, b in zip(values, blocks, strict=True)]
    fig = _figure(7.5, max(2.2, 0.38 * len(labels) + 1.2))
    ax = fig.add_subplot()
    positions = list(range(len(labels)))[::-1]
    ax.barh(positions, values, xerr=[low, high], color="#4c72b0", capsize=3)
    for y, v in zip(positions, values, strict=True):
        ax.annotate(f"{100 * v:.1f} %", (v, y), xytext=(4, 4), textcoords="offset points",
                    fontsize=8)  # fmt: skip
    ax.set_yticks(positions, labels=labels)
    ax.set_xlim(0, 1)
    ax.set_xlabel("avg pass@1 (bars: 95 % bootstrap CI over items)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def render_plots(metrics: Mapping[str, Any]) -> dict[str, bytes]:
    """PNG bytes of every plot, by file name: accuracy per breakdown key (or overall), the
    tool-call histogram and accuracy against the number of tool calls (with trajectories)."""
    plots: dict[str, bytes] = {}
    for key, groups in metrics["by"].items():
        labels = list(groups)
        if len(labels) > MAX_CATEGORIES:
            labels = sorted(labels, key=lambda g: -groups[g]["items"])[:MAX_CATEGORIES]
        blocks = [groups[g] for g in labels]
        # "$" would start matplotlib's mathtext: category labels are data, shown as is
        names = [f"{g[:40]} (n={groups[g]['items']})".replace("$", r"\$") for g in labels]
        title = f"Accuracy by {key}".replace("$", r"\$")
        plots[plot_name(key)] = bar_with_ci(title, names, blocks)
    if not metrics["by"]:
        overall = metrics["accuracy"]
        plots[plot_name("overall")] = bar_with_ci(
            "Accuracy", [f"all (n={overall['items']})"], [overall]
        )
    tools = metrics.get("tool_use")
    if tools:
        from matplotlib.ticker import MaxNLocator

        counts = [int(n) for n in tools["histogram"]]
        fig = _figure(6.5, 3.2)
        ax = fig.add_subplot()
        ax.bar(counts, list(tools["histogram"].values()), color="#55a868")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("tool calls in a rollout")
        ax.set_ylabel("rollouts")
        ax.set_title("Tool calls per rollout")
        plots["tool_calls_histogram.png"] = _png(fig)
        by_calls = tools["accuracy_by_calls"]
        fig = _figure(6.5, 3.2)
        ax = fig.add_subplot()
        xs = [int(n) for n in by_calls]
        ys = [v["accuracy"] for v in by_calls.values()]
        ax.bar(xs, ys, color="#c44e52")
        for x, y, v in zip(xs, ys, by_calls.values(), strict=True):
            ax.annotate(f"n={v['results']}", (x, y), ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, 1.1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("tool calls in a rollout")
        ax.set_ylabel("accuracy")
        ax.set_title("Accuracy against the number of tool calls")
        plots["accuracy_by_tool_calls.png"] = _png(fig)
    return plots
