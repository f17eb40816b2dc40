"""Open the graph store the configuration names (``[graph]``): one call for every command.

Switching the graph to PostgreSQL is a configuration change only (ARCHITECTURE §6)::

    [graph]
    backend = "postgresql"
    dsn = "host=db.example dbname=medresearcher user=kg"
    password_env = "KG_PASSWORD"

Commands open the store with :func:`open_graph_store` and use the interface both stores
share; the password is read from the environment and passed apart from the DSN, so it
appears in no message or log line.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from medresearcher.errors import ConfigError
from medresearcher.kg.store import GraphStore

if TYPE_CHECKING:
    from medresearcher.config import Settings
    from medresearcher.kg.postgres_store import PostgresGraphStore

__all__ = ["graph_exists", "graph_location", "open_graph_store"]


def graph_exists(settings: Settings) -> bool:
    """Whether there is a graph to open without creating one: the SQLite file exists, or
    the graph is on PostgreSQL (where the server, not a file, says what it holds)."""
    if settings.graph.backend != "sqlite":
        return True
    from medresearcher.workspace import Workspace

    return Workspace(settings.workspace).kg_path.is_file()


def graph_location(settings: Settings) -> str:
    """Where the graph lives, for messages ("… is empty: run kg import"): the SQLite file,
    or the PostgreSQL DSN (without password) and schema."""
    graph = settings.graph
    if graph.backend == "sqlite":
        from medresearcher.workspace import Workspace

        return str(Workspace(settings.workspace).kg_path)
    from medresearcher.kg.postgres_store import safe_dsn

    return f"PostgreSQL {safe_dsn(graph.dsn or '')} schema {graph.schema_name}"


def open_graph_store(settings: Settings) -> GraphStore | PostgresGraphStore:
    """The graph store ``settings.graph`` names, open; use it as a context manager.

    Raises
    ------
    ConfigError
        When ``backend = "postgresql"`` has no ``dsn``, its ``password_env`` variable is
        unset, or the server cannot be reached.
    """
    graph = settings.graph
    if graph.backend == "sqlite":
        from medresearcher.workspace import Workspace

        return GraphStore(Workspace(settings.workspace).kg_path)
    if not graph.dsn:
        raise ConfigError('[graph] dsn is required when backend = "postgresql"')
    password = None
    if graph.password_env:
        password = os.environ.get(graph.password_env)
        if password is None:
            raise ConfigError(
                f"[graph] password_env: environment variable {graph.password_env} is not set"
            )
    from medresearcher.kg.postgres_store import PostgresGraphStore

    return PostgresGraphStore(
        graph.dsn, password=password, schema=graph.schema_name, batch_size=graph.batch_size
    )
