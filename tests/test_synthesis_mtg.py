"""The Masked Trajectory Guidance scaffold (paper §3.2, issue 9 §2).

The scaffold must show the path — masked triples and the placeholder plan — and no entity; it
must reach the model and stay out of the recorded training messages.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from medresearcher.agent import LLMPolicy, run_agent
from medresearcher.data import bundle_dir
from medresearcher.errors import InputError
from medresearcher.kg import GraphStore
from medresearcher.kg.io import import_records
from medresearcher.llm import LLMGateway
from medresearcher.qa.batch import QABatchOptions, chain_names, generate_qa
from medresearcher.sampling import GraphView
from medresearcher.schema import QARecord
from medresearcher.synthesis.mtg import mtg_prompt_version, mtg_scaffold
from medresearcher.tools.base import Observation, Tool, ToolBox
from medresearcher.workspace import JsonlWriter, read_jsonl
from tests.conftest import run
from tests.fakes.openai_server import Reply

NAMES = {
    "ORPHA:100": ["Alpha syndrome"],
    "HP:0001808": ["Fragile nails"],
    "ORPHA:200": ["Beta progeroid disease"],
}


def record(**update: object) -> QARecord:
    base = QARecord(
        id="Q:mtg",
        question="Which disorder classified under premature aging shares a feature with a "
        "rare disorder that has 8 annotated phenotypes?",
        answer="Beta progeroid disease",
        answer_id="ORPHA:200",
        cheat_sheet=[
            "Identify [E1] (disorder) from its clues: with 8 phenotypes annotated in Orphanet.",
            "From [E1], follow has_phenotype to [E2] (clinical feature).",
            "From [E2], follow has_phenotype backwards to [E3] (disorder).",
            "Answer with the name of [E3].",
        ],
        chain=["ORPHA:100", "has_phenotype", "HP:0001808", "^has_phenotype", "ORPHA:200"],
        masked_chain=[
            ["[MASK]", "has_phenotype", "[MASK]"],
            ["[MASK]", "^has_phenotype", "[MASK]"],
        ],
        placeholders={"E1": "ORPHA:100", "E2": "HP:0001808", "E3": "ORPHA:200"},
        sample_id="S:mtg",
        strategy="max_chain",
        hops=2,
        created_at="2026-01-01T00:00:00+00:00",
    )
    return base.model_copy(update=update)


def test_the_scaffold_shows_masked_triples_and_placeholders_only() -> None:
    text = mtg_scaffold(record(), names_by_id=NAMES)
    assert "([MASK], has_phenotype, [MASK])" in text
    assert "([MASK], ^has_phenotype, [MASK])" in text
    assert "[E1]" in text and "[E3]" in text
    for entity_id, names in NAMES.items():
        assert entity_id not in text
        assert all(name.lower() not in text.lower() for name in names)
    assert "Never mention this guidance" in text


def test_chinese_frame_and_a_chain_without_stored_masks() -> None:
    text = mtg_scaffold(record(masked_chain=[], cheat_sheet=[]), "zh")
    assert "研究指引" in text and "逆向" in text
    assert text.count("[MASK]") >= 4  # two masked triples, and the instruction
    assert "计划（" not in text  # no cheat sheet, no plan section


@pytest.mark.parametrize(
    ("update", "shown"),
    [
        ({"cheat_sheet": ["Start from Alpha syndrome and follow has_phenotype."]}, "ORPHA:100"),
        ({"cheat_sheet": ["Read ORPHA:200 to confirm."]}, "ORPHA:200"),
        ({"cheat_sheet": ["The answer is Beta progeroid disease."]}, "ORPHA:200"),
        ({"masked_chain": [["ORPHA:100", "has_phenotype", "[MASK]"]]}, "masked_chain[0]"),
        ({"masked_chain": [], "chain": []}, "no masked chain"),
    ],
)
def test_a_scaffold_that_would_show_an_entity_is_refused(update: dict, shown: str) -> None:
    with pytest.raises(InputError) as caught:
        mtg_scaffold(record(**update), names_by_id=NAMES)
    assert shown in str(caught.value)


@pytest.fixture(scope="module")
def tiny_records(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list, GraphStore]]:
    folder: Path = tmp_path_factory.mktemp("mtg")
    store = GraphStore(folder / "kg.sqlite")
    import_records(store, bundle_dir("tiny"))
    anchors = sorted(
        e.id for e in store.iter_entities() if e.id.startswith("ORPHA:") and e.attrs.get("rare")
    )
    with JsonlWriter(folder / "qa.jsonl") as out:
        options = QABatchOptions(n=8, workers=4, seed=3)
        asyncio.run(generate_qa(store, GraphView.from_store(store), anchors, options, out=out))
    yield [r for r in read_jsonl(folder / "qa.jsonl", QARecord) if r.passed], store
    store.close()


def test_template_questions_give_scaffolds_without_names(tiny_records) -> None:
    records, store = tiny_records
    assert records
    for qa in records:
        entities = dict.fromkeys([*qa.chain[0::2], *qa.placeholders.values()])
        names = {e: chain_names(store, [e])[e] for e in entities}
        text = mtg_scaffold(qa, names_by_id=names)  # raises if any name shows
        assert text.count("([MASK], ") == len(qa.masked_chain) >= 1
        leaked = [
            name
            for entity_id, forms in names.items()
            for name in [entity_id, *forms]
            if len(name) > 3 and name.lower() in text.lower() and name not in qa.question
        ]
        assert leaked == [], qa.id


class LookupArgs(BaseModel):
    query: str


class Lookup(Tool):
    name = "medical_retriever"
    description = "Ranked medical evidence for a query."
    Arguments = LookupArgs

    async def run(self, arguments: LookupArgs) -> Observation:
        return Observation(text=f"Alpha syndrome [ORPHA:100]: fragile nails ({arguments.query})")


def test_guidance_reaches_the_model_and_stays_out_of_the_messages(fake_llm, make_settings) -> None:
    qa = record()
    scaffold = mtg_scaffold(qa)
    fake_llm.enqueue(
        Reply.tools(("medical_retriever", {"query": "8 phenotypes"}), content="I search."),
        Reply.text("The evidence names it.\n<answer>Beta progeroid disease</answer>"),
    )

    async def go():
        async with LLMGateway(make_settings(fake_llm)) as gateway:
            return await run_agent(
                qa.question,
                policy=LLMPolicy(gateway, "agent"),
                toolbox=ToolBox([Lookup()]),
                qa_id=qa.id,
                guidance=scaffold,
            )

    trajectory = run(go())
    sent = [request.json["messages"][0]["content"] for request in fake_llm.chat_requests]
    assert len(sent) == 2 and all(system.endswith(scaffold) for system in sent)
    recorded = json.dumps(trajectory.messages, ensure_ascii=False)
    assert "[MASK]" not in recorded and "[E1]" not in recorded
    assert trajectory.guidance == "mtg"
    assert trajectory.stats["generation"]["guidance"] == scaffold
    assert trajectory.final_answer == "Beta progeroid disease"
    assert mtg_prompt_version() == "1"
