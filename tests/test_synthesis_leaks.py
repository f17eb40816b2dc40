"""The scaffold-leak detector (issue 9 §2) on crafted trajectories.

One record, a two-hop chain; each test writes the few turns that matter and checks that the
detector flags exactly the turn that gives the scaffold away.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from medresearcher.schema import QARecord, Trajectory
from medresearcher.synthesis.leaks import guidance_mentions, masked_entities, scaffold_leaks

QUESTION = (
    "Start from a rare disorder with 8 phenotypes annotated in Orphanet. It presents with a "
    "clinical feature annotated to 9 disorders. Which other disorder classified under "
    "premature aging also presents with it?"
)
NAMES = {
    "ORPHA:100": ["Alpha syndrome"],
    "HP:0001808": ["Fragile nails", "Brittle nails"],
    "ORPHA:200": ["Beta progeroid disease", "Beta syndrome type 2"],
}


def record(question: str = QUESTION) -> QARecord:
    return QARecord(
        id="Q:leaks",
        question=question,
        answer="Beta progeroid disease",
        answer_id="ORPHA:200",
        answer_aliases=["Beta syndrome type 2"],
        cheat_sheet=["Identify [E1].", "Follow has_phenotype to [E2].", "Answer with [E3]."],
        chain=["ORPHA:100", "has_phenotype", "HP:0001808", "^has_phenotype", "ORPHA:200"],
        masked_chain=[
            ["[MASK]", "has_phenotype", "[MASK]"],
            ["[MASK]", "^has_phenotype", "[MASK]"],
        ],
        placeholders={"E1": "ORPHA:100", "E2": "HP:0001808", "E3": "ORPHA:200"},
        sample_id="S:leaks",
        strategy="max_chain",
        hops=2,
        created_at="2026-01-01T00:00:00+00:00",
    )


def call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def trajectory(*turns: dict[str, Any], question: str = QUESTION) -> Trajectory:
    return Trajectory(
        id="T:leaks",
        qa_id="Q:leaks",
        policy="llm:agent",
        guidance="mtg",
        question=question,
        messages=[
            {"role": "system", "content": "You are MedResearcher."},
            {"role": "user", "content": question},
            *turns,
        ],
        termination="answer",
        created_at="2026-01-01T00:00:00+00:00",
    )


def thought(text: str, *calls: dict[str, Any], reasoning: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = list(calls)
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return message


def result(call_id: str, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


SEARCH = call("call_1", "medical_retriever", query="8 phenotypes premature aging")
SEARCH_RESULT = result(
    "call_1",
    "1. Alpha syndrome [ORPHA:100] · reference\n   Features: Fragile nails; short stature.",
)


def test_naming_a_masked_entity_before_any_observation_is_a_leak() -> None:
    leaks = scaffold_leaks(
        trajectory(thought("The key feature must be fragile nails, so I search.", SEARCH)),
        record(),
        NAMES,
    )
    assert len(leaks) == 1
    assert "message 2 (content)" in leaks[0]
    assert "E2" in leaks[0] and "HP:0001808" in leaks[0]


def test_the_same_name_after_an_observation_showed_it_is_no_leak() -> None:
    clean = trajectory(
        thought("I search by the clues of the question.", SEARCH),
        SEARCH_RESULT,
        thought("Alpha syndrome has fragile nails; next, who else has Fragile nails?"),
    )
    assert scaffold_leaks(clean, record(), NAMES) == []


def test_an_alias_shown_unmasks_the_entity_and_the_question_shows_nothing_masked() -> None:
    shown_by_alias = trajectory(
        thought("I search by the clues.", SEARCH),
        result("call_1", "Alpha syndrome: brittle nails (80-99 %)."),
        thought("So the feature is fragile nails."),
    )
    assert scaffold_leaks(shown_by_alias, record(), NAMES) == []
    # A name the question itself gives is not masked.
    question = QUESTION + " (The start is Alpha syndrome.)"
    named_in_question = trajectory(
        thought("Alpha syndrome is the start.", SEARCH), question=question
    )
    assert scaffold_leaks(named_in_question, record(question), NAMES) == []


def test_mentioning_the_guidance_is_a_leak() -> None:
    leaks = scaffold_leaks(
        trajectory(thought("Following the guidance, I first identify the start.", SEARCH)),
        record(),
        NAMES,
    )
    assert leaks == ["message 2 (content): mentions the guidance ('guidance')"]


@pytest.mark.parametrize(
    "text",
    [
        "Per the hint, step two follows has_phenotype.",
        "Now [E2] must be found.",
        "The chain is ([MASK], has_phenotype, [MASK]).",
        "The cheat sheet says to verify the group.",
        "按照研究指引，我先确定起点。",
        "根据提示信息，下一步查找表型。",
    ],
)
def test_every_way_of_naming_the_scaffold_is_caught(text: str) -> None:
    assert guidance_mentions(text), text
    leaks = scaffold_leaks(trajectory(thought(text, SEARCH)), record(), NAMES)
    assert any("mentions the guidance" in leak for leak in leaks)


@pytest.mark.parametrize(
    "text",
    [
        "The FDA guidance on enzyme replacement does not apply here.",
        "The results hint at a laminopathy.",
        "根据临床指引，这不是首选治疗。",
        "Fragile X syndrome is a different disorder.",  # whole words only
    ],
)
def test_ordinary_medical_wording_is_not_a_leak(text: str) -> None:
    assert scaffold_leaks(trajectory(thought(text, SEARCH)), record(), NAMES) == []


def test_reasoning_content_is_read_too() -> None:
    leaks = scaffold_leaks(
        trajectory(thought("I search.", SEARCH, reasoning="It is surely Beta progeroid disease.")),
        record(),
        NAMES,
    )
    assert len(leaks) == 1 and "message 2 (reasoning_content)" in leaks[0]
    assert "ORPHA:200" in leaks[0]


def test_a_call_by_an_unseen_id_leaks_and_its_echo_shows_nothing() -> None:
    read = call("call_1", "document_read", url_or_id="ORPHA:200", goal="")
    turns = (
        thought("I read a record.", read),
        result("call_1", "Error: document_read: no document ORPHA:200 in the index"),
        thought("Then it is ORPHA:200 after all."),
    )
    leaks = scaffold_leaks(trajectory(*turns), record(), NAMES)
    assert [leak.split(":")[0] for leak in leaks] == [
        "message 2 (arguments)",
        "message 4 (content)",
    ]
    # Without looking at arguments, only the thought leaks: the echo is not evidence.
    leaks = scaffold_leaks(trajectory(*turns), record(), NAMES, check_arguments=False)
    assert [leak.split(":")[0] for leak in leaks] == ["message 4 (content)"]


def test_masked_entities_include_the_answer_forms_and_placeholders() -> None:
    forms = masked_entities(record(), NAMES)
    assert set(forms) == {"ORPHA:100", "HP:0001808", "ORPHA:200"}
    assert "Beta syndrome type 2" in forms["ORPHA:200"]
    assert forms["HP:0001808"][0] == "HP:0001808"
