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

from medresearcher.cli.executor_opts import run_sharded
from medresearcher.cli.state import CliState
from medresearcher.schema import QARecord, Trajectory
from medresearcher.workspace import read_jsonl

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
    with run_sharded(
        state,
        "traj-filter",
        job,
        items,
        kind=kind,
        address=address,
        task=f"filtering ({kind})",
        label="filtering",
        manifest={"filter_config": config.model_dump()},
    ) as (manifest, report):
        for key in ("passed", "rejected"):
            manifest.count(key, int(report.counts.get(key, 0)))
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
    with run_sharded(
        state,
        "traj-rewrite",
        job,
        items,
        kind=kind,
        address=address,
        task=f"rewriting ({kind})",
        label="rewriting",
    ) as (manifest, report):
        for key in ("rewritten", "rejected"):
            manifest.count(key, int(report.counts.get(key, 0)))
    return len(items), Counter(report.counts.get("reasons") or {})
