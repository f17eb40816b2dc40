"""``eval run --executor ray``: the pending benchmark items as shards, merged by id."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medresearcher.cli.executor_opts import open_executor, record, shard_progress
from medresearcher.cli.state import CliState, console
from medresearcher.workspace import Run, progress_bar

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
    from medresearcher.executor import run_job
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
    with (
        Run(state.ws, "eval-run", settings) as manifest,
        open_executor(settings, kind, address) as executor,
        progress_bar(console) as progress,
    ):
        manifest.manifest["eval"] = dict(manifest_entry)
        task = progress.add_task(f"eval ({kind})", total=len(work))
        on_shard = shard_progress(progress, task, manifest, total=len(work), label="items")
        report, _ = run_job(executor, job, work, on_shard=on_shard)
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
        manifest.record_usage(usage)
        record(manifest, kind, [report])
    return counts, usage
