"""Comparison of evaluation runs (``eval compare``): their metrics side by side.

Each run's metrics.json (computed from its results.jsonl when missing or stale) gives one
column; rows where higher or lower is better mark the best run. The table is written as
compare.json for machines and as Markdown and one self-contained HTML page for people, with
the same cells and rendering as a run report (:mod:`.tables`).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medresearcher.errors import InputError
from medresearcher.evaluation.metrics import compute_metrics
from medresearcher.evaluation.plots import bar_with_ci
from medresearcher.evaluation.tables import (
    Cell,
    Section,
    fmt_value,
    html_image,
    html_page,
    html_table,
    lookup,
    render_markdown,
    text_cell,
)
from medresearcher.schema import EvalResult, Trajectory
from medresearcher.workspace import read_jsonl

__all__ = [
    "compare_html",
    "compare_markdown",
    "compare_runs",
    "comparison_table",
    "load_run_metrics",
    "write_comparison",
]

log = logging.getLogger(__name__)


def load_run_metrics(run_dir: str | Path) -> dict[str, Any]:
    """A run's metrics.json; computed from its results.jsonl (and the linked trajectories at
    ``<workspace>/trajectories/<run>.jsonl``) when it is missing or older than the results."""
    run_dir = Path(run_dir)
    metrics_path, results_path = run_dir / "metrics.json", run_dir / "results.jsonl"
    if metrics_path.is_file() and (
        not results_path.is_file() or metrics_path.stat().st_mtime >= results_path.stat().st_mtime
    ):
        return json.loads(metrics_path.read_text(encoding="utf-8"))
    if not results_path.is_file():
        raise InputError(f"{run_dir}: neither metrics.json nor results.jsonl (not an eval run?)")
    log.info("%s: computing metrics from results.jsonl", run_dir)
    traj_path = run_dir.parent.parent / "trajectories" / f"{run_dir.name}.jsonl"
    trajectories = list(read_jsonl(traj_path, Trajectory)) if traj_path.is_file() else None
    return compute_metrics(read_jsonl(results_path, EvalResult), trajectories)


# (label, path, format, higher is better)
_COMPARE_ROWS: list[tuple[str, tuple[str, ...], str, bool | None]] = [
    ("items", ("counts", "items"), "int", None),
    ("rollouts per item", ("counts", "rollouts"), "int", None),
    ("avg pass@1", ("accuracy", "avg_pass@1"), "pct", True),
    ("avg pass@1, 95 % CI", ("accuracy", "ci"), "ci", None),
    ("best pass@1 (comparison only)", ("accuracy", "best_pass@1", "value"), "pct", True),
    ("unjudgeable", ("verdicts", "unjudgeable_share"), "pct", False),
    ("no answer", ("verdicts", "no_answer_share"), "pct", False),
    ("graded by rules", ("graders", "rule"), "pct", None),
    ("tool calls per rollout", ("tool_use", "calls_per_rollout", "mean"), "float", None),
    (
        "first tool medical_retriever",
        ("tool_use", "first_tool_medical_retriever_share"),
        "pct",
        None,
    ),
    ("switched tools", ("tool_use", "switched_share"), "pct", None),
    ("error recovery rate", ("tool_use", "recovery_rate"), "pct", True),
    ("tokens per result", ("usage", "tokens", "per_result", "mean"), "float", False),
    ("cost, total", ("usage", "cost_usd", "total"), "usd", False),
    ("latency p50", ("usage", "latency_s", "p50"), "s", False),
    ("latency p95", ("usage", "latency_s", "p95"), "s", False),
]


def comparison_table(metrics_by_run: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Side-by-side rows of several runs' metrics: ``{"runs": [...], "rows": [{"section",
    "label", "path", "format", "values", "best"}]}``; ``best`` is the index of the best run
    for rows where higher or lower is better (``None`` otherwise or on a tie)."""
    runs = list(metrics_by_run)
    all_metrics = list(metrics_by_run.values())
    specs = [("overall", label, path, kind, better) for label, path, kind, better in _COMPARE_ROWS]
    ks = sorted({k for m in all_metrics for k in m["accuracy"]["pass@k"]}, key=int)
    specs[3:3] = [
        ("overall", f"pass@{k}", ("accuracy", "pass@k", k, "value"), "pct", True) for k in ks
    ]
    keys = list(dict.fromkeys(key for m in all_metrics for key in m["by"]))
    for key in keys:
        labels = list(dict.fromkeys(label for m in all_metrics for label in m["by"].get(key, {})))
        specs += [
            (f"by {key}", label, ("by", key, label, "avg_pass@1"), "pct", True) for label in labels
        ]
    rows = []
    for section, label, path, kind, better in specs:
        values = [lookup(m, path) for m in all_metrics]
        best = None
        present = [v for v in values if v is not None]
        if better is not None and len(present) > 1:
            top = max(present) if better else min(present)
            if sum(v == top for v in present) == 1:
                best = values.index(top)
        rows.append(
            {
                "section": section,
                "label": label,
                "path": list(path),
                "format": kind,
                "values": values,
                "best": best,
            }
        )
    return {"runs": runs, "rows": rows}


