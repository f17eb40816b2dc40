"""Reports of an evaluation run (issue 10 item 5): metrics.json, report.md, report.html, plots.

The report is built once as a list of sections whose cells name the metrics.json entry they
show (the ``data-metric`` / ``data-value`` attributes of the HTML), and is then rendered as
Markdown and as one self-contained HTML page: inline CSS, plots as base64 PNG data URIs, no
script and no network, every piece of text escaped (predictions are model output).
The plots are drawn from the metrics alone (matplotlib's Agg canvas, no pyplot state), so a
number on a plot is a number in metrics.json; each is also saved as a PNG beside the report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medresearcher.errors import InputError
from medresearcher.evaluation.metrics import compute_metrics, trajectory_calls
from medresearcher.schema import EvalResult, Trajectory
from medresearcher.workspace import read_jsonl

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

log = logging.getLogger(__name__)

MAX_RESULT_ROWS = 1000
MAX_CATEGORIES = 40
_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ddd}table{border-collapse:collapse;
margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 8px;vertical-align:top;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.text{max-width:420px;white-space:pre-wrap;word-break:break-word}img{max-width:100%}
tr.incorrect td:nth-child(3){color:#b00}tr.correct td:nth-child(3){color:#070}
tr.unjudgeable td:nth-child(3){color:#a60}td.best{font-weight:bold}.note{color:#666}"""


# ---------------------------------------------------------------------------- formatting


def fmt_value(value: Any, kind: str) -> str:
    """A metric as people read it: ``pct`` (share → %), ``ci``, ``int``, ``float``, ``usd``,
    ``s`` (seconds) or ``text``; ``–`` for a missing value."""
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f} %"
    if kind == "ci":
        return f"[{100 * value[0]:.1f}, {100 * value[1]:.1f}] %"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "float":
        return f"{value:,.2f}"
    if kind == "usd":
        return f"${value:,.4f}"
    if kind == "s":
        return f"{value:,.2f} s"
    return str(value)


def _lookup(data: Any, path: Sequence[str]) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


@dataclass
class Cell:
    """One table cell; ``path`` names the metrics.json entry it shows, when it shows one."""

    text: str
    path: tuple[str, ...] | None = None
    value: Any = None
    numeric: bool = False


@dataclass
class Section:
    title: str
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    note: str = ""
    row_classes: list[str] = field(default_factory=list)


def _m(metrics: Mapping[str, Any], path: Sequence[str], kind: str) -> Cell:
    value = _lookup(metrics, path)
    return Cell(fmt_value(value, kind), tuple(path), value, numeric=kind != "text")


def _t(text: Any) -> Cell:
    return Cell(str(text))


