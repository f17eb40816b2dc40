"""Reports of an evaluation run (issue 10 item 5): metrics.json, report.md, report.html, plots.

The report is built once as a list of sections (:mod:`.tables`) whose cells name the
metrics.json entry they show, and is then rendered as Markdown and as one self-contained HTML
page. The plots come from :mod:`.plots` and are also saved as PNGs beside the report; the
comparison of several runs lives in :mod:`.compare`. :func:`fmt_value`, :func:`render_plots`
and the comparison functions are re-exported here, where callers have always found them.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medresearcher.evaluation.compare import (
    compare_html,
    compare_markdown,
    compare_runs,
    comparison_table,
    load_run_metrics,
    write_comparison,
)
from medresearcher.evaluation.metrics import trajectory_calls
from medresearcher.evaluation.plots import plot_name, render_plots
from medresearcher.evaluation.tables import (
    Section,
    fmt_value,
    html_image,
    html_page,
    html_table,
    metric_cell,
    render_markdown,
    text_cell,
)
from medresearcher.schema import EvalResult, Trajectory

__all__ = [
    "compare_html",
    "compare_markdown",
    "compare_runs",
    "comparison_table",
    "fmt_value",
    "load_run_metrics",
    "render_plots",
    "write_comparison",
    "write_report",
]

MAX_RESULT_ROWS = 1000


# ---------------------------------------------------------------------------- sections


# (label, path in metrics.json, format[, path and format of a detail column])
_Spec = tuple[Any, ...]

_TOOL_ROWS: list[_Spec] = [
    ("linked trajectories", ("trajectories",), "int"),
    ("results without a trajectory", ("unlinked_results",), "int"),
    ("tool calls per rollout, mean", ("calls_per_rollout", "mean"), "float"),
    ("tool calls per rollout, p50", ("calls_per_rollout", "p50"), "float"),
    ("tool calls per rollout, p95", ("calls_per_rollout", "p95"), "float"),
    ("tool calls per item, mean", ("calls_per_item", "mean"), "float"),
    ("first tool is medical_retriever", ("first_tool_medical_retriever_share",), "pct"),
    ("switched general ↔ medical tools", ("switched_share",), "pct"),
    ("tool errors", ("errors",), "int"),
    ("recovered errors", ("recovered_errors",), "int"),
    ("recovery rate", ("recovery_rate",), "pct"),
    ("turns, mean", ("turns", "mean"), "float"),
]
_USAGE_ROWS: list[_Spec] = [
    ("prompt tokens", ("tokens", "prompt"), "int"),
    ("completion tokens", ("tokens", "completion"), "int"),
    ("tokens per result, mean", ("tokens", "per_result", "mean"), "float"),
    ("cost, total", ("cost_usd", "total"), "usd"),
    ("cost per item", ("cost_usd", "per_item"), "usd"),
    ("latency, mean", ("latency_s", "mean"), "s"),
    ("latency, p50", ("latency_s", "p50"), "s"),
    ("latency, p95", ("latency_s", "p95"), "s"),
]


def _spec_rows(metrics: Mapping[str, Any], prefix: tuple[str, ...], specs: list[_Spec]) -> list:
    rows = []
    for label, path, kind, *detail in specs:
        row = [text_cell(label), metric_cell(metrics, (*prefix, *path), kind)]
        if detail:
            row.append(
                metric_cell(metrics, (*prefix, *detail[0]), detail[1])
                if detail[0]
                else text_cell("")
            )
        rows.append(row)
    return rows


def _summary(metrics: Mapping[str, Any]) -> Section:
    best = metrics["accuracy"]["best_pass@1"]
    specs: list[_Spec] = [
        ("items", ("counts", "items"), "int", None, None),
        ("results", ("counts", "results"), "int", None, None),
        ("rollouts per item (max)", ("counts", "rollouts"), "int", None, None),
        ("avg pass@1", ("accuracy", "avg_pass@1"), "pct", ("accuracy", "ci"), "ci"),
    ]
    for k in metrics["accuracy"]["pass@k"]:
        path = ("accuracy", "pass@k", k)
        specs.append((f"pass@{k} (unbiased)", (*path, "value"), "pct", (*path, "ci"), "ci"))
    specs += [
        ("best pass@1 (comparison only)", ("accuracy", "best_pass@1", "value"), "pct", None, None),
        ("unjudgeable (counted wrong)", ("verdicts", "unjudgeable"), "int",
         ("verdicts", "unjudgeable_share"), "pct"),
        ("no answer", ("verdicts", "no_answer"), "int", ("verdicts", "no_answer_share"), "pct"),
        ("graded by rules", ("graders", "rule"), "pct", None, None),
        ("graded by the LLM judge", ("graders", "llm"), "pct", None, None),
    ]  # fmt: skip
    section = Section("Summary", ["metric", "value", "95 % CI / share"])
    section.rows = _spec_rows(metrics, (), specs)
    section.note = f"Best pass@1 is rollout {best['rollout']}: a max over rollouts, optimistic."
    return section


def _breakdowns(metrics: Mapping[str, Any]) -> list[Section]:
    ks = list(metrics["accuracy"]["pass@k"])
    sections = [Section("Accuracy per rollout", ["rollout", "accuracy", "items"])]
    for r in metrics["accuracy"]["per_rollout"]:
        path = ("accuracy", "per_rollout", r)
        sections[0].rows.append(
            [
                text_cell(r),
                metric_cell(metrics, (*path, "value"), "pct"),
                metric_cell(metrics, (*path, "items"), "int"),
            ]
        )
    for key, groups in metrics["by"].items():
        headers = [key, "items", "avg pass@1", "95 % CI", *(f"pass@{k}" for k in ks)]
        section = Section(f"Accuracy by {key}", headers, plots=[plot_name(key)])
        for label in groups:
            path = ("by", key, label)
            cells = [("items", "int"), ("avg_pass@1", "pct"), ("ci", "ci")]
            section.rows.append(
                [text_cell(label)]
                + [metric_cell(metrics, (*path, name), kind) for name, kind in cells]
                + [metric_cell(metrics, (*path, "pass@k", k, "value"), "pct") for k in ks]
            )
        sections.append(section)
    return sections


def _tool_section(metrics: Mapping[str, Any]) -> list[Section]:
    tools = metrics.get("tool_use")
    if not tools:
        return []
    plots = ["tool_calls_histogram.png", "accuracy_by_tool_calls.png"]
    section = Section("Tool use", ["metric", "value"], plots=plots)
    specs = list(_TOOL_ROWS)
    specs += [(f"calls of {name}", ("by_tool", name), "int") for name in tools["by_tool"]]
    specs += [(f"ended by {name}", ("termination", name), "int") for name in tools["termination"]]
    section.rows = _spec_rows(metrics, ("tool_use",), specs)
    section.note = (
        "Shares of first tool and switching are over the trajectories that called a tool."
    )
    return [section]


def _results_section(results: Sequence[EvalResult], calls: Mapping[str, int]) -> Section:
    headers = ["item", "rollout", "verdict", "grader", "prediction", "gold", "tool calls"]
    section = Section("Results", headers)
    ordered = sorted(results, key=lambda r: (r.benchmark, r.item_id, r.rollout))
    for r in ordered[:MAX_RESULT_ROWS]:
        prediction = r.prediction if r.prediction is not None else "(no answer)"
        shown = prediction[:400] + ("…" if len(prediction) > 400 else "")
        texts = [r.item_id, r.rollout, r.verdict, r.grader, shown, r.gold]
        section.rows.append(
            [text_cell(t) for t in texts] + [text_cell(calls.get(r.trajectory_id or "", "–"))]
        )
        section.row_classes.append(r.verdict)
    if len(ordered) > MAX_RESULT_ROWS:
        section.note = f"First {MAX_RESULT_ROWS} of {len(ordered)} results (results.jsonl has all)."
    return section


def _sections(
    metrics: Mapping[str, Any], results: Sequence[EvalResult], calls: Mapping[str, int]
) -> list[Section]:
    """The report's sections, in order; every number cell names its metrics.json path."""
    usage = Section("Tokens, cost and latency", ["metric", "value"])
    usage.rows = _spec_rows(metrics, ("usage",), _USAGE_ROWS)
    return [
        _summary(metrics),
        *_breakdowns(metrics),
        *_tool_section(metrics),
        usage,
        _results_section(results, calls),
    ]


