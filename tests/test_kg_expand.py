"""Graph expansion (§3.1.1): walks, discovery through the retriever and the extractor model,
linking, relation checks, the step log and resuming from it — against the fake server."""

from __future__ import annotations

import itertools
import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medresearcher.config import Settings
from medresearcher.data import bundle_dir, iter_documents
from medresearcher.errors import ConfigError
from medresearcher.kg import GraphStore
from medresearcher.kg.expand import (
    NO_DISCOVERY,
    ExpansionConfig,
    expand,
)
from medresearcher.kg.extraction import ExtractedEntity, link_entity, new_entity_id
from medresearcher.kg.io import import_records
from medresearcher.llm.errors import LLMCallError
from medresearcher.llm.gateway import LLMGateway
from medresearcher.retrieval import EmbeddedRetriever, build_index
from medresearcher.schema import Entity
from medresearcher.workspace import read_jsonl
from tests.conftest import run
from tests.fakes.openai_server import FakeOpenAIServer, Reply

FABRY, GLA = "ORPHA:324", "HGNC:4296"
# Text of DOID:14499 (Fabry disease), which a search for Fabry disease retrieves.
DOID_SPAN = "X-linked inherited mutations in the GLA gene"
DOID_SPAN_2 = "buildup of globotriaosylceramide in the body's cells"


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kg") / "graph.sqlite"
    with GraphStore(path) as store:
        import_records(store, bundle_dir("tiny"))
    return path


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedRetriever:
    folder = tmp_path_factory.mktemp("tiny-index") / "index"
    build_index(iter_documents("tiny"), folder, source="bundle:tiny")
    return EmbeddedRetriever(folder)


@pytest.fixture
def store(tiny_graph: Path, tmp_path: Path):
    path = tmp_path / "graph.sqlite"
    shutil.copy(tiny_graph, path)
    with GraphStore(path) as graph:
        yield graph


@pytest.fixture
def gateway_for(make_settings: Callable[..., Settings]) -> Callable[[FakeOpenAIServer], LLMGateway]:
    return lambda server: LLMGateway(make_settings(server, max_retries=0), cache_mode="off")


def discover_only(**kw: Any) -> ExpansionConfig:
    return ExpansionConfig(**{"walk_probability": 0.0, "endpoint": "agent", "max_steps": 1, **kw})


def answer(entities: list[dict], relations: list[dict]) -> Reply:
    return Reply.text(json.dumps({"entities": entities, "relations": relations}))


def relation(subject: str, predicate: str, obj: str, evidence: str, **kw: Any) -> dict:
    return {
        "subject": subject,
        "predicate": predicate,
        "object": obj,
        "evidence": evidence,
        "doc_id": "DOID:14499",
        **kw,
    }


def sources_of_fabry_gla(store: GraphStore) -> set[str]:
    """Every source of any ORPHA:324 associated_gene HGNC:4296 relation (any context)."""
    relations = [
        r for r, e in store.neighbours(FABRY, predicates=["associated_gene"]) if e.id == GLA
    ]
    return {s for r in relations for s in store.sources_of(r)}


def log_of(path: Path) -> list[dict]:
    return list(read_jsonl(path))


def expand_with(store, server, gateway_for, retriever, path: Path, config) -> Any:
    async def go():
        async with gateway_for(server) as gateway:
            return await expand(
                store, [FABRY], retriever=retriever, gateway=gateway, config=config, log_path=path
            )

    return run(go())


def test_link_entity_by_xref_name_alias_and_type(store: GraphStore) -> None:
    assert (
        link_entity(store, ExtractedEntity(name="whatever", type="disease", xrefs=["OMIM:301500"]))
        == FABRY
    )
    assert (
        link_entity(store, ExtractedEntity(name="alpha-galactosidase A deficiency", type="disease"))
        == FABRY
    )
    assert (
        link_entity(store, ExtractedEntity(name="Anderson Fabry Disease", type="disease")) == FABRY
    )
    assert link_entity(store, ExtractedEntity(name="GLA", type="gene")) == GLA
    assert (
        link_entity(store, ExtractedEntity(name="x", type="gene", aliases=["galactosidase alpha"]))
        == GLA
    )
    novel = ExtractedEntity(name="Globotriaosylceramide  accumulation", type="Phenotype")
    assert link_entity(store, novel) is None
    assert new_entity_id(novel) == "MR:phenotype:globotriaosylceramide-accumulation"


