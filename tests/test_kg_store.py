"""The graph store: import, merge rules, queries, exports, bad input, and its properties.

Every test runs on both backends (the ``graph_store`` / ``make_graph_store`` fixtures of
tests/graph_fixtures.py): SQLite, and PostgreSQL when a test server is configured.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medresearcher.data import bundle_dir, bundle_manifest
from medresearcher.errors import InputError
from medresearcher.kg import GraphStore, normalise_name
from medresearcher.kg.io import export_graph, import_records
from medresearcher.schema import Entity, Relation
from tests.graph_fixtures import empty_graph


@pytest.fixture(scope="module")
def tiny_store(make_graph_store: Callable[..., Any]) -> GraphStore:
    store = make_graph_store()
    import_records(store, bundle_dir("tiny"))
    return store


def test_tiny_import_matches_the_bundle_and_knows_fabry(tiny_store: GraphStore) -> None:
    counts = bundle_manifest("tiny")["counts"]
    stats = tiny_store.stats()
    assert (stats["entities"], stats["relations"]) == (counts["entities"], counts["relations"])
    assert stats["relations_by_predicate"] == counts["relations_by_predicate"]
    genes = tiny_store.neighbours("ORPHA:324", predicates=["associated_gene"])
    assert [(e.id, e.name) for _, e in genes] == [("HGNC:4296", "GLA")]
    phenotypes = tiny_store.neighbours(
        "ORPHA:324", predicates=["has_phenotype"], types=["phenotype"]
    )
    renal = next(r for r, e in phenotypes if e.id == "HP:0000083")
    assert renal.clinical["frequency"] == "Very frequent (99-80%)"
    assert renal.source == "Orphanet ORPHApackets 2025-12"
    assert any("X-linked" in m for m in tiny_store.entity("ORPHA:324").attrs["inheritance"])
    twins = tiny_store.neighbours("ORPHA:324", predicates=["same_as"], direction="in")
    assert [e.id for _, e in twins] == ["DOID:14499"]


def test_lookups_by_alias_and_xref(tiny_store: GraphStore) -> None:
    assert "ORPHA:324" in tiny_store.find("Anderson–Fabry disease")  # en dash, other case
    assert tiny_store.find("GLA", type="gene") == ["HGNC:4296"]
    assert tiny_store.resolve("OMIM:301500") == "ORPHA:324"
    assert tiny_store.resolve("ORPHA:324") == "ORPHA:324"
    assert tiny_store.resolve("OMIM:0") is None
    assert normalise_name("Sjögren's  Syndrome") == "sjogren syndrome"


def test_names_of_gives_name_then_aliases_and_the_id_when_unknown(tiny_store: GraphStore) -> None:
    fabry = tiny_store.entity("ORPHA:324")
    assert fabry is not None
    names = tiny_store.names_of(["ORPHA:324", "NOPE:1", "ORPHA:324"])
    assert list(names) == ["ORPHA:324", "NOPE:1"]
    assert names["ORPHA:324"] == [fabry.name, *fabry.aliases] and len(fabry.aliases) > 0
    assert names["NOPE:1"] == ["NOPE:1"]


def test_subgraph_networkx_and_degree(tiny_store: GraphStore) -> None:
    ids = ["ORPHA:324", "HGNC:4296", "HP:0000083", "ORPHA:355"]
    entities, relations = tiny_store.subgraph(ids)
    assert {e.id for e in entities} == set(ids)
    assert {(r.subj, r.pred, r.obj) for r in relations} == {
        ("ORPHA:324", "associated_gene", "HGNC:4296"),
        ("ORPHA:324", "has_phenotype", "HP:0000083"),
    } | {(r.subj, r.pred, r.obj) for r in relations if r.subj == "ORPHA:355"}
    graph = tiny_store.to_networkx(ids)
    assert graph.nodes["HGNC:4296"]["name"] == "GLA"
    edge = graph.get_edge_data("ORPHA:324", "HP:0000083")["has_phenotype"]
    assert edge["clinical"]["frequency"] == "Very frequent (99-80%)"
    assert tiny_store.degree("ORPHA:324") == len(tiny_store.neighbours("ORPHA:324"))


def test_exports_read_back(
    tiny_store: GraphStore, make_graph_store: Callable[..., Any], tmp_path: Path
) -> None:
    folder = export_graph(tiny_store, tmp_path / "jsonl", "jsonl")
    with make_graph_store() as again:
        import_records(again, folder)
        assert again.stats() == tiny_store.stats()
    graph = nx.read_graphml(export_graph(tiny_store, tmp_path / "kg.graphml", "graphml"))
    assert graph.number_of_nodes() == tiny_store.stats()["entities"]
    assert json.loads(graph.nodes["ORPHA:324"]["attrs"])["rare"] is True
    d3 = json.loads(export_graph(tiny_store, tmp_path / "kg.json", "d3").read_text())
    assert {"nodes", "links"} == set(d3)
    assert {"source": "ORPHA:324", "target": "HGNC:4296"}.items() <= next(
        link for link in d3["links"] if link["target"] == "HGNC:4296"
    ).items()


def test_a_relation_to_a_missing_entity_names_file_record_and_field(
    make_graph_store: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "entities.jsonl").write_text(
        Entity(id="A:1", type="disease", name="a", source="s").model_dump_json() + "\n"
    )
    good = Relation(subj="A:1", pred="same_as", obj="A:1", source="s").model_dump_json()
    bad = Relation(subj="A:1", pred="treats", obj="B:2", source="s").model_dump_json()
    (tmp_path / "relations.jsonl").write_text(f"{good}\n{bad}\n")
    with make_graph_store() as store:
        with pytest.raises(InputError, match=r"relations.jsonl:2: obj: entity 'B:2' is not"):
            import_records(store, tmp_path)
        assert store.stats()["relations"] == 0  # the batch was rolled back
    (tmp_path / "relations.jsonl").write_text(f'{good}\n{{"subj": "A:1", "obj": "A:1"}}\n')
    with (
        make_graph_store() as store,
        pytest.raises(InputError, match=r"relations.jsonl:2: pred: Field required"),
    ):
        import_records(store, tmp_path)


def test_merge_by_xref_is_opt_in(graph_store: GraphStore) -> None:
    with graph_store as store:
        store.add_entity(
            Entity(id="ORPHA:1", type="disease", name="A", xrefs=["OMIM:9"], source="o")
        )
        twin = Entity(id="DOID:2", type="disease", name="A prime", xrefs=["OMIM:9"], source="d")
        assert store.add_entity(twin) == "DOID:2"
        found = Entity(
            id="MR:disease:a", type="disease", name="A-like", xrefs=["ORPHA:1"], source="x"
        )
        assert store.add_entity(found, merge_xrefs=True) == "ORPHA:1"
        assert "A-like" in store.entity("ORPHA:1").aliases


def test_relation_provenance_keeps_every_source(graph_store: GraphStore) -> None:
    with graph_store as store:
        for i in ("A:1", "B:2"):
            store.add_entity(Entity(id=i, type="disease", name=i, source="s"))
        assert store.add_relation(
            Relation(subj="A:1", pred="treats", obj="B:2", source="PMID:2", evidence="x treats y")
        )
        assert not store.add_relation(
            Relation(subj="A:1", pred="treats", obj="B:2", source="PMID:1")
        )
        relation = next(store.iter_relations())
        assert store.sources_of(relation) == ["PMID:1", "PMID:2"]
        assert relation.source == "PMID:1"


# -- properties ------------------------------------------------------------------------

names = st.sampled_from(["Fabry disease", "GLA", "Anderson-Fabry", "FD", "alpha-Gal A"])
sources = st.sampled_from(["orphanet", "do", "pubmed:1", "pubmed:2"])
entity_records = st.builds(
    Entity,
    id=st.sampled_from(["ORPHA:324", "HGNC:4296", "DOID:14499"]),
    type=st.sampled_from(["disease", "gene"]),
    name=names,
    aliases=st.lists(names, max_size=3),
    xrefs=st.lists(st.sampled_from(["OMIM:301500", "MESH:D000795", "UMLS:C1"]), max_size=2),
    attrs=st.dictionaries(
        st.sampled_from(["onset", "rare", "inheritance"]),
        st.sampled_from(["adult", "child", True, False]),
        max_size=2,
    ),
    description=st.one_of(st.none(), st.sampled_from(["a", "b"])),
    source=sources,
)
relation_records = st.builds(
    Relation,
    subj=st.sampled_from(["ORPHA:324", "DOID:14499"]),
    pred=st.sampled_from(["associated_gene", "same_as"]),
    obj=st.sampled_from(["HGNC:4296", "ORPHA:324"]),
    clinical=st.dictionaries(
        st.just("frequency"), st.sampled_from(["rare", "frequent"]), max_size=1
    ),
    source=sources,
    confidence=st.sampled_from([0.5, 0.9]),
)


def snapshot(store: GraphStore) -> tuple:
    return (
        [e.model_dump() for e in store.iter_entities()],
        [(r.model_dump(), store.sources_of(r)) for r in store.iter_relations()],
    )


@pytest.fixture(scope="module")
def reused_store(make_graph_store: Callable[..., Any]) -> GraphStore:
    """One store per backend, emptied before each example (batches of 5 on PostgreSQL,
    so an example spans several)."""
    return make_graph_store(batch_size=5)


def load(s: GraphStore, entities: list[Entity], relations: list[Relation]) -> tuple:
    empty_graph(s)
    base = [
        Entity(id=i, type="disease", name=i, source="base")
        for i in ("ORPHA:324", "HGNC:4296", "DOID:14499")
    ]
    s.add_entities(base)
    s.add_entities(entities)
    s.add_relations(relations)
    return snapshot(s)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(entity_records, max_size=6),
    st.lists(relation_records, max_size=6),
    st.randoms(use_true_random=False),
)
def test_merge_is_order_independent(reused_store, entities, relations, rng) -> None:
    shuffled_e, shuffled_r = entities[:], relations[:]
    rng.shuffle(shuffled_e)
    rng.shuffle(shuffled_r)
    assert load(reused_store, entities, relations) == load(reused_store, shuffled_e, shuffled_r)


@settings(max_examples=25, deadline=None)
@given(st.lists(entity_records, max_size=6), st.lists(relation_records, max_size=6))
def test_importing_the_same_data_twice_changes_nothing(reused_store, entities, relations) -> None:
    once = load(reused_store, entities, relations)
    assert once == load(reused_store, entities + entities, relations + relations)
