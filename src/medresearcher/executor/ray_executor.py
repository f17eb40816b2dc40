"""The Ray executor: each shard of a batch stage is a Ray task (issue 14 §3).

Every task gets the :class:`~medresearcher.executor.base.ShardJob` (plain data, put in the
object store once) and its items, rebuilds settings, gateway, tools and store from the job's
context, and writes its own shard files; the driver merges them by id. Tasks run with one
CPU each; a task lost with its node is retried by Ray and resumes from its files.

Where the tasks run:

- ``address=None`` starts a local Ray instance (``num_cpus`` CPUs, all by default) whose
  workers use this Python and import ``medresearcher`` from the same installation;
- ``address="auto"`` or ``"ray://head:10001"`` joins a cluster. Every node needs the package
  (``pip install medresearcher[scale]`` in the image, or ``runtime_env={"py_modules":
  [medresearcher]}`` / ``{"pip": [...]}``), the workspace on storage mounted at the same path
  (shard files and inputs are read and written there), and the API keys the config names
  (``runtime_env={"env_vars": {...}}``); ``SOURCE_DATE_EPOCH`` is forwarded by the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from medresearcher.errors import MedResearcherError
from medresearcher.executor.base import Executor, ShardJob, WorkItem
from medresearcher.executor.shards import driver_env, run_shard

__all__ = ["RayExecutor"]

log = logging.getLogger(__name__)


class RayExecutor(Executor):
    """Runs shards as Ray tasks, on a local instance or the cluster at ``address``.

    Parameters
    ----------
    address:
        ``None`` starts a local instance; ``"auto"`` or a ``ray://`` URL joins a cluster.
        When Ray is already initialised in this process (a test fixture, a notebook), that
        instance is used and left running.
    num_cpus:
        CPUs of a local instance.
    shard_size:
        Items per task.
    runtime_env:
        Ray's runtime environment for the tasks (packages, env vars) on a cluster.
    init_kwargs:
        Anything else for ``ray.init``.
    """

    kind = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        shard_size: int = 64,
        runtime_env: Mapping[str, Any] | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(shard_size=shard_size)
        import ray

        self._started = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, **(init_kwargs or {})}
            if runtime_env:
                options["runtime_env"] = dict(runtime_env)
            if address is None and num_cpus is not None:
                options["num_cpus"] = num_cpus
            ray.init(address=address, **options)
            self._started = True

    def _run_shards(
        self,
        job: ShardJob,
        todo: Mapping[str, list[WorkItem]],
        on_shard: Callable[[str, int, Any], None] | None,
    ) -> list[tuple[str, Any]]:
        import ray

        if not todo:
            return []
        task = ray.remote(num_cpus=1)(run_shard)
        job_ref = ray.put(job)
        env = driver_env()
        running = {
            task.remote(job_ref, name, items, env): (name, len(items))
            for name, items in todo.items()
        }
        pending = list(running)
        results: list[tuple[str, Any]] = []
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    name, size = running[ref]
                    counts = _result(ref)
                    results.append((name, counts))
                    if on_shard is not None:
                        on_shard(name, size, counts)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            # Give the cancelled tasks a moment to die, so their shard files are free.
            ray.wait(pending, num_returns=len(pending), timeout=10)
            raise
        return results

    def close(self) -> None:
        import ray

        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False


def _result(ref: Any) -> Any:
    """The task's return value; our own errors come back as themselves (one red line)."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, MedResearcherError):
            raise cause from None
        raise
