"""What is particular to the PostgreSQL graph store: COPY batches give the SQLite store's
graph exactly, the backend is a configuration switch only (the CLI, sampling and the QA
readers work unchanged), and samplers read it in batches.

The shared interface is tested on both backends by tests/test_kg_store.py; these tests
skip, saying why, when MEDRESEARCHER_TEST_POSTGRES_DSN names no server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medresearcher.config import Settings
from medresearcher.data import bundle_dir, bundle_manifest
from medresearcher.errors import ConfigError
from medresearcher.kg import GraphStore, open_graph_store
from medresearcher.kg.io import import_records
from medresearcher.kg.postgres_store import PostgresGraphStore
from medresearcher.qa.specialties import specialties_of
from medresearcher.sampling import STRATEGIES, GraphView, StoreGraphView
from medresearcher.scale_settings import GraphSettings
from medresearcher.schema import Entity
from tests.graph_fixtures import drop_schemas, empty_graph, new_schema_name, postgres_dsn
from tests.test_cli import cli
from tests.test_kg_store import entity_records, load, relation_records, snapshot

ANCHORS = ["ORPHA:324", "ORPHA:355", "ORPHA:79430"]


@pytest.fixture(scope="module")
def schemas() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    drop_schemas(names)


@pytest.fixture(scope="module")
def tiny_pair(
    schemas: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GraphStore, PostgresGraphStore]]:
    """The tiny bundle in both stores (PostgreSQL in COPY batches of 300)."""
    schemas.append(new_schema_name())
    pg = PostgresGraphStore(postgres_dsn(), schema=schemas[-1], batch_size=300)
    lite = GraphStore(tmp_path_factory.mktemp("kg") / "kg.sqlite")
    for store in (pg, lite):
        import_records(store, bundle_dir("tiny"))
    yield lite, pg
    pg.close()
    lite.close()


def test_copy_batches_give_the_sqlite_graph_exactly(tiny_pair) -> None:
    lite, pg = tiny_pair
    assert snapshot(pg) == snapshot(lite)
    assert pg.stats() == lite.stats()
    for entity_id in ANCHORS:
        assert pg.neighbours(entity_id) == lite.neighbours(entity_id)
        assert pg.degree(entity_id) == lite.degree(entity_id)
        assert {k: sorted(v) for k, v in pg.adjacency([entity_id]).items()} == {
            k: sorted(v) for k, v in lite.adjacency([entity_id]).items()
        }
    assert pg.to_networkx(ANCHORS).edges(keys=True) == lite.to_networkx(ANCHORS).edges(keys=True)


def test_importing_again_in_other_batches_changes_nothing(tiny_pair) -> None:
    _, pg = tiny_pair
    before = snapshot(pg)
    pg.batch_size = 1000
    import_records(pg, bundle_dir("tiny"))
    assert snapshot(pg) == before


@pytest.fixture(scope="module")
def empty_pair(schemas: list[str], tmp_path_factory: pytest.TempPathFactory):
    schemas.append(new_schema_name())
    pg = PostgresGraphStore(postgres_dsn(), schema=schemas[-1], batch_size=4)
    lite = GraphStore(tmp_path_factory.mktemp("kg") / "kg.sqlite")
    yield lite, pg
    pg.close()
    lite.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entity_records, max_size=8), st.lists(relation_records, max_size=8))
def test_both_backends_merge_the_same_records_into_the_same_graph(
    empty_pair, entities, relations
) -> None:
    lite, pg = empty_pair
    assert load(pg, entities, relations) == load(lite, entities, relations)


def test_merge_by_xref_one_by_one_matches_sqlite(empty_pair) -> None:
    found = [
        Entity(id="ORPHA:1", type="disease", name="A", xrefs=["OMIM:9"], source="o"),
        Entity(id="DOID:2", type="disease", name="A prime", xrefs=["OMIM:9"], source="d"),
        Entity(id="MR:a", type="disease", name="A-like", xrefs=["OMIM:9"], source="x"),
    ]
    results = []
    for store in empty_pair:
        empty_graph(store)
        store.add_entities(found, merge_xrefs=True)
        results.append(snapshot(store))
    assert results[0] == results[1]
    [merged] = results[1][0]  # all three joined the Orphanet record through OMIM:9
    assert merged["id"] == "ORPHA:1"
    assert {merged["name"], *merged["aliases"]} == {"A", "A prime", "A-like"}


def test_the_sqlite_dialect_door_serves_the_qa_readers(tiny_pair) -> None:
    lite, pg = tiny_pair
    for anchor in ANCHORS:
        assert specialties_of([anchor], pg) == specialties_of([anchor], lite)
    row = pg.db.execute(
        "SELECT json_extract(clinical, '$.frequency') FROM relations WHERE subj = ? AND obj = ?",
        ("ORPHA:324", "HP:0000083"),
    ).fetchone()
    assert row == ("Very frequent (99-80%)",)
    changes = pg.db.total_changes
    for store in (lite, pg):  # both, so that the pair stays equal for the tests below
        store.add_entity(Entity(id="X:1", type="gene", name="x", source="t"))
    assert pg.db.total_changes > changes  # caches keyed on it are dropped after a write


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_sampling_in_batches_from_postgres_matches_the_in_memory_view(tiny_pair, strategy) -> None:
    lite, pg = tiny_pair
    memory = GraphView.from_store(lite)
    lazy = GraphView.from_store(pg, in_memory=False)
    assert isinstance(lazy, StoreGraphView) and len(lazy) == len(memory)
    for index, anchor in enumerate(ANCHORS):
        want = STRATEGIES[strategy](memory, anchor, max_hops=4, seed=index)
        got = STRATEGIES[strategy](lazy, anchor, max_hops=4, seed=index)
        assert (got and got.model_dump()) == (want and want.model_dump())
    assert 0 < lazy.queries < 3 * len(lazy)  # neighbourhoods came in batches, not node by node


def test_from_store_in_memory_reads_the_same_view_from_either_backend(tiny_pair) -> None:
    lite, pg = tiny_pair
    a, b = GraphView.from_store(lite), GraphView.from_store(pg)
    assert a.nodes() == b.nodes() and a.n_edges == b.n_edges
    assert all(a.neighbours(n) == b.neighbours(n) for n in a.nodes())


def test_config_names_the_backend_and_the_password_stays_out_of_messages(
    schemas: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = postgres_dsn()
    schemas.append(new_schema_name())
    graph = GraphSettings(backend="postgresql", dsn=dsn, schema_name=schemas[-1])
    with open_graph_store(Settings(workspace=tmp_path, graph=graph)) as store:
        assert isinstance(store, PostgresGraphStore) and store.schema == schemas[-1]
    with open_graph_store(Settings(workspace=tmp_path)) as store:
        assert isinstance(store, GraphStore) and store.path == tmp_path / "kg.sqlite"
    unset = graph.model_copy(update={"password_env": "KG_TEST_PASSWORD"})
    with pytest.raises(ConfigError, match="KG_TEST_PASSWORD is not set"):
        open_graph_store(Settings(workspace=tmp_path, graph=unset))
    with pytest.raises(ConfigError, match="dsn is required"):
        open_graph_store(Settings(workspace=tmp_path, graph=GraphSettings(backend="postgresql")))
    wrong = graph.model_copy(update={"dsn": "host=127.0.0.1 port=1 dbname=x user=kg"})
    monkeypatch.setenv("KG_TEST_PASSWORD", "s3cret-pw")
    wrong.password_env = "KG_TEST_PASSWORD"
    with pytest.raises(ConfigError) as failure:
        open_graph_store(Settings(workspace=tmp_path, graph=wrong))
    assert "port=1" in str(failure.value) and "s3cret-pw" not in str(failure.value)


@pytest.mark.slow
def test_kg_sample_and_qa_commands_run_on_postgres_by_config_alone(
    schemas: list[str], tmp_path: Path
) -> None:
    schemas.append(new_schema_name())
    (tmp_path / "medresearcher.toml").write_text(
        f'[graph]\nbackend = "postgresql"\ndsn = "{postgres_dsn()}"\n'
        f'schema_name = "{schemas[-1]}"\npassword_env = "KG_TEST_PASSWORD"\n',
        encoding="utf-8",
    )
    env = {"KG_TEST_PASSWORD": "s3cret-pw"}
    imported = cli("kg", "import", "--bundle", "tiny", cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr
    assert not (tmp_path / "workspace" / "kg.sqlite").exists()  # the graph went to PostgreSQL
    stats = json.loads(cli("kg", "stats", "--json", cwd=tmp_path, env=env).stdout)
    assert stats["relations"] == bundle_manifest("tiny")["counts"]["relations"]
    shown = cli("kg", "show", "ORPHA:324", "--limit", "0", cwd=tmp_path, env=env)
    assert "Fabry disease" in shown.stdout and "GLA" in shown.stdout, shown.stderr
    sampled = cli("sample", "--n", "3", "--max-hops", "3", cwd=tmp_path, env=env)
    assert sampled.returncode == 0, sampled.stderr
    assert len((tmp_path / "workspace" / "samples.jsonl").read_text().splitlines()) == 3
    made = cli("qa", "generate", "--n", "2", "--workers", "1", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    qa_lines = (tmp_path / "workspace" / "qa.jsonl").read_text().splitlines()
    assert len(qa_lines) == 2
    shown_qa = cli("qa", "show", json.loads(qa_lines[0])["id"], cwd=tmp_path, env=env)
    assert shown_qa.returncode == 0, shown_qa.stderr
    outputs = imported.stdout + imported.stderr + sampled.stdout + made.stdout + made.stderr
    assert "s3cret-pw" not in outputs
    manifests = "".join(p.read_text() for p in (tmp_path / "workspace").rglob("manifest.json"))
    assert "s3cret-pw" not in manifests
