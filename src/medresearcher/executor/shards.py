"""Shards: split pending items by id, run one shard into its own files, merge by id.

Layout of a job's ``workdir`` (one per stage output, e.g. ``trajectories/<run>.jsonl.shards``)::

    plan.json                 {"fingerprint", "shards": {name: [item ids]}}
    <shard>/<output>.jsonl    the shard's records, one file per output (JsonlWriter)
    <shard>/done.json         written last: the shard finished, with its counts

The plan is written before any shard runs and only ever grows, so an item keeps its shard
across restarts; a shard without ``done.json`` is run again, and its worker skips the ids its
files already hold (a line cut by a kill is dropped by :class:`JsonlWriter`). Names are
hashes of the shard's ids, so they do not depend on timing or on the executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medresearcher.errors import InputError
from medresearcher.executor.base import FORWARDED_ENV, ShardJob, Worker, WorkItem
from medresearcher.workspace import JsonlWriter, read_jsonl
from medresearcher.workspace.manifest import write_json_atomic

__all__ = [
    "ShardPlan",
    "discard",
    "done_counts",
    "driver_env",
    "load_worker",
    "merge_outputs",
    "merge_rows",
    "plan_shards",
    "run_shard",
    "shard_files",
    "shard_name",
    "shard_rows",
    "split_ids",
]

log = logging.getLogger(__name__)

PLAN = "plan.json"
DONE = "done.json"
LOCK_WAIT_S = 60.0


# -- pure functions ---------------------------------------------------------------------------


def split_ids(ids: Sequence[str], shard_size: int) -> list[list[str]]:
    """``ids`` sorted and cut into consecutive shards of at most ``shard_size``.

    Duplicates are an error: an id names one item, and one record per output.

    >>> split_ids(["c", "a", "b"], 2)
    [['a', 'b'], ['c']]
    """
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    ordered = sorted(ids)
    for before, after in itertools.pairwise(ordered):
        if before == after:
            raise InputError(f"work item id {before!r} occurs twice: ids must be unique")
    return [ordered[i : i + shard_size] for i in range(0, len(ordered), shard_size)]


def shard_name(ids: Sequence[str]) -> str:
    """A stable name for the shard holding ``ids``: a hash, not a position or a time."""
    digest = hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()
    return f"shard-{digest[:12]}"


def merge_rows(
    parts: Sequence[Sequence[Mapping[str, Any]]], key: str, *, skip: set[str] | None = None
) -> list[Mapping[str, Any]]:
    """The rows of every shard, one per id (the first seen wins), sorted by ``key``.

    ``skip`` holds ids the output already has. Sorting by id makes the merged file the
    same whatever shard finished first.
    """
    seen = set(skip or ())
    rows: list[Mapping[str, Any]] = []
    for part in parts:
        for row in part:
            record_id = str(row[key])
            if record_id in seen:
                continue
            seen.add(record_id)
            rows.append(row)
    return sorted(rows, key=lambda row: str(row[key]))


# -- the plan ---------------------------------------------------------------------------------


@dataclass
class ShardPlan:
    """Which item is in which shard (in plan order), for one job fingerprint."""

    fingerprint: str
    shards: dict[str, list[str]] = field(default_factory=dict)

    def assigned(self) -> set[str]:
        return {i for ids in self.shards.values() for i in ids}


def plan_shards(job: ShardJob, items: Sequence[WorkItem], shard_size: int) -> ShardPlan:
    """The job's plan, grown by shards for the items no earlier plan holds.

    A plan of another fingerprint (the command changed its inputs) is discarded with its
    shard files, with a warning.
    """
    path = job.workdir / PLAN
    fingerprint = job.fingerprint()
    plan = ShardPlan(fingerprint)
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("fingerprint") == fingerprint:
            plan.shards = {name: list(ids) for name, ids in data["shards"].items()}
        else:
            log.warning(
                "%s: shard files of another configuration of %s; starting afresh",
                job.workdir,
                job.stage,
            )
            discard(job)
    known = plan.assigned()
    new = [item.id for item in items if item.id not in known]
    added = False
    for ids in split_ids(new, shard_size):
        plan.shards[shard_name(ids)] = ids
        added = True
    if added or not path.is_file():
        text = json.dumps({"fingerprint": fingerprint, "shards": plan.shards}, ensure_ascii=False)
        write_json_atomic(path, text + "\n")
    return plan


def shard_files(job: ShardJob, name: str) -> dict[str, Path]:
    """Output name → this shard's file of it."""
    return {output: job.workdir / name / f"{output}.jsonl" for output in job.outputs}


