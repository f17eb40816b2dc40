"""The LLM question writer against the fake model server: valid, repaired, rejected, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medresearcher.config import EndpointSettings, Settings
from medresearcher.errors import InputError
from medresearcher.kg.store import GraphStore
from medresearcher.llm import LLMGateway
from medresearcher.qa.checks import run_checks
from medresearcher.qa.llm_writer import QARejection, qa_record_id, write_llm_question
from medresearcher.schema import MASK, Entity, QARecord, Relation, Sample
from tests.conftest import run
from tests.fakes.openai_server import FakeOpenAIServer, Reply

CHAIN = ["ORPHA:324", "associated_gene", "HGNC:4296", "^associated_gene", "ORPHA:355"]
QUESTION = (
    "An X-linked lysosomal storage disorder is caused by loss of an enzyme-coding gene. Which "
    "autosomal recessive sphingolipidosis is also associated with that gene here?"
)
STEPS = [
    "Identify the X-linked lysosomal disorder [E1].",
    "Follow associated_gene from [E1] to its gene [E2].",
    "Find the other disorder [E3] associated with [E2] and verify its inheritance.",
]
MAPPING = {"[E1]": "ORPHA:324", "E2": "HGNC:4296", "E3": "ORPHA:355"}
NOW = "2026-01-01T00:00:00Z"


@pytest.fixture
def store(tmp_path: Path) -> GraphStore:
    def entity(id_: str, type_: str, name: str, *aliases: str, **attrs: Any) -> Entity:
        return Entity(id=id_, type=type_, name=name, aliases=list(aliases), attrs=attrs, source="t")

    graph = GraphStore(tmp_path / "kg.sqlite")
    graph.add_entities(
        [
            entity("ORPHA:324", "disease", "Fabry disease", "Anderson-Fabry disease",
                   inheritance=["X-linked recessive"], prevalence_class="1-5 / 10 000"),
            entity("HGNC:4296", "gene", "galactosidase alpha", "GLA", symbol="GLA"),
            entity("ORPHA:355", "disease", "Gaucher disease", "Glucocerebrosidase deficiency",
                   inheritance=["Autosomal recessive"], prevalence_class="1-9 / 100 000",
                   n_phenotypes=3, rare=True),
            entity("HP:0001744", "phenotype", "Splenomegaly"),
            entity("HP:0002240", "phenotype", "Hepatomegaly"),
            entity("HP:0001903", "phenotype", "Anemia"),
        ]
    )  # fmt: skip
    graph.add_relations(
        [
            Relation(subj="ORPHA:324", pred="associated_gene", obj="HGNC:4296", source="t"),
            Relation(subj="ORPHA:355", pred="associated_gene", obj="HGNC:4296", source="t",
                     clinical={"association": "modifier"}),
            *(
                Relation(subj="ORPHA:355", pred="has_phenotype", obj=hp, source="t",
                         clinical={"frequency": "very frequent"})
                for hp in ("HP:0001744", "HP:0002240", "HP:0001903")
            ),
        ]
    )  # fmt: skip
    yield graph
    graph.close()


def _sample(**changes: Any) -> Sample:
    fields: dict[str, Any] = {
        "id": "S:fabry",
        "strategy": "max_chain",
        "seed": 0,
        "anchor": "ORPHA:324",
        "nodes": CHAIN[0::2],
        "edges": [],
        "chain": CHAIN,
        "hops": 2,
        "unique": True,
    }
    fields.update(changes)
    return Sample(**fields)


def _settings(server: FakeOpenAIServer, tmp_path: Path) -> Settings:
    endpoint = EndpointSettings(
        base_url=server.base_url, model="writer-model", retry_backoff_s=0.01, max_retries=0
    )
    return Settings(workspace=tmp_path / "ws", llm={"writer": endpoint})


def _reply(**changes: Any) -> Reply:
    payload: dict[str, Any] = {
        "question": QUESTION,
        "answer": "Gaucher disease",
        "cheat_sheet": STEPS,
        "entity_mapping": MAPPING,
    }
    payload.update(changes)
    return Reply.text(json.dumps(payload))


def _write(server: FakeOpenAIServer, tmp_path: Path, store: GraphStore, **kwargs: Any) -> Any:
    sample = kwargs.pop("sample", None) or _sample()

    async def go() -> Any:
        async with LLMGateway(_settings(server, tmp_path)) as gateway:
            return await write_llm_question(gateway, "writer", sample, store, now=NOW, **kwargs)

    return run(go())


def _prompt(server: FakeOpenAIServer, n: int = 0) -> str:
    return "\n".join(m["content"] for m in server.chat_requests[n].json["messages"])


def test_a_valid_answer_becomes_a_full_record(fake_llm, tmp_path, store) -> None:
    fake_llm.enqueue(_reply())
    record = _write(fake_llm, tmp_path, store, level=3, quantitative=True)
    assert isinstance(record, QARecord)
    assert len(fake_llm.chat_requests) == 1
    assert record.id == qa_record_id("S:fabry", "llm:writer-model", "identify", 3, "en")
    assert record.id != qa_record_id("S:fabry", "llm:writer-model", "identify", 2, "en")
    assert (record.answer, record.answer_id) == ("Gaucher disease", "ORPHA:355")
    assert record.answer_aliases == ["Glucocerebrosidase deficiency"]
    assert record.masked_chain == [
        [MASK, "associated_gene", MASK],
        [MASK, "^associated_gene", MASK],
    ]
    assert record.placeholders == {"E1": "ORPHA:324", "E2": "HGNC:4296", "E3": "ORPHA:355"}
    assert record.difficulty.level == 3 and record.created_at == NOW
    assert record.provenance["writer"] == "llm:writer-model"
    assert record.provenance["prompt_version"] == "1"
    assert record.provenance["endpoint"] == "writer" and not record.provenance["repaired"]
    names = {e: [store.entity(e).name, *store.entity(e).aliases] for e in CHAIN[0::2]}
    checks = run_checks(record, names_by_id=names, sample=_sample())
    assert all(c.passed for c in checks.values()), checks
    # The prompt carries the chain, its context, the parameters and the schema.
    prompt = _prompt(fake_llm)
    for text in ("Gaucher disease", "[E3] associated_gene [E2]", "association: modifier",
                 "prevalence_class = 1-9 / 100 000", "Obfuscation depth 3",
                 "quantitative clue", "entity_mapping", "JSON schema"):  # fmt: skip
        assert text in prompt, text


def test_malformed_output_is_repaired_by_a_second_reply(fake_llm, tmp_path, store) -> None:
    fake_llm.enqueue(Reply.text('{"question": "cut off'), _reply())
    record = _write(fake_llm, tmp_path, store)
    assert isinstance(record, QARecord)
    assert len(fake_llm.chat_requests) == 2


def test_malformed_output_twice_is_rejected_with_the_raw_text(fake_llm, tmp_path, store) -> None:
    fake_llm.enqueue(Reply.text("no JSON here"), Reply.text("still none"))
    result = _write(fake_llm, tmp_path, store)
    assert isinstance(result, QARejection)
    assert result.reason.startswith("malformed output")
    assert result.raw_output == "still none"
    assert (result.sample_id, result.writer, result.created_at) == (
        "S:fabry",
        "llm:writer-model",
        NOW,
    )


def test_an_invalid_question_gets_one_repair_round(fake_llm, tmp_path, store) -> None:
    leaky = "Which sphingolipidosis, Gaucher disease, shares a gene with a lysosomal disorder?"
    fake_llm.enqueue(_reply(question=leaky), _reply())
    record = _write(fake_llm, tmp_path, store)
    assert isinstance(record, QARecord)
    assert record.question == QUESTION and record.provenance["repaired"] is True
    repair = fake_llm.chat_requests[1].json["messages"]
    assert repair[-2]["role"] == "assistant" and leaky in repair[-2]["content"]
    assert "gives the answer away" in repair[-1]["content"]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"answer": "Fabry disease"}, "none of the given answers"),
        ({"question": QUESTION + " (Hint: GLA.)"}, "names chain entities"),
        ({"cheat_sheet": ["Start from Fabry disease."]}, "cheat sheet step 1 names"),
        ({"cheat_sheet": ["Look up [E9]."]}, "unknown placeholder [E9]"),
        ({"entity_mapping": {"E1": "ORPHA:999"}}, "not a chain entity"),
        ({"entity_mapping": {"E1": "ORPHA:355"}}, "but [E1] is 'ORPHA:324'"),
        ({"entity_mapping": {"first": "ORPHA:324"}}, "not a placeholder"),
    ],
)
def test_invalid_twice_is_rejected_with_the_reason(
    fake_llm, tmp_path, store, bad: dict[str, Any], problem: str
) -> None:
    fake_llm.enqueue(_reply(**bad), _reply(**bad))
    result = _write(fake_llm, tmp_path, store)
    assert isinstance(result, QARejection)
    assert problem in result.reason and any(problem in p for p in result.problems)
    assert json.loads(result.raw_output)["answer"] == json.loads(_reply(**bad).content)["answer"]
    assert len(fake_llm.chat_requests) == 2


def test_attribute_and_count_answers_come_from_the_chain_end(fake_llm, tmp_path, store) -> None:
    question = "What is the prevalence class of the sphingolipidosis sharing a gene with ...?"
    fake_llm.enqueue(_reply(question=question, answer="1-9 / 100 000"))
    record = _write(fake_llm, tmp_path, store, paradigm="attribute")
    assert isinstance(record, QARecord) and record.answer_id is None
    assert record.provenance["answer_source"] == {
        "entity": "ORPHA:355",
        "attribute": "prevalence_class",
    }
    assert "Possible answers" in _prompt(fake_llm) and "rare = True" not in _prompt(fake_llm)

    fake_llm.enqueue(_reply(question=question.replace("prevalence class", "number"), answer="3"))
    record = _write(fake_llm, tmp_path, store, paradigm="count")
    assert isinstance(record, QARecord) and record.answer == "3"
    assert record.provenance["answer_source"]["entity"] == "ORPHA:355"


def test_chinese_prompts_and_records(fake_llm, tmp_path, store) -> None:
    question = (
        "一种X连锁溶酶体贮积症由一个编码酶的基因缺失引起。"
        "哪一种常染色体隐性鞘脂贮积病也与该基因相关？"
    )
    fake_llm.enqueue(_reply(question=question))
    record = _write(fake_llm, tmp_path, store, language="zh", quantitative=False)
    assert isinstance(record, QARecord) and record.language == "zh"
    assert "只使用定性线索" in _prompt(fake_llm)
    assert record.id == qa_record_id("S:fabry", "llm:writer-model", "identify", 1, "zh")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample": _sample(chain=[], hops=0)}, "field 'chain'"),
        ({"sample": _sample(chain=["ORPHA:324"], hops=0)}, "field 'chain'"),
        ({"paradigm": "riddle"}, "unknown question paradigm 'riddle'"),
        ({"language": "fr"}, "unknown question language"),
        ({"sample": _sample(chain=["ORPHA:324", "associated_gene", "HGNC:0"])}, "HGNC:0"),
    ],
)
def test_bad_input_fails_clearly_before_any_call(
    fake_llm, tmp_path, store, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        _write(fake_llm, tmp_path, store, **kwargs)
    assert fake_llm.chat_requests == []
