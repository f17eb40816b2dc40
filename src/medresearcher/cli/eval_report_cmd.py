"""``medresearcher eval report | compare``: metrics, reports and plots of evaluation runs.

Plain typer-annotated functions; ``cli/eval_cmd.py`` registers them on the ``eval`` app.
Both read only files (no model), so they work offline on any finished or partial run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from medresearcher.cli.state import CliState, console, state_of
from medresearcher.errors import InputError
from medresearcher.schema import EvalResult, Trajectory
from medresearcher.workspace import read_jsonl

__all__ = ["compare", "comparison_rich_table", "report", "summary_rich_table"]


def _run_dir(state: CliState, run: str) -> Path:
    folder = state.ws.eval_dir(run)
    if not (folder / "results.jsonl").is_file() and not (folder / "metrics.json").is_file():
        raise InputError(
            f"{folder / 'results.jsonl'}: no such file (run `medresearcher eval run` first)"
        )
    return folder


def _parse_k(text: str) -> list[int]:
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"--k takes comma-separated integers (got {text!r})") from None
    if not ks or min(ks) < 1:
        raise typer.BadParameter(f"--k takes integers >= 1 (got {text!r})")
    return ks


def summary_rich_table(metrics: Mapping[str, Any], title: str = "") -> Table:
    """The headline numbers of one run as a rich table (what ``eval report`` prints)."""
    from medresearcher.evaluation.report import fmt_value  # numpy and matplotlib: lazily

    acc = metrics["accuracy"]
    table = Table("metric", "value", "95 % CI", title=escape(title), title_justify="left")
    counts = metrics["counts"]
    table.add_row("items × rollouts", f"{counts['items']} × {counts['rollouts']}", "")
    table.add_row("avg pass@1", fmt_value(acc["avg_pass@1"], "pct"), fmt_value(acc["ci"], "ci"))
    for k, block in acc["pass@k"].items():
        table.add_row(f"pass@{k}", fmt_value(block["value"], "pct"), fmt_value(block["ci"], "ci"))
    best = acc["best_pass@1"]
    table.add_row(
        "best pass@1", fmt_value(best["value"], "pct"), f"rollout {best['rollout']} (optimistic)"
    )
    verdicts, graders = metrics["verdicts"], metrics["graders"]
    table.add_row(
        "unjudgeable", str(verdicts["unjudgeable"]), fmt_value(verdicts["unjudgeable_share"], "pct")
    )
    table.add_row(
        "graded by rules / judge",
        f"{fmt_value(graders['rule'], 'pct')} / {fmt_value(graders['llm'], 'pct')}",
        "",
    )
    tools = metrics.get("tool_use")
    if tools:
        table.add_row(
            "tool calls per rollout", fmt_value(tools["calls_per_rollout"]["mean"], "float"), ""
        )
        table.add_row(
            "first tool medical_retriever",
            fmt_value(tools["first_tool_medical_retriever_share"], "pct"),
            "",
        )
    usage = metrics["usage"]
    table.add_row("cost", fmt_value(usage["cost_usd"]["total"], "usd"), "")
    latency = usage["latency_s"]
    p50, p95 = fmt_value(latency["p50"], "s"), fmt_value(latency["p95"], "s")
    table.add_row("latency p50 / p95", f"{p50} / {p95}", "")
    for key, groups in metrics["by"].items():
        for label, block in groups.items():
            table.add_row(
                escape(f"{key} = {label}"),
                fmt_value(block["avg_pass@1"], "pct"),
                f"{fmt_value(block['ci'], 'ci')}  n={block['items']}",
            )
    return table


def comparison_rich_table(table_data: Mapping[str, Any]) -> Table:
    """The side-by-side comparison as a rich table (best value of a row in bold)."""
    from medresearcher.evaluation.report import fmt_value

    table = Table("", "metric", *(escape(r) for r in table_data["runs"]), title="comparison")
    for row in table_data["rows"]:
        cells = [fmt_value(v, row["format"]) for v in row["values"]]
        if row["best"] is not None:
            cells[row["best"]] = f"[bold]{cells[row['best']]}[/]"
        table.add_row(escape(row["section"]), escape(row["label"]), *cells)
    return table


def report(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="Evaluation run name (<workspace>/eval/RUN)."),
    k: str = typer.Option("1,3", "--k", help="pass@k values, comma-separated."),
    by: list[str] | None = typer.Option(
        None,
        "--by",
        help="Metadata key to break down by (repeatable; default: task, hops, "
        "paradigm, specialties, level — those present).",
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap resamples (0: off)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    trajectories: Path | None = typer.Option(
        None,
        "--trajectories",
        dir_okay=False,
        help="Linked trajectories (default: <workspace>/trajectories/RUN.jsonl, if present).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json to stdout."),
) -> None:
    """Compute the metrics of RUN and write metrics.json, report.md, report.html and plots."""
    from medresearcher.evaluation.metrics import compute_metrics
    from medresearcher.evaluation.report import write_report

    state = state_of(ctx)
    folder = _run_dir(state, run)
    results_path = folder / "results.jsonl"
    if not results_path.is_file():
        raise InputError(f"{results_path}: no such file (run `medresearcher eval run` first)")
    results = list(read_jsonl(results_path, EvalResult))
    traj_path = trajectories or state.ws.trajectories_path(run)
    if trajectories is not None and not traj_path.is_file():
        raise InputError(f"{traj_path}: no such file")
    linked = list(read_jsonl(traj_path, Trajectory)) if traj_path.is_file() else []
    metrics = compute_metrics(
        results, linked, k=_parse_k(k), bootstrap=bootstrap, seed=seed, by=by or None
    )
    paths = write_report(folder, metrics, results, linked)
    if as_json:
        console.print_json(json.dumps(metrics))
        return
    console.print(summary_rich_table(metrics, title=f"eval {run}"))
    plots = sum(1 for name in paths if name.endswith(".png"))
    console.print(
        f"{len(results)} results, {len(linked)} trajectories → {escape(str(paths['html']))} "
        f"(+ metrics.json, report.md, {plots} plots)",
        highlight=False,
    )


def compare(
    ctx: typer.Context,
    runs: list[str] = typer.Argument(..., help="Two or more evaluation run names."),
    out: Path | None = typer.Option(
        None,
        "--out",
        file_okay=False,
        help="Folder to write compare.md, compare.html and compare.json into.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Show the metrics of several evaluation runs side by side."""
    from medresearcher.evaluation.report import compare_runs, write_comparison

    state = state_of(ctx)
    if len(runs) < 2:
        raise typer.BadParameter("give at least two runs to compare")
    table_data = compare_runs([_run_dir(state, run) for run in runs])
    if out is not None:
        paths = write_comparison(table_data, out)
        if not as_json:
            console.print(f"comparison → {escape(str(paths['html']))}", highlight=False)
    if as_json:
        console.print_json(json.dumps(table_data))
        return
    console.print(comparison_rich_table(table_data))