def _plot_name(key: str) -> str:
    return "accuracy_by_" + re.sub(r"[^A-Za-z0-9_-]+", "_", key) + ".png"


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
        row = [_t(label), _m(metrics, (*prefix, *path), kind)]
        if detail:
            row.append(_m(metrics, (*prefix, *detail[0]), detail[1]) if detail[0] else _t(""))
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
            [_t(r), _m(metrics, (*path, "value"), "pct"), _m(metrics, (*path, "items"), "int")]
        )
    for key, groups in metrics["by"].items():
        headers = [key, "items", "avg pass@1", "95 % CI", *(f"pass@{k}" for k in ks)]
        section = Section(f"Accuracy by {key}", headers, plots=[_plot_name(key)])
        for label in groups:
            path = ("by", key, label)
            cells = [("items", "int"), ("avg_pass@1", "pct"), ("ci", "ci")]
            section.rows.append(
                [_t(label)]
                + [_m(metrics, (*path, name), kind) for name, kind in cells]
                + [_m(metrics, (*path, "pass@k", k, "value"), "pct") for k in ks]
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
        section.rows.append([_t(t) for t in texts] + [_t(calls.get(r.trajectory_id or "", "–"))])
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


# ---------------------------------------------------------------------------- plots


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _bar_with_ci(title: str, labels: list[str], blocks: list[Mapping[str, Any]]) -> bytes:
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
        plots[_plot_name(key)] = _bar_with_ci(title, names, blocks)
    if not metrics["by"]:
        overall = metrics["accuracy"]
        plots[_plot_name("overall")] = _bar_with_ci(
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


# ---------------------------------------------------------------------------- rendering


def _md_text(text: str) -> str:
    return html.escape(text).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _markdown(title: str, sections: list[Section], plots: Mapping[str, bytes]) -> str:
    lines = [f"# {_md_text(title)}", ""]
    for section in sections:
        lines += [f"## {_md_text(section.title)}", ""]
        lines.append("| " + " | ".join(_md_text(h) for h in section.headers) + " |")
        lines.append("|" + "---|" * len(section.headers))
        lines += ["| " + " | ".join(_md_text(c.text) for c in row) + " |" for row in section.rows]
        lines.append("")
        if section.note:
            lines += [f"_{_md_text(section.note)}_", ""]
        lines += [f"![{name}]({name})" for name in section.plots if name in plots]
        lines.append("")
    return "\n".join(lines)


def _html_cell(cell: Cell, extra_class: str = "") -> str:
    attrs = ""
    if cell.path is not None:
        path, value = json.dumps(list(cell.path)), json.dumps(cell.value)
        attrs = f' data-metric="{html.escape(path)}" data-value="{html.escape(value)}"'
    classes = " ".join(c for c in ("num" if cell.numeric else "text", extra_class) if c)
    return f'<td class="{classes}"{attrs}>{html.escape(cell.text)}</td>'


def _html_table(section: Section, best: Sequence[int | None] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in section.headers)
    body = []
    for i, row in enumerate(section.rows):
        css = section.row_classes[i] if i < len(section.row_classes) else ""
        mark = best[i] if i < len(best) else None
        cells = "".join(
            _html_cell(c, "best" if mark is not None and j == mark + 1 else "")
            for j, c in enumerate(row)
        )
        body.append(f'<tr class="{html.escape(css)}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>" + "\n".join(body) + "</body></html>\n"
    )


def _img(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img alt="{html.escape(name)}" src="data:image/png;base64,{data}"></p>'


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
        _markdown(title, sections, plots) + f"\n_Generated {stamp}._\n", encoding="utf-8"
    )
    body = [
        f'<p class="note">Generated {html.escape(stamp)} from results.jsonl; '
        "numbers as in metrics.json.</p>"
    ]
    for section in sections:
        body += [f"<h2>{html.escape(section.title)}</h2>", _html_table(section)]
        if section.note:
            body.append(f'<p class="note">{html.escape(section.note)}</p>')
        body += [_img(name, plots[name]) for name in section.plots if name in plots]
    paths["html"] = run_dir / "report.html"
    paths["html"].write_text(_html_page(title, body), encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------- comparison


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
        values = [_lookup(m, path) for m in all_metrics]
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
            [_t(row["label"])]
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
    return _markdown("Comparison: " + ", ".join(table["runs"]), sections, {})


def _compare_plot(table: Mapping[str, Any]) -> bytes:
    rows = {tuple(row["path"]): row["values"] for row in table["rows"]}
    values, cis = rows[("accuracy", "avg_pass@1")], rows[("accuracy", "ci")]
    blocks = [{"avg_pass@1": v, "ci": ci} for v, ci in zip(values, cis, strict=True)]
    names = [run.replace("$", r"\$") for run in table["runs"]]
    return _bar_with_ci("avg pass@1 by run", names, blocks)


def compare_html(table: Mapping[str, Any]) -> str:
    """The comparison as one self-contained HTML page with an accuracy plot."""
    sections, best = _compare_sections(table)
    body = [_img("compare_accuracy.png", _compare_plot(table))]
    for section, marks in zip(sections, best, strict=True):
        body += [f"<h2>{html.escape(section.title)}</h2>", _html_table(section, marks)]
    return _html_page("Comparison: " + ", ".join(table["runs"]), body)


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