def test_discovery_links_known_entities_creates_new_ones_with_provenance(
    store: GraphStore, fake_llm: FakeOpenAIServer, gateway_for, retriever, tmp_path: Path
) -> None:
    before = store.stats()["entities"]
    fake_llm.enqueue(
        answer(
            [
                {"name": "alpha-galactosidase A deficiency", "type": "disease"},
                {"name": "GLA", "type": "gene"},
                {"name": "globotriaosylceramide accumulation", "type": "phenotype"},
            ],
            [
                relation("alpha-galactosidase A deficiency", "associated_gene", "GLA", DOID_SPAN),
                relation(
                    "Fabry disease",
                    "has_phenotype",
                    "globotriaosylceramide accumulation",
                    "  buildup of GLOBOTRIAOSYLCERAMIDE\n in the body's cells ",
                    temporal={"onset": "childhood"},
                    confidence=1.7,
                ),
            ],
        )
    )
    path = tmp_path / "steps.jsonl"
    report = expand_with(store, fake_llm, gateway_for, retriever, path, discover_only())

    new_id = "MR:phenotype:globotriaosylceramide-accumulation"
    assert report.discoveries == 1 and report.entities_added == 1
    assert store.stats()["entities"] == before + 1
    assert not [
        e
        for e in store.iter_entities()
        if e.id.startswith("MR:disease") or e.id.startswith("MR:gene")
    ]
    new = store.entity(new_id)
    assert new is not None and new.source == "discovered:DOID:14499" and new.type == "phenotype"

    assert "DOID:14499" in sources_of_fabry_gla(store)
    (found,) = [
        r for r, e in store.neighbours(FABRY, predicates=["has_phenotype"]) if e.id == new_id
    ]
    assert found.source == "DOID:14499" and found.temporal == {"onset": "childhood"}
    assert found.confidence == 1.0
    assert (
        found.evidence.casefold()
        in " ".join(retriever.document("DOID:14499").text.split()).casefold()
    )
    assert store.sources_of(found) == ["DOID:14499"]

    (step,) = log_of(path)
    assert step["step_id"] == f"{FABRY}:0" and step["action"] == "discover"
    assert step["from"] == FABRY and step["to"] in {new_id, GLA}
    assert "DOID:14499" in step["retrieved"] and step["added_entities"] == [new_id]
    assert [FABRY, "has_phenotype", new_id] in step["added_relations"]
    prompt = fake_llm.chat_requests[0].json["messages"]
    text = " ".join(m["content"] for m in prompt)
    assert "Fabry disease" in text and "[doc_id: DOID:14499]" in text and "has_phenotype" in text


def test_bad_relations_are_rejected_with_reasons(
    store: GraphStore, fake_llm: FakeOpenAIServer, gateway_for, retriever, tmp_path: Path
) -> None:
    before = store.stats()
    fake_llm.enqueue(
        answer(
            [
                {"name": "GLA", "type": "gene"},
                {"name": "Novel thing A", "type": "phenotype"},
                {"name": "Novel thing B", "type": "phenotype"},
            ],
            [
                relation("Fabry disease", "related_to", "GLA", DOID_SPAN),
                relation(
                    "Fabry disease", "associated_gene", "GLA", "Fabry disease is caused by GLA"
                ),
                relation("Fabry disease", "associated_gene", "GLA", ""),
                relation("Novel thing A", "has_phenotype", "Novel thing B", DOID_SPAN_2),
                relation("Fabry disease", "associated_gene", "GLA", DOID_SPAN, doc_id="PMID:1"),
            ],
        )
    )
    path = tmp_path / "steps.jsonl"
    report = expand_with(store, fake_llm, gateway_for, retriever, path, discover_only())
    assert report.relations_rejected == Counter(
        {
            "vague predicate": 1,
            "evidence not in document": 2,
            "touches nothing in the graph": 1,
            "doc not retrieved": 1,
        }
    )
    assert report.relations_added == report.entities_added == 0
    after = store.stats()
    assert after["entities"] == before["entities"]
    assert after["relation_assertions_by_source"] == before["relation_assertions_by_source"]
    (step,) = log_of(path)
    assert [r["reason"] for r in step["rejected"]] == [
        "vague predicate",
        "evidence not in document",
        "evidence not in document",
        "touches nothing in the graph",
        "doc not retrieved",
    ]
    assert step["to"] == FABRY  # nothing linked: stays