def write_report(
    run_dir: str | Path,
    metrics: Mapping[str, Any],
    results: Sequence[EvalResult],
    trajectories: Sequence[Trajectory] | Mapping[str, Trajectory] | None = None,
    *,
    title: str | None = None,
) -> dict[str, Path]:
    """Write metrics.json, report.md, report.html and the plots (PNG) into ``run_dir``.

    Returns the written paths by name: ``metrics``, ``markdown``, ``html`` and one entry per
    plot file name.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(trajectories, Mapping):
        by_id = dict(trajectories)
    else:
        by_id = {t.id: t for t in trajectories or []}
    calls = {tid: trajectory_calls(t)["tool_calls"] for tid, t in by_id.items()}
    title = title or f"Evaluation {run_dir.name}: {', '.join(metrics['benchmarks'])}"
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sections = _sections(metrics, results, calls)
    plots = render_plots(metrics)
    paths: dict[str, Path] = {"metrics": run_dir / "metrics.json"}
    paths["metrics"].write_text(
        json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    for stale in [*run_dir.glob("accuracy_by_*.png"), run_dir / "tool_calls_histogram.png"]:
        if stale.name not in plots:  # a plot of an earlier report with other options
            stale.unlink(missing_ok=True)
    for name, png in plots.items():
        paths[name] = run_dir / name
        paths[name].write_bytes(png)
    paths["markdown"] = run_dir / "report.md"
    paths["markdown"].write_text(
        render_markdown(title, sections, plots) + f"\n_Generated {stamp}._\n", encoding="utf-8"
    )
    body = [
        f'<p class="note">Generated {html.escape(stamp)} from results.jsonl; '
        "numbers as in metrics.json.</p>"
    ]
    for section in sections:
        body += [f"<h2>{html.escape(section.title)}</h2>", html_table(section)]
        if section.note:
            body.append(f'<p class="note">{html.escape(section.note)}</p>')
        body += [html_image(name, plots[name]) for name in section.plots if name in plots]
    paths["html"] = run_dir / "report.html"
    paths["html"].write_text(html_page(title, body), encoding="utf-8")
    return paths
