"""``eval run --executor ray``: the pending benchmark items as shards, merged by id."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medresearcher.cli.executor_opts import run_sharded
from medresearcher.cli.state import CliState

__all__ = ["evaluate_sharded"]


def evaluate_sharded(
    state: CliState,
    items: list[Any],
    *,
    kind: str,
    address: str | None,
    benchmark: str,
    file: Path,
    results_path: Path,
    trajectories_path: Path,
    manifest_entry: Mapping[str, Any],
    **options: Any,
) -> tuple[Any, dict[str, Any]]:
    """Run and grade the ungraded (item, rollout) pairs on ``kind``; counts and usage.

    ``manifest_entry`` is the manifest's ``eval`` part
    (:func:`medresearcher.cli.eval_cmd.manifest_entry`), shared with the local path so both
    record the same fields.
    """
    from medresearcher.evaluation.runner import EvalCounts
    from medresearcher.executor.stage_eval import eval_job

    settings = state.settings
    job, work = eval_job(
        items,
        settings=settings,
        benchmark=benchmark,
        results_path=results_path,
        trajectories_path=trajectories_path,
        qa_file=file if options.get("policy") == "path_guided" else None,
        **options,
    )
    rollouts = int(options["rollouts"])
    with run_sharded(
        state,
        "eval-run",
        job,
        work,
        kind=kind,
        address=address,
        task=f"eval ({kind})",
        label="items",
        manifest={"eval": dict(manifest_entry)},
    ) as (manifest, report):
        counts = EvalCounts(pairs=len(items) * rollouts)
        done_before = sum(len(w.payload["done"]) for w in work)
        counts.skipped = counts.pairs - len(work) * rollouts + done_before
        for key, value in report.counts.items():
            if key == "failures":
                counts.failures = list(value)
            elif hasattr(counts, key) and isinstance(value, int):
                setattr(counts, key, value)
        for key, value in counts.to_dict().items():
            manifest.count(key, value)
    usage = report.counts.get("usage") or {}
    return counts, usage
