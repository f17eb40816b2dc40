"""``traj filter | rewrite --executor ray``: the pending trajectories as shards, merged by id.

The sharded paths of :mod:`medresearcher.cli.traj_quality_cmd`, apart from its local paths
because they are another concern: building the stage's shard job
(:mod:`medresearcher.executor.stage_traj`, :mod:`medresearcher.executor.stage_quality`),
running it on an executor and recording the shards' counts in the run manifest. Each writes
the files the local path writes, with the same manifest counts.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from medresearcher.cli.executor_opts import open_executor, record, shard_progress
from medresearcher.cli.state import CliState, console
from medresearcher.schema import QARecord, Trajectory
from medresearcher.workspace import Run, progress_bar, read_jsonl

if TYPE_CHECKING:
    from medresearcher.synthesis.filters import FilterConfig

__all__ = ["filter_sharded", "rewrite_sharded"]


def filter_sharded(
    state: CliState,
    source: Path,
    records: dict[str, QARecord],
    config: FilterConfig,
    passed_path: Path,
    rejected_path: Path,
    judge: str | None,
    workers: int,
    kind: str,
    address: str | None,
) -> int:
    """``--executor ray``: the unfiltered trajectories as shards, merged by id."""
    from medresearcher.executor import run_job
    from medresearcher.executor.stage_traj import filter_job

    settings = state.settings
    job, items = filter_job(
        read_jsonl(source, Trajectory),
        settings=settings,
        records=records,
        config=config,
        passed_path=passed_path,
        rejected_path=rejected_path,
        judge_endpoint=judge,
        workers=workers,
    )
    with (
        Run(state.ws, "traj-filter", settings) as manifest,
        open_executor(settings, kind, address) as pool,
        progress_bar(console) as progress,
    ):
        manifest.manifest["filter_config"] = config.model_dump()
        task = progress.add_task(f"filtering ({kind})", total=len(items))
        on_shard = shard_progress(progress, task, manifest, total=len(items), label="filtering")
        report, _ = run_job(pool, job, items, on_shard=on_shard)
        for key in ("passed", "rejected"):
            manifest.count(key, int(report.counts.get(key, 0)))
        if report.counts.get("usage"):
            manifest.record_usage(report.counts["usage"])
        record(manifest, kind, [report])
    return len(items)


def rewrite_sharded(
    state: CliState,
    source: Path,
    kept_path: Path,
    rejected_path: Path,
    endpoint: str,
    workers: int,
    kind: str,
    address: str | None,
) -> tuple[int, Counter[str]]:
    """``--executor ray``: the trajectories not rewritten yet as shards, merged by id."""
    from medresearcher.executor import run_job
    from medresearcher.executor.stage_quality import rewrite_job

    settings = state.settings
    job, items = rewrite_job(
        read_jsonl(source, Trajectory),
        settings=settings,
        kept_path=kept_path,
        rejected_path=rejected_path,
        endpoint=endpoint,
        workers=workers,
    )
    with (
        Run(state.ws, "traj-rewrite", settings) as manifest,
        open_executor(settings, kind, address) as pool,
        progress_bar(console) as progress,
    ):
        task = progress.add_task(f"rewriting ({kind})", total=len(items))
        on_shard = shard_progress(progress, task, manifest, total=len(items), label="rewriting")
        report, _ = run_job(pool, job, items, on_shard=on_shard)
        for key in ("rewritten", "rejected"):
            manifest.count(key, int(report.counts.get(key, 0)))
        manifest.record_usage(report.counts.get("usage") or {})
        record(manifest, kind, [report])
    return len(items), Counter(report.counts.get("reasons") or {})
