"""Which graph the configuration names, and whether it exists, without creating one."""

from __future__ import annotations

from medresearcher.config import Settings
from medresearcher.kg import GraphStore, graph_exists, graph_location
from medresearcher.scale_settings import GraphSettings
from medresearcher.workspace import Workspace


def test_a_missing_sqlite_graph_is_not_created_by_asking(tmp_path) -> None:
    settings = Settings(workspace=tmp_path)
    kg_path = Workspace(tmp_path).kg_path
    assert not graph_exists(settings)
    assert not kg_path.exists()
    assert graph_location(settings) == str(kg_path)
    kg_path.parent.mkdir(parents=True, exist_ok=True)
    GraphStore(kg_path).close()
    assert graph_exists(settings)


def test_a_postgresql_graph_is_named_by_its_dsn_without_the_password(tmp_path) -> None:
    settings = Settings(
        workspace=tmp_path,
        graph=GraphSettings(backend="postgresql", dsn="postgresql://kg:secret@db.example/mr"),
    )
    assert graph_exists(settings)  # the server says what it holds, not a file
    where = graph_location(settings)
    assert "db.example" in where and "secret" not in where