def test_malformed_answer_twice_skips_the_step_and_the_run_goes_on(
    store: GraphStore, fake_llm: FakeOpenAIServer, gateway_for, retriever, tmp_path: Path
) -> None:
    fake_llm.enqueue(
        Reply.text("I think Fabry disease is interesting."),
        Reply.text('{"entities": [{"name": 3}'),
        answer(
            [{"name": "GLA", "type": "gene"}],
            [relation("Fabry disease", "associated_gene", "GLA", DOID_SPAN)],
        ),
    )
    path = tmp_path / "steps.jsonl"
    report = expand_with(store, fake_llm, gateway_for, retriever, path, discover_only(max_steps=2))
    assert len(fake_llm.chat_requests) == 3  # answer + repair, then the next step
    first, second = log_of(path)
    assert first["errors"][0].startswith("extraction failed after a repair round:")
    assert first["reason"].startswith("skipped") and first["to"] == FABRY
    assert second["step_id"] == f"{FABRY}:1" and not second["errors"] and second["to"] == GLA
    assert report.steps == 2 and len(report.errors) == 1


def test_walk_only_follows_edges_and_gets_stuck_without_neighbours(
    store: GraphStore, tmp_path: Path
) -> None:
    store.add_entity(Entity(id="TEST:lonely", type="disease", name="Lonely disease", source="test"))
    path = tmp_path / "steps.jsonl"
    config = ExpansionConfig(discover=False, max_steps=5, seed=7)
    report = run(
        expand(
            store,
            [FABRY, "TEST:lonely"],
            retriever=None,
            gateway=None,
            config=config,
            log_path=path,
        )
    )
    steps = log_of(path)
    walks = [s for s in steps if s["seed"] == FABRY]
    assert [s["action"] for s in walks] == ["walk"] * 5
    for s in walks:
        assert s["to"] in {e.id for _, e in store.neighbours(s["from"])}
    assert all(a["to"] == b["from"] for a, b in itertools.pairwise(walks))
    (stuck,) = [s for s in steps if s["seed"] == "TEST:lonely"]
    assert stuck["action"] == "stuck" and NO_DISCOVERY in stuck["reason"]
    assert report.walks == 5 and report.stuck == 1 and report.discoveries == 0

    with pytest.raises(ConfigError, match=r"llm\.extractor"):
        run(
            expand(
                store,
                [FABRY],
                retriever=None,
                gateway=None,
                config=ExpansionConfig(discover=True),
                log_path=tmp_path / "other.jsonl",
            )
        )


def walk(store: GraphStore, path: Path, steps: int) -> Any:
    config = ExpansionConfig(discover=False, max_steps=steps, seed=3)
    return run(
        expand(store, [FABRY, GLA], retriever=None, gateway=None, config=config, log_path=path)
    )


def test_an_interrupted_run_resumes_to_the_same_log(store: GraphStore, tmp_path: Path) -> None:
    whole = tmp_path / "whole.jsonl"
    walk(store, whole, 6)
    resumed = tmp_path / "resumed.jsonl"
    walk(store, resumed, 3)
    assert len(log_of(resumed)) == 6  # 3 per seed
    report = walk(store, resumed, 6)
    assert report.resumed == 6 and report.steps == 6

    def trace(path: Path) -> list[tuple]:
        return [(s["step_id"], s["from"], s["to"]) for s in log_of(path)]

    key = lambda t: (t[0].rsplit(":", 1)[0], int(t[0].rsplit(":", 1)[1]))  # noqa: E731
    assert sorted(trace(resumed), key=key) == sorted(trace(whole), key=key)
    assert len({t[2] for t in trace(whole)}) > 1  # it really moved
    assert walk(store, resumed, 6).steps == 0  # nothing left to do


def test_a_failed_model_call_is_logged_raised_and_retried_on_resume(
    store: GraphStore, fake_llm: FakeOpenAIServer, gateway_for, retriever, tmp_path: Path
) -> None:
    path = tmp_path / "steps.jsonl"
    fake_llm.enqueue(Reply.error(500, message="overloaded"))
    with pytest.raises(LLMCallError):
        expand_with(store, fake_llm, gateway_for, retriever, path, discover_only())
    (failed,) = log_of(path)
    assert failed["step_id"] == f"{FABRY}:0#failed1" and "overloaded" in failed["errors"][0]

    fake_llm.enqueue(
        answer(
            [{"name": "GLA", "type": "gene"}],
            [relation("Fabry disease", "associated_gene", "GLA", DOID_SPAN)],
        )
    )
    report = expand_with(store, fake_llm, gateway_for, retriever, path, discover_only())
    assert report.steps == 1 and report.discoveries == 1
    assert [s["step_id"] for s in log_of(path)] == [f"{FABRY}:0#failed1", f"{FABRY}:0"]
    assert "DOID:14499" in sources_of_fabry_gla(store)