def compare_runs(run_dirs: Sequence[str | Path]) -> dict[str, Any]:
    """:func:`comparison_table` of the runs in ``run_dirs`` (named by their folder names)."""
    names = [Path(d).name for d in run_dirs]
    if len(set(names)) != len(names):
        raise InputError(f"compare needs distinct runs (got {names})")
    return comparison_table({Path(d).name: load_run_metrics(d) for d in run_dirs})


def _compare_sections(table: Mapping[str, Any]) -> tuple[list[Section], list[list[int | None]]]:
    sections: dict[str, Section] = {}
    best: dict[str, list[int | None]] = {}
    for row in table["rows"]:
        section = sections.setdefault(
            row["section"], Section(row["section"], ["metric", *table["runs"]])
        )
        section.rows.append(
            [text_cell(row["label"])]
            + [
                Cell(fmt_value(v, row["format"]), (str(i), *row["path"]), v, numeric=True)
                for i, v in enumerate(row["values"])
            ]
        )
        best.setdefault(row["section"], []).append(row["best"])
    return list(sections.values()), list(best.values())


def compare_markdown(table: Mapping[str, Any]) -> str:
    """The comparison as Markdown tables (the best value of a row in bold)."""
    sections, best = _compare_sections(table)
    for section, marks in zip(sections, best, strict=True):
        for row, mark in zip(section.rows, marks, strict=True):
            if mark is not None:
                row[mark + 1].text = f"**{row[mark + 1].text}**"
    return render_markdown("Comparison: " + ", ".join(table["runs"]), sections, {})


def _compare_plot(table: Mapping[str, Any]) -> bytes:
    rows = {tuple(row["path"]): row["values"] for row in table["rows"]}
    values, cis = rows[("accuracy", "avg_pass@1")], rows[("accuracy", "ci")]
    blocks = [{"avg_pass@1": v, "ci": ci} for v, ci in zip(values, cis, strict=True)]
    names = [run.replace("$", r"\$") for run in table["runs"]]
    return bar_with_ci("avg pass@1 by run", names, blocks)


def compare_html(table: Mapping[str, Any]) -> str:
    """The comparison as one self-contained HTML page with an accuracy plot."""
    sections, best = _compare_sections(table)
    body = [html_image("compare_accuracy.png", _compare_plot(table))]
    for section, marks in zip(sections, best, strict=True):
        body += [f"<h2>{html.escape(section.title)}</h2>", html_table(section, marks)]
    return html_page("Comparison: " + ", ".join(table["runs"]), body)


def write_comparison(table: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write compare.md, compare.html and compare.json into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "compare.md",
        "html": out_dir / "compare.html",
        "json": out_dir / "compare.json",
    }
    writers: dict[str, Callable[[Mapping[str, Any]], str]] = {
        "markdown": compare_markdown,
        "html": compare_html,
        "json": lambda t: json.dumps(t, indent=2, ensure_ascii=False) + "\n",
    }
    for name, path in paths.items():
        path.write_text(writers[name](table), encoding="utf-8")
    return paths
