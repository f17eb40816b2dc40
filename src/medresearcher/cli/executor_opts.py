"""``--executor local|ray`` and ``--ray-address`` for the batch commands (issue 14 §3).

``local`` runs a command as it always ran, in this process. ``ray`` splits its pending work
into shards by id, runs each shard as a Ray task that writes its own resumable files, and
merges them into the command's usual output files by id (:mod:`medresearcher.executor`).
Defaults come from ``[executor]`` in the config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from medresearcher.cli.state import console

if TYPE_CHECKING:
    from medresearcher.cli.state import CliState
    from medresearcher.config import Settings
    from medresearcher.executor import Executor, ShardJob, ShardReport, WorkItem
    from medresearcher.workspace import Run

__all__ = [
    "ADDRESS",
    "EXECUTOR",
    "executor_kind",
    "open_executor",
    "record",
    "run_sharded",
    "shard_progress",
]

EXECUTOR: Any = typer.Option(
    None,
    "--executor",
    help="local (this process) or ray (shards as Ray tasks, merged by id). "
    "Default: \\[executor] kind.",
)
ADDRESS: Any = typer.Option(
    None,
    "--ray-address",
    help="Ray cluster to join ('auto', 'ray://head:10001'). Default: \\[executor] "
    "ray_address; unset starts a local Ray instance.",
)


def executor_kind(settings: Settings, option: str | None) -> str:
    """``--executor`` if given, else the config's; an unknown name is a usage error."""
    kind = option or settings.executor.kind
    if kind not in ("local", "ray"):
        raise typer.BadParameter("--executor is local or ray")
    return kind


def open_executor(settings: Settings, kind: str, address: str | None) -> Executor:
    """The executor to use as a context manager (a local Ray instance stops at the end)."""
    from medresearcher.executor import make_executor

    return make_executor(settings.executor, kind=kind, address=address)


def shard_progress(
    progress: Any,
    task: Any,
    run: Any = None,
    *,
    total: int | None = None,
    label: str | None = None,
    done: int = 0,
) -> Callable[[str, int, Any], None]:
    """An ``on_shard`` callback advancing ``task`` by the items of each finished shard, and
    telling ``run`` (a :class:`~medresearcher.workspace.Run`) where the batch stands, for
    the web UI's run monitor; ``done`` items were finished before the run."""
    finished = [done]

    def advance(name: str, size: int, counts: Any) -> None:
        progress.advance(task, size)
        finished[0] += size
        if run is not None:
            run.progress(finished[0], total, label=label)

    return advance


def record(run: Any, kind: str, reports: list[ShardReport]) -> None:
    """The executor's part of a run manifest, and one line for people."""
    shards = sum(r.shards_run for r in reports)
    reused = sum(r.shards_reused for r in reports)
    seconds = round(sum(r.seconds for r in reports), 3)
    run.manifest["executor"] = {
        "kind": kind,
        "shards_run": shards,
        "shards_reused": reused,
        "seconds": seconds,
    }
    console.print(f"[dim]{kind}: {shards} shards run, {reused} reused, {seconds:g} s[/]")


@contextmanager
def run_sharded(
    state: CliState,
    command: str,
    job: ShardJob,
    items: Sequence[WorkItem],
    *,
    kind: str,
    address: str | None,
    task: str,
    label: str,
    manifest: Mapping[str, Any] | None = None,
) -> Iterator[tuple[Run, ShardReport]]:
    """The ``--executor ray`` path of a batch command: ``job``'s ``items`` run and merged.

    Opens the run manifest ``command`` (with ``manifest`` entries set first), the executor
    and a progress bar (``task`` its title, ``label`` the monitor's unit), runs the job
    (:func:`~medresearcher.executor.base.run_job`) and yields the manifest and the shards'
    report, for the command to record its counts; then records the shards' token usage and
    the executor's part of the manifest.
    """
    from medresearcher.executor import run_job
    from medresearcher.workspace import Run, progress_bar

    settings = state.settings
    with (
        Run(state.ws, command, settings) as run,
        open_executor(settings, kind, address) as pool,
        progress_bar(console) as progress,
    ):
        run.manifest.update(manifest or {})
        bar = progress.add_task(task, total=len(items))
        on_shard = shard_progress(progress, bar, run, total=len(items), label=label)
        report, _ = run_job(pool, job, items, on_shard=on_shard)
        yield run, report
        run.record_usage(report.counts.get("usage") or {})
        record(run, kind, [report])
