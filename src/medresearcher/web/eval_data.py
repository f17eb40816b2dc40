"""Evaluation runs as the browser shows them: folders ``eval/<run>/`` holding
``metrics.json`` (the numbers), ``results.jsonl`` (one graded prediction a line),
``report.html`` and the report's plots, as ``medresearcher eval report`` writes them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medresearcher.errors import InputError
from medresearcher.schema import EvalResult
from medresearcher.web.browse_data import Page, page_of
from medresearcher.workspace import read_jsonl
from medresearcher.workspace.layout import check_run_name

__all__ = ["PLOT_SUFFIXES", "EvalRun", "eval_results", "list_eval_runs", "load_eval_run"]

PLOT_SUFFIXES = (".png", ".svg")


@dataclass(frozen=True)
class EvalRun:
    """One evaluation folder ``eval/<run>/``: its metrics and the files of its report."""

    run: str
    path: Path
    metrics: dict[str, Any] | None
    plots: list[str]
    has_report: bool
    has_results: bool
    modified: str
    linked_trajectories: bool = False

    @property
    def accuracy(self) -> float | None:
        return ((self.metrics or {}).get("accuracy") or {}).get("avg_pass@1")

    @property
    def items(self) -> int | None:
        return ((self.metrics or {}).get("counts") or {}).get("items")

    @property
    def benchmarks(self) -> list[str]:
        return list((self.metrics or {}).get("benchmarks") or [])


def load_eval_run(folder: Path, trajectories_dir: Path | None = None) -> EvalRun:
    """The evaluation run in ``folder``; a missing or unreadable metrics.json gives None.

    ``linked_trajectories`` says whether ``trajectories_dir/<run>.jsonl`` (where ``eval run``
    writes the rollouts its results link to) exists.
    """
    metrics = None
    metrics_path = folder / "metrics.json"
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            metrics = None
    plots = sorted(p.name for p in folder.iterdir() if p.suffix in PLOT_SUFFIXES and p.is_file())
    modified = datetime.fromtimestamp(os.stat(folder).st_mtime, timezone.utc)
    return EvalRun(
        run=folder.name,
        path=folder,
        metrics=metrics if isinstance(metrics, dict) else None,
        plots=plots,
        has_report=(folder / "report.html").is_file(),
        has_results=(folder / "results.jsonl").is_file(),
        modified=modified.isoformat(timespec="seconds"),
        linked_trajectories=bool(trajectories_dir)
        and (trajectories_dir / f"{folder.name}.jsonl").is_file(),
    )


def list_eval_runs(root: Path) -> list[EvalRun]:
    """Every evaluation folder under ``root`` with a name a URL can carry, by name."""
    runs = []
    if not root.is_dir():
        return runs
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            check_run_name(folder.name)
        except InputError:
            continue
        runs.append(load_eval_run(folder))
    return runs


def eval_results(
    folder: Path, *, verdict: str | None = None, offset: int = 0, limit: int = 50
) -> Page[EvalResult]:
    """One page of the graded predictions in ``folder/results.jsonl``, by verdict if given."""
    path = folder / "results.jsonl"
    if not path.is_file():
        return Page(items=[], total=0, offset=offset, limit=limit)
    return page_of(
        read_jsonl(path, EvalResult), lambda r: not verdict or r.verdict == verdict, offset, limit
    )
