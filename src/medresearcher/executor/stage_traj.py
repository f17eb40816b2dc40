"""Trajectory stages as shard jobs: ``traj generate`` and ``traj filter`` on an executor
(``traj rewrite`` is in :mod:`.stage_quality`).

Each ``*_job`` function turns a stage's inputs into a :class:`~medresearcher.executor.base.
ShardJob` and the pending work items (those whose records the output does not hold yet);
each ``*_shard`` function is the worker a shard task runs. The stage's own library function
does the work (:func:`~medresearcher.synthesis.generate.generate_trajectories`,
:func:`~medresearcher.synthesis.filters.apply_filters`), so a sharded run writes the records
a local run writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from medresearcher.schema import QARecord, Trajectory
from medresearcher.workspace import JsonlWriter

__all__ = [
    "filter_job",
    "filter_shard",
    "filter_trajectories",
    "generate_counts",
    "generate_job",
    "generate_shard",
    "shard_dir",
]

_SHARD_COUNTS = ("written", "guided_written", "skipped", "failed", "augmented")


def shard_dir(output: Path) -> Path:
    """Where the shards of the stage writing ``output`` live: ``<output>.shards/``."""
    return output.with_name(output.name + ".shards")


# -- traj generate ----------------------------------------------------------------------------


def generate_job(
    records: Iterable[QARecord],
    *,
    settings: Settings,
    out_path: Path,
    policy: str,
    endpoint: str = "agent",
    rollouts: int = 1,
    workers: int = 4,
    alpha: float,
    seed: int = 0,
    augment_rate: float,
    augment_method: str = "auto",
    include_failed_checks: bool = False,
    language: str | None = None,
) -> tuple[ShardJob, list[WorkItem]]:
    """The (QA id, rollout) items of a generation batch that ``out_path`` lacks, as a job.

    Items are ``<qa id>#<rollout>``; a shard runs
    :func:`~medresearcher.synthesis.generate.generate_trajectories` over the whole batch
    with ``only=`` its items, so the α-guided split is the batch's, not the shard's.
    """
    from medresearcher.agent.record import trajectory_id
    from medresearcher.synthesis.generate import policy_name

    chosen: dict[str, QARecord] = {}
    for record in records:
        if record.id not in chosen and (record.passed or include_failed_checks):
            chosen[record.id] = record
    name = policy_name(policy, endpoint)  # type: ignore[arg-type]
    done = output_ids(out_path)
    items = [
        WorkItem(f"{qa_id}#{rollout}", {"qa_id": qa_id, "rollout": rollout})
        for qa_id in chosen
        for rollout in range(rollouts)
        if not {trajectory_id(qa_id, name, rollout, m) for m in ("mtg", "none")} & done
    ]
    context = {
        "settings": settings_context(settings),
        "records": [record.model_dump(mode="json") for record in chosen.values()],
        "options": {
            "policy": policy,
            "endpoint": endpoint,
            "rollouts": rollouts,
            "workers": workers,
            "alpha": alpha,
            "seed": seed,
            "augment_rate": augment_rate,
            "augment_method": augment_method,
            "include_failed_checks": include_failed_checks,
            "language": language,
        },
    }
    job = ShardJob(
        stage="traj-generate",
        worker=f"{__name__}:generate_shard",
        context=context,
        outputs={"trajectories": OutputSpec(out_path)},
        workdir=shard_dir(out_path),
    )
    return job, items


async def generate_shard(
    context: Mapping[str, Any], items: list[WorkItem], outputs: dict[str, JsonlWriter]
) -> dict[str, Any]:
    """Worker of :func:`generate_job`: one shard of rollouts, with its own gateway and tools."""
    from medresearcher.llm import LLMGateway
    from medresearcher.synthesis.generate import generate_trajectories

    settings = settings_from(context)
    options = dict(context["options"])
    records = [QARecord.model_validate(data) for data in context["records"]]
    only = {(item.payload["qa_id"], int(item.payload["rollout"])) for item in items}
    async with LLMGateway(settings) as gateway:
        counts = await generate_trajectories(
            records,
            settings=settings,
            gateway=gateway if options["policy"] == "llm" else None,
            out=outputs["trajectories"],
            only=only,
            **options,
        )
        usage = gateway.usage_report() if options["policy"] == "llm" else {}
    summary: dict[str, Any] = {key: getattr(counts, key) for key in _SHARD_COUNTS}
    summary["terminations"] = dict(counts.terminations)
    summary["failures"] = list(counts.failures)
    summary["usage"] = usage
    return summary


def generate_counts(
    records: Iterable[QARecord],
    shard_counts: Mapping[str, Any],
    *,
    pending: int,
    rollouts: int = 1,
    alpha: float,
    seed: int = 0,
    include_failed_checks: bool = False,
    **_: Any,
) -> Any:
    """The :class:`~medresearcher.synthesis.generate.GenerationCounts` of a sharded batch:
    the batch's own numbers, and what the shards summed (items not pending were skipped)."""
    from collections import Counter

    from medresearcher.synthesis.generate import GenerationCounts
    from medresearcher.synthesis.mix import guided_items

    counts = GenerationCounts()
    chosen: list[str] = []
    for record in records:
        if record.id in chosen:
            continue
        if record.passed or include_failed_checks:
            chosen.append(record.id)
        else:
            counts.records_failing_checks += 1
    items = [(qa_id, k) for qa_id in chosen for k in range(rollouts)]
    counts.records, counts.items = len(chosen), len(items)
    counts.guided_planned = len(guided_items(items, alpha, seed))
    for key in _SHARD_COUNTS:
        setattr(counts, key, int(shard_counts.get(key, 0)))
    counts.skipped += len(items) - pending
    counts.terminations = Counter(shard_counts.get("terminations") or {})
    counts.failures = list(shard_counts.get("failures") or [])
    return counts


