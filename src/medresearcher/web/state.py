"""What every route reads: the settings and workspace the server was started with, and the
knowledge graph, opened once and used from one thread.

The graph store is a SQLite connection (bound to the thread that opened it) and the QA
writers cache what they read per store object, so the app keeps one store and one
:class:`~medresearcher.sampling.GraphView` alive and runs every graph call on a single worker
thread (:meth:`GraphAccess.run`): requests queue there instead of each opening the graph.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request

from medresearcher.config import Settings
from medresearcher.errors import InputError
from medresearcher.workspace import Workspace

if TYPE_CHECKING:  # the graph libraries load when the first graph request arrives
    from medresearcher.kg import GraphStore
    from medresearcher.sampling import GraphView
    from medresearcher.web.graph_data import NameIndex

__all__ = [
    "GraphAccess",
    "GraphContext",
    "WebState",
    "has_graph",
    "open_graph_store",
    "web_state",
]

T = TypeVar("T")


def has_graph(settings: Settings) -> bool:
    """Whether there is a graph to show: always for PostgreSQL (the server says), else
    whether the workspace's SQLite file exists."""
    from medresearcher.kg import graph_exists

    return graph_exists(settings)


def open_graph_store(settings: Settings) -> GraphStore:
    """The graph ``[graph]`` names (:func:`medresearcher.kg.open_graph_store`): the one place
    the web UI opens it. A SQLite graph that does not exist yet is an error here, not an
    empty file created in the workspace by looking at it."""
    from medresearcher.kg import open_graph_store as open_store

    path = Workspace(settings.workspace).kg_path
    if not has_graph(settings):
        raise InputError(
            f"{path} does not exist: build the graph with `medresearcher kg import --demo` "
            "(or `medresearcher demo`)"
        )
    return open_store(settings)  # type: ignore[return-value]


@dataclass
class GraphContext:
    """The store and its lazily built in-memory views, handed to functions run by
    :meth:`GraphAccess.run` (on the graph thread only)."""

    store: GraphStore
    _view: GraphView | None = None
    _names: NameIndex | None = None

    @property
    def view(self) -> GraphView:
        """The sampling view of the whole graph (a few seconds to build on the demo graph)."""
        if self._view is None:
            from medresearcher.sampling import GraphView

            self._view = GraphView.from_store(self.store)
        return self._view

    @property
    def names(self) -> NameIndex:
        """Every entity's normalised name and aliases, for substring search."""
        if self._names is None:
            from medresearcher.web.graph_data import NameIndex

            self._names = NameIndex.from_store(self.store)
        return self._names


class GraphAccess:
    """One graph store on one worker thread; :meth:`run` calls a function with it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-graph")
        self._context: GraphContext | None = None

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._context is None:
            self._context = GraphContext(open_graph_store(self.settings))
        return fn(self._context, *args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(context, *args, **kwargs)`` on the graph thread, awaited."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._call, fn, *args, **kwargs))

    def close(self) -> None:
        """Close the store (on its own thread) and stop the worker."""

        def close_store() -> None:
            if self._context is not None:
                self._context.store.close()
                self._context = None

        self._executor.submit(close_store).result()
        self._executor.shutdown(wait=True)


@dataclass
class WebState:
    settings: Settings
    _graph: GraphAccess | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ws(self) -> Workspace:
        return Workspace(self.settings.workspace)

    @property
    def graph(self) -> GraphAccess:
        """The graph worker, started on first use."""
        with self._lock:
            if self._graph is None:
                self._graph = GraphAccess(self.settings)
            return self._graph

    def close(self) -> None:
        with self._lock:
            if self._graph is not None:
                self._graph.close()
                self._graph = None


def web_state(request: Request) -> WebState:
    """The state :func:`medresearcher.web.create_app` stored on the application."""
    return request.app.state.web
