"""Executors for batch stages: the same work in this process or as shards on Ray (issue 14 §3).

See :mod:`.base` for the model (work items with ids, a worker by import path, shard files
merged by id). :func:`make_executor` builds the one the settings or a ``--executor`` flag
name; the Ray executor is imported only when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medresearcher.errors import ConfigError
from medresearcher.executor.base import (
    Executor,
    OutputSpec,
    ShardJob,
    ShardReport,
    WorkItem,
    add_counts,
    run_job,
)
from medresearcher.executor.local import LocalExecutor

if TYPE_CHECKING:
    from medresearcher.scale_settings import ExecutorSettings

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "OutputSpec",
    "ShardJob",
    "ShardReport",
    "WorkItem",
    "add_counts",
    "make_executor",
    "run_job",
]

EXECUTORS = ("local", "ray")


def make_executor(
    settings: ExecutorSettings, *, kind: str | None = None, address: str | None = None
) -> Executor:
    """The executor of ``kind`` (default ``settings.kind``), configured from ``settings``.

    ``address`` overrides ``settings.ray_address``. Ray is imported here only for ``ray``.
    """
    kind = kind or settings.kind
    if kind == "local":
        return LocalExecutor(shard_size=settings.shard_size)
    if kind == "ray":
        from medresearcher.executor.ray_executor import RayExecutor

        return RayExecutor(
            address=address or settings.ray_address,
            num_cpus=settings.num_cpus,
            shard_size=settings.shard_size,
        )
    raise ConfigError(f"unknown executor {kind!r}; use {' or '.join(EXECUTORS)}")
