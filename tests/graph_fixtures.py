"""Graph-store fixtures parametrised over both backends: SQLite and PostgreSQL.

A test that takes ``graph_store`` (an empty store) or ``make_graph_store`` (a factory of
empty stores, module-scoped) runs once per backend, ids ``sqlite`` and ``postgresql``.
PostgreSQL cases use the server named by ``MEDRESEARCHER_TEST_POSTGRES_DSN`` (``source
scripts/start_test_postgres.sh`` starts one) and skip, saying so, when it is unset. Each
PostgreSQL store lives in its own schema, dropped after the module.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Read at import: the autouse _clean_env fixture removes MEDRESEARCHER_* variables per test.
POSTGRES_DSN = os.environ.get("MEDRESEARCHER_TEST_POSTGRES_DSN")
NO_POSTGRES = (
    "MEDRESEARCHER_TEST_POSTGRES_DSN is not set: no PostgreSQL server for the graph-store "
    "tests (`source scripts/start_test_postgres.sh` starts one)"
)
GRAPH_BACKENDS = ["sqlite", "postgresql"]


def postgres_dsn() -> str:
    """The test server's DSN, or skip the calling test saying why there is none."""
    if not POSTGRES_DSN:
        pytest.skip(NO_POSTGRES)
    return POSTGRES_DSN


def new_schema_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


def drop_schemas(schemas: list[str]) -> None:
    if not schemas or not POSTGRES_DSN:
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="module", params=GRAPH_BACKENDS)
def graph_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql`` (skipped without a server)."""
    if request.param == "postgresql":
        postgres_dsn()
    return str(request.param)


@pytest.fixture(scope="module")
def make_graph_store(
    graph_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Any]]:
    """A factory of empty stores of this backend (each in its own file or schema)."""
    from medresearcher.kg import GraphStore
    from medresearcher.kg.postgres_store import PostgresGraphStore

    stores: list[Any] = []
    schemas: list[str] = []

    def make(*, batch_size: int = 500) -> Any:
        """``batch_size``: PostgreSQL COPY batch, small so that tests span several."""
        if graph_backend == "sqlite":
            store: Any = GraphStore(Path(tmp_path_factory.mktemp("kg")) / "kg.sqlite")
        else:
            schemas.append(new_schema_name())
            store = PostgresGraphStore(postgres_dsn(), schema=schemas[-1], batch_size=batch_size)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    drop_schemas(schemas)


@pytest.fixture
def graph_store(make_graph_store: Callable[..., Any]) -> Any:
    """An empty store of this backend."""
    return make_graph_store()


def empty_graph(store: Any) -> Any:
    """``store`` with every row deleted (cheaper than a new store per hypothesis example)."""
    for table in ("relation_sources", "relations", "xrefs", "aliases", "entities"):
        store.db.execute(f"DELETE FROM {table}")
    if not isinstance(store.db, sqlite3.Connection):  # sqlite counts its own changes
        store.db.total_changes += 1
    return store
