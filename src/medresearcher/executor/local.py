"""The in-process executor: the shards of a job, one after another, in this process.

The command line's ``--executor local`` runs a stage as it always ran and does not come
here; this class is the sharded path without Ray — the reference the Ray executor is tested
against, and a way to debug a worker with a plain stack trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from medresearcher.executor.base import Executor, ShardJob, WorkItem
from medresearcher.executor.shards import driver_env, run_shard

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Runs each shard with :func:`~medresearcher.executor.shards.run_shard` in turn."""

    kind = "local"

    def _run_shards(
        self,
        job: ShardJob,
        todo: Mapping[str, list[WorkItem]],
        on_shard: Callable[[str, int, Any], None] | None,
    ) -> list[tuple[str, Any]]:
        results = []
        env = driver_env()
        for name, items in todo.items():
            counts = run_shard(job, name, items, env)
            results.append((name, counts))
            if on_shard is not None:
                on_shard(name, len(items), counts)
        return results
