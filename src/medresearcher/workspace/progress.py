"""The progress display every batch uses: count, rate and time left."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["progress_bar"]


class RateColumn(ProgressColumn):
    """Items per second, which says more than a percentage for model-bound work."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("  -  it/s", style="progress.data.speed")
        unit = "it/s" if speed >= 1 else "s/it"
        value = speed if speed >= 1 else 1 / speed
        return Text(f"{value:5.1f} {unit}", style="progress.data.speed")


def progress_bar(console: Console | None = None, *, transient: bool = False) -> Progress:
    """A :class:`rich.progress.Progress` with count, rate, elapsed time and ETA.

    Example::

        with progress_bar() as progress:
            task = progress.add_task("writing questions", total=len(items))
            for item in items:
                ...
                progress.advance(task)
    """
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )
