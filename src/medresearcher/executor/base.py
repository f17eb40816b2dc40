"""The executor interface: how a batch stage's work is split, run and merged (issue 14 §3).

A batch stage (QA generation, trajectory generation, filtering, evaluation, rarity mining)
is a list of :class:`WorkItem` with ids and a *worker*: an async function that turns a list
of items into records written through :class:`~medresearcher.workspace.JsonlWriter`. The
stage describes that as a :class:`ShardJob` — the worker by import path, a serialisable
context (the Settings model dump and the stage's options), and its outputs — so that a Ray
task on any node can rebuild what it needs (settings, tool box, gateway, graph store) without
pickling an open connection.

An :class:`Executor` runs a job's pending items in shards (:mod:`.shards`): each shard writes
its own resumable files, and :func:`~medresearcher.executor.shards.merge_outputs` copies them
into the stage's normal output files by id. :class:`~medresearcher.executor.local.
LocalExecutor` runs the shards in this process; :class:`~medresearcher.executor.
ray_executor.RayExecutor` runs each shard as a Ray task. The command line's ``--executor
local`` runs a stage exactly as it always ran (no shards); ``--executor ray`` goes through
here.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medresearcher.workspace import JsonlWriter

__all__ = [
    "FORWARDED_ENV",
    "Executor",
    "OutputSpec",
    "ShardJob",
    "ShardReport",
    "WorkItem",
    "Worker",
    "add_counts",
]

FORWARDED_ENV = ("SOURCE_DATE_EPOCH",)
"""Environment variables a shard task runs with, as the driver had them: record timestamps
must not depend on which node ran the item. Secrets (API keys) are not forwarded: set them
on the cluster (``runtime_env={"env_vars": ...}`` or the nodes' environment)."""


@dataclass(frozen=True)
class WorkItem:
    """One unit of a stage's work: a stable id and what the worker needs to do it.

    ``payload`` must be JSON-like (dicts, lists, strings, numbers), because it travels to
    Ray workers and its hash names the shard it lands in.
    """

    id: str
    payload: Any = None


@dataclass(frozen=True)
class OutputSpec:
    """A stage's output file and the field its records are keyed by."""

    path: Path
    key: str = "id"


Worker = Callable[[Mapping[str, Any], list[WorkItem], dict[str, JsonlWriter]], Awaitable[Any]]
"""``async worker(context, items, outputs) -> counts``: do ``items``, writing records through
the shard's ``outputs`` (opened on the shard files, so ids already there are skipped after a
crash); return a dict of counts (summed over shards by :func:`add_counts`) or None."""


@dataclass(frozen=True)
class ShardJob:
    """A stage's work as a shard task sees it: everything is plain data.

    Parameters
    ----------
    stage:
        A name for logs and shard folders (``traj-generate``).
    worker:
        ``"package.module:function"`` of a :data:`Worker`; imported on the node that runs
        the shard, so the package must be installed there.
    context:
        JSON-like inputs of the worker (``Settings.model_dump(mode="json")``, options).
    outputs:
        Output name → final file and key; every shard writes one file per name.
    workdir:
        Where shard files, the plan and done markers live until the merge; on a cluster it
        must be on storage every node mounts at the same path (as the workspace itself).
    identity:
        What must not change for shard files of an earlier, interrupted run to be reused
        (default: the whole context). Shard files written for another identity are
        discarded, so a resumed run never mixes two configurations.
    """

    stage: str
    worker: str
    context: Mapping[str, Any]
    outputs: Mapping[str, OutputSpec]
    workdir: Path
    identity: Mapping[str, Any] | None = None

    def fingerprint(self) -> str:
        """A hash of :attr:`identity` (or the context), the worker and the output keys."""
        data = {
            "worker": self.worker,
            "identity": self.context if self.identity is None else self.identity,
            "outputs": {name: spec.key for name, spec in sorted(self.outputs.items())},
        }
        text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class ShardReport:
    """What one :meth:`Executor.map` call did."""

    items: int = 0
    shards: int = 0
    shards_run: int = 0
    shards_reused: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def add_counts(total: dict[str, Any], part: Mapping[str, Any] | None) -> dict[str, Any]:
    """Sum ``part`` into ``total``: numbers add, dicts of numbers add per key, lists extend."""
    for key, value in (part or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float, dict, list)):
            total.setdefault(key, value)
        elif isinstance(value, dict):
            add_counts(total.setdefault(key, {}), value)
        elif isinstance(value, list):
            total.setdefault(key, []).extend(value)
        else:
            total[key] = total.get(key, 0) + value
    return total


class Executor(ABC):
    """Runs the shards of a :class:`ShardJob`; the planning and merging are shared.

    Subclasses implement :meth:`_run_shards`; :meth:`map` plans (:func:`.shards.plan_shards`),
    runs the shards that are not done yet and returns a :class:`ShardReport`. The shard
    files stay until :func:`.shards.discard` — call :func:`run_job` for the usual
    map → merge → discard.
    """

    kind: str = "abstract"

    def __init__(self, *, shard_size: int = 64) -> None:
        if shard_size < 1:
            raise ValueError("shard_size must be at least 1")
        self.shard_size = shard_size

    def map(
        self,
        job: ShardJob,
        items: Sequence[WorkItem],
        *,
        on_shard: Callable[[str, int, Any], None] | None = None,
    ) -> ShardReport:
        """Run every item of ``items`` that no finished shard holds yet.

        ``on_shard(name, n_items, counts)`` is called in the driver as each shard finishes
        (for a progress bar). Raising from it stops the run: shards not finished are
        cancelled and resume on the next call.
        """
        from medresearcher.executor import shards

        started = time.perf_counter()
        plan = shards.plan_shards(job, items, self.shard_size)
        report = ShardReport(items=len(items), shards=len(plan.shards))
        wanted = {item.id for item in items}
        todo: dict[str, list[WorkItem]] = {}
        by_id = {item.id: item for item in items}
        for name, ids in plan.shards.items():
            if not wanted.intersection(ids):
                continue
            done = shards.done_counts(job, name)
            if done is not None:
                report.shards_reused += 1
                add_counts(report.counts, done)
                continue
            # Items of the shard in plan order; ones no longer asked for stay out.
            todo[name] = [by_id[i] for i in ids if i in by_id]
        report.shards_run = len(todo)
        for _name, counts in self._run_shards(job, todo, on_shard):
            add_counts(report.counts, counts)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    @abstractmethod
    def _run_shards(
        self,
        job: ShardJob,
        todo: Mapping[str, list[WorkItem]],
        on_shard: Callable[[str, int, Any], None] | None,
    ) -> list[tuple[str, Any]]:
        """Run each shard of ``todo`` (name → items); return (name, counts) per shard."""

    def close(self) -> None:
        """Release what the executor started (a local Ray instance); nothing by default."""
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_job(
    executor: Executor,
    job: ShardJob,
    items: Sequence[WorkItem],
    *,
    on_shard: Callable[[str, int, Any], None] | None = None,
) -> tuple[ShardReport, dict[str, int]]:
    """Map ``items`` in shards, merge the shard files into the outputs by id, clean up.

    Returns the report and the records merged into each output. A run interrupted
    anywhere — during the map or the merge — resumes when called again with the same job:
    finished shards are reused, cut shard files are finished, and the merge skips ids that
    an output already holds.
    """
    from medresearcher.executor import shards

    report = executor.map(job, items, on_shard=on_shard)
    merged = shards.merge_outputs(job)
    shards.discard(job)
    return report, merged