def done_counts(job: ShardJob, name: str) -> Any:
    """The counts a finished shard recorded, or None while it is not finished."""
    path = job.workdir / name / DONE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("counts") or {}


# -- running one shard ------------------------------------------------------------------------


def driver_env() -> dict[str, str | None]:
    """The :data:`~medresearcher.executor.base.FORWARDED_ENV` values of this process."""
    return {name: os.environ.get(name) for name in FORWARDED_ENV}


@contextlib.contextmanager
def _environment(env: Mapping[str, str | None]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in env}

    def apply(values: Mapping[str, str | None]) -> None:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    apply(env)
    try:
        yield
    finally:
        apply(before)


def load_worker(path: str) -> Worker:
    """The worker function named ``"package.module:function"``."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"worker {path!r} is not 'package.module:function'")
    return getattr(importlib.import_module(module_name), attribute)


def run_shard(
    job: ShardJob, name: str, items: list[WorkItem], env: Mapping[str, str | None] | None = None
) -> Any:
    """Run one shard where this is called (a Ray task or the driver) and mark it done.

    The worker's records go to the shard's own files through resumable writers, so a shard
    killed half-way and run again finishes the items it had not written. Async workers run
    in a fresh event loop here (a Ray task has none).
    """
    worker = load_worker(job.worker)
    files = shard_files(job, name)
    with _environment(env or {}), contextlib.ExitStack() as stack:
        writers = {}
        for output, spec in job.outputs.items():
            writers[output] = _open_writer(files[output], spec.key)
            stack.callback(writers[output].close)
        counts = asyncio.run(worker(job.context, items, writers))
    marker = {"shard": name, "items": len(items), "counts": counts}
    write_json_atomic(job.workdir / name / DONE, json.dumps(marker, ensure_ascii=False) + "\n")
    return counts


def _open_writer(path: Path, key: str, *, wait_s: float = LOCK_WAIT_S) -> JsonlWriter:
    """The shard file's writer, waiting while a task of an interrupted run still holds it.

    A driver killed or interrupted has its tasks cancelled, but a cancelled task may take a
    moment to die; the re-run's task for the same shard waits for its lock instead of
    failing.
    """
    deadline = time.monotonic() + wait_s
    while True:
        writer = JsonlWriter(path, key=key)
        try:
            writer.open()
            return writer
        except InputError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


# -- merging ----------------------------------------------------------------------------------


def _shard_dirs(job: ShardJob) -> list[Path]:
    if not job.workdir.is_dir():
        return []
    return sorted(path for path in job.workdir.iterdir() if path.is_dir())


def shard_rows(job: ShardJob, output: str) -> Iterator[dict[str, Any]]:
    """Every record the shards wrote to ``output`` so far (finished shards or not)."""
    for folder in _shard_dirs(job):
        path = folder / f"{output}.jsonl"
        if path.is_file():
            yield from read_jsonl(path)  # type: ignore[misc]


def merge_outputs(job: ShardJob) -> dict[str, int]:
    """Copy the shard files into the job's outputs by id; returns records added per output.

    Records are appended sorted by key, after those the output already holds (which are
    skipped), so the merged file has the same records as a local run's: sorted by id, the
    files are identical.
    """
    merged: dict[str, int] = {}
    for output, spec in job.outputs.items():
        parts = [
            list(read_jsonl(folder / f"{output}.jsonl"))
            for folder in _shard_dirs(job)
            if (folder / f"{output}.jsonl").is_file()
        ]
        with JsonlWriter(spec.path, key=spec.key, fsync=False) as out:
            rows = merge_rows(parts, spec.key, skip=set(out.ids))  # type: ignore[arg-type]
            for row in rows:
                out.write(dict(row))
            merged[output] = out.written
    return merged


def discard(job: ShardJob) -> None:
    """Remove the job's shard files (after a merge, or when they belong to another plan)."""
    shutil.rmtree(job.workdir, ignore_errors=True)
