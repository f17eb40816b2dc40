"""What a shard task rebuilds its world from: the Settings model dump, and files by path.

Open connections (a gateway's HTTP pool, a SQLite handle, a loaded index) cannot travel to
another process, so a :class:`~medresearcher.executor.base.ShardJob` carries the settings as
plain data with every path made absolute (a Ray worker's working directory is not the
driver's), and each task opens what it needs with these helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medresearcher.config import Settings
from medresearcher.workspace import read_jsonl

if TYPE_CHECKING:
    from medresearcher.executor.base import WorkItem
    from medresearcher.kg import GraphStore
    from medresearcher.workspace import JsonlWriter

__all__ = ["open_graph", "output_ids", "pending_items", "settings_context", "settings_from"]


def settings_context(settings: Settings) -> dict[str, Any]:
    """``settings`` as JSON-like data, the workspace made absolute; secrets stay out (the
    config names environment variables, never keys)."""
    data = settings.model_dump(mode="json")
    data["workspace"] = str(Path(settings.workspace).resolve())
    return data


def settings_from(context: dict[str, Any] | Any) -> Settings:
    """The :class:`Settings` a job's context carries under ``"settings"``."""
    return Settings.model_validate(context["settings"])


def open_graph(settings: Settings) -> GraphStore:
    """The graph store ``settings.graph`` names (SQLite in the workspace, or PostgreSQL):
    the one place shard workers open it."""
    from medresearcher.kg import open_graph_store

    return open_graph_store(settings)  # type: ignore[return-value]


def output_ids(path: Path, key: str = "id") -> set[str]:
    """The ids an output file already holds (without taking its writer's lock)."""
    if not Path(path).is_file():
        return set()
    return {str(row[key]) for row in read_jsonl(path) if key in row}  # type: ignore[index]


def pending_items(items: Sequence[WorkItem], *outputs: JsonlWriter) -> list[WorkItem]:
    """The items of a shard that none of its ``outputs`` holds a record of yet.

    A shard's writers are opened on its own resumable files, so after a crash they already
    hold what the killed task wrote: a worker does only the rest.
    """
    return [item for item in items if not any(item.id in out for out in outputs)]