# -- traj filter ------------------------------------------------------------------------------


def filter_job(
    trajectories: Iterable[Trajectory],
    *,
    settings: Settings,
    records: Mapping[str, QARecord],
    config: Any,
    passed_path: Path,
    rejected_path: Path,
    judge_endpoint: str | None = None,
    workers: int = 8,
) -> tuple[ShardJob, list[WorkItem]]:
    """The trajectories neither filter output holds yet, as a job (items: trajectory ids).

    Only the QA records those trajectories answer travel with the job. The job's identity
    is what changes a verdict (settings, rules, judge): neither ``workers`` (concurrency)
    nor the records (they follow the pending trajectories), so a resumed run keeps the
    shard files of an interrupted one even with another ``--workers``.
    """
    done = output_ids(passed_path) | output_ids(rejected_path)
    todo = [t for t in trajectories if t.id not in done]
    wanted = {t.qa_id for t in todo}
    context = {
        "settings": settings_context(settings),
        "records": [r.model_dump(mode="json") for i, r in sorted(records.items()) if i in wanted],
        "config": config.model_dump(mode="json"),
        "judge": judge_endpoint,
        "workers": workers,
    }
    job = ShardJob(
        stage="traj-filter",
        worker=f"{__name__}:filter_shard",
        context=context,
        outputs={"passed": OutputSpec(passed_path), "rejected": OutputSpec(rejected_path)},
        workdir=shard_dir(passed_path),
        identity={k: v for k, v in context.items() if k not in ("records", "workers")},
    )
    return job, [WorkItem(t.id, t.model_dump(mode="json")) for t in todo]


async def filter_shard(
    context: Mapping[str, Any], items: list[WorkItem], outputs: dict[str, JsonlWriter]
) -> dict[str, Any]:
    """Worker of :func:`filter_job`: judge (when asked) and filter, route by verdict."""
    from medresearcher.synthesis.filters import FilterConfig

    settings = settings_from(context)
    config = FilterConfig.model_validate(context["config"])
    records = {r["id"]: QARecord.model_validate(r) for r in context["records"]}
    pending = pending_items(items, outputs["passed"], outputs["rejected"])
    todo = [Trajectory.model_validate(item.payload) for item in pending]
    counts = {"passed": 0, "rejected": 0}

    def write(trajectory: Trajectory) -> None:
        ok = bool(trajectory.filters and trajectory.filters["passed"])
        outputs["passed" if ok else "rejected"].write(trajectory)
        counts["passed" if ok else "rejected"] += 1

    usage = await filter_trajectories(
        todo,
        settings=settings,
        records=records,
        config=config,
        judge_endpoint=context["judge"],
        workers=int(context["workers"]),
        write=write,
    )
    return {**counts, "usage": usage}


async def filter_trajectories(
    todo: Sequence[Trajectory],
    *,
    settings: Settings,
    records: Mapping[str, QARecord],
    config: Any,
    judge_endpoint: str | None,
    workers: int,
    write: Callable[[Trajectory], None],
) -> dict[str, Any]:
    """Judge (with ``judge_endpoint``, where the rules cannot decide) and filter each
    trajectory, writing each as soon as it is done; returns the judge's token usage.

    The one loop of ``traj filter``: its local path calls this in the command's process,
    its Ray path in each shard task (:func:`filter_shard`). The leak rule gets the chain's
    names from the workspace graph when there is one; without a graph it looks for ids and
    the answer only.
    """
    from medresearcher.kg import graph_exists
    from medresearcher.synthesis.filters import apply_filters, judge_trajectory

    store = open_graph(settings) if graph_exists(settings) else None

    def names(record: QARecord | None) -> Mapping[str, Sequence[str]]:
        if record is None or store is None:
            return {}
        return store.names_of([*record.chain[0::2], *record.placeholders.values()])

    def finish(trajectory: Trajectory) -> None:
        record = records.get(trajectory.qa_id or "")
        write(apply_filters(trajectory, record, config, names_by_id=names(record)))

    try:
        if not judge_endpoint or "judge_correct" not in config.rules:
            for trajectory in todo:
                finish(trajectory)
            return {}
        from medresearcher.grading import Judge
        from medresearcher.llm import LLMGateway

        async with LLMGateway(settings) as gateway:
            judge = Judge(gateway, judge_endpoint)
            limit = asyncio.Semaphore(workers)

            async def one(trajectory: Trajectory) -> None:
                record = records.get(trajectory.qa_id or "")
                if record is not None and trajectory.final_answer:
                    async with limit:
                        trajectory = await judge_trajectory(trajectory, record, judge=judge)
                finish(trajectory)

            await asyncio.gather(*(one(t) for t in todo))
            return gateway.usage_report()
    finally:
        if store is not None:
            store.close()
