"""Quality passes as shard jobs: ``qa calibrate`` (per QA record) and ``traj rewrite``
(per trajectory) on an executor (issue 14 §3).

Both are plain maps: each record is calibrated (paper §3.1.3: the reference panel's
closed-book calls, harder questions regenerated from the graph) or rewritten (paper §3.2:
each thought made self-contained) on its own. A shard runs the stage's own library loop —
:func:`~medresearcher.qa.calibration.calibrate_records`,
:func:`~medresearcher.synthesis.rewrite.rewrite_all` — over its items with its own gateway,
so a sharded run writes the records a local run writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medresearcher.config import Settings
from medresearcher.executor.base import OutputSpec, ShardJob, WorkItem
from medresearcher.executor.context import (
    open_graph,
    output_ids,
    pending_items,
    settings_context,
    settings_from,
)
from medresearcher.executor.stage_traj import shard_dir
from medresearcher.schema import QARecord, Trajectory
from medresearcher.workspace import JsonlWriter, read_jsonl

__all__ = [
    "calibrate_job",
    "calibrate_shard",
    "calibrated_from",
    "rewrite_job",
    "rewrite_shard",
]


# -- qa calibrate -----------------------------------------------------------------------------


def calibrated_from(path: Path) -> set[str]:
    """The ids of the QA records a calibrated file already holds a result for.

    A result may be a regenerated record with a new id, so calibration resumes by
    ``provenance["calibrated_from"]``, not by the output's own ids.
    """
    if not Path(path).is_file():
        return set()
    return {
        str((row.get("provenance") or {}).get("calibrated_from"))  # type: ignore[union-attr]
        for row in read_jsonl(path)
    }


def calibrate_job(
    records: Iterable[QARecord],
    *,
    settings: Settings,
    out_path: Path,
    panel: Sequence[str],
    k: int,
    max_level: int,
) -> tuple[ShardJob, list[WorkItem]]:
    """The QA records ``out_path`` has no calibration of yet, as a job (items: record ids)."""
    done = calibrated_from(out_path)
    items = [WorkItem(r.id, r.model_dump(mode="json")) for r in records if r.id not in done]
    context = {
        "settings": settings_context(settings),
        "panel": list(panel),
        "k": k,
        "max_level": max_level,
    }
    job = ShardJob(
        stage="qa-calibrate",
        worker=f"{__name__}:calibrate_shard",
        context=context,
        outputs={"calibrated": OutputSpec(out_path)},
        workdir=shard_dir(out_path),
    )
    return job, items


async def calibrate_shard(
    context: Mapping[str, Any], items: list[WorkItem], outputs: dict[str, JsonlWriter]
) -> dict[str, Any]:
    """Worker of :func:`calibrate_job`: the panel's calls for each record of the shard."""
    from medresearcher.executor.stage_qa import cached_view
    from medresearcher.llm import LLMGateway
    from medresearcher.qa.calibration import calibrate_records
    from medresearcher.sampling import GraphView

    settings = settings_from(context)
    out = outputs["calibrated"]
    done = calibrated_from(out.path)
    todo = [QARecord.model_validate(item.payload) for item in items if item.id not in done]
    if not todo:
        return {"calibrated": 0}
    with open_graph(settings) as store:
        view = cached_view(settings, store, GraphView)
        async with LLMGateway(settings) as gateway:
            levels = await calibrate_records(
                todo,
                gateway=gateway,
                store=store,
                view=view,
                panel=context["panel"],
                k=int(context["k"]),
                too_easy_above=settings.qa.too_easy_above,
                max_level=int(context["max_level"]),
                min_hops=settings.qa.min_hops,
                write=out.write,
            )
            usage = gateway.usage_report()
    by_level: dict[str, int] = {}
    for level in levels:
        by_level[str(level)] = by_level.get(str(level), 0) + 1
    return {"calibrated": len(levels), "levels": by_level, "usage": usage}


# -- traj rewrite -----------------------------------------------------------------------------


def rewrite_job(
    trajectories: Iterable[Trajectory],
    *,
    settings: Settings,
    kept_path: Path,
    rejected_path: Path,
    endpoint: str,
    workers: int = 4,
) -> tuple[ShardJob, list[WorkItem]]:
    """The trajectories neither rewrite output holds yet, as a job (items: trajectory ids)."""
    done = output_ids(kept_path) | output_ids(rejected_path)
    items = [WorkItem(t.id, t.model_dump(mode="json")) for t in trajectories if t.id not in done]
    context = {"settings": settings_context(settings), "endpoint": endpoint, "workers": workers}
    job = ShardJob(
        stage="traj-rewrite",
        worker=f"{__name__}:rewrite_shard",
        context=context,
        outputs={"kept": OutputSpec(kept_path), "rejected": OutputSpec(rejected_path)},
        workdir=shard_dir(kept_path),
        identity={k: v for k, v in context.items() if k != "workers"},
    )
    return job, items


async def rewrite_shard(
    context: Mapping[str, Any], items: list[WorkItem], outputs: dict[str, JsonlWriter]
) -> dict[str, Any]:
    """Worker of :func:`rewrite_job`: rewrite each trajectory, route kept and rejected."""
    from medresearcher.llm import LLMGateway
    from medresearcher.synthesis.rewrite import rewrite_all

    settings = settings_from(context)
    kept, rejected = outputs["kept"], outputs["rejected"]
    todo = [Trajectory.model_validate(i.payload) for i in pending_items(items, kept, rejected)]
    counts: dict[str, Any] = {"rewritten": 0, "rejected": 0, "reasons": {}}

    def write(outcome: Any) -> None:
        if isinstance(outcome, Trajectory):
            kept.write(outcome)
            counts["rewritten"] += 1
        else:
            rejected.write(outcome)
            counts["rejected"] += 1
            counts["reasons"][outcome.reason] = counts["reasons"].get(outcome.reason, 0) + 1

    if not todo:
        return counts
    async with LLMGateway(settings) as gateway:
        await rewrite_all(
            todo,
            gateway=gateway,
            endpoint=str(context["endpoint"]),
            workers=int(context["workers"]),
            write=write,
        )
        counts["usage"] = gateway.usage_report()
    return counts
