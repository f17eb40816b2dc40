"""The rule-based efficiency penalty (paper §4): repeated calls, calls after the answer appeared,
tools irrelevant to the question type; the share of wasted calls."""

from __future__ import annotations

import json

import pytest

from medresearcher.training.completion import parse_completion
from medresearcher.training.efficiency import (
    IRRELEVANT_TOOLS,
    efficiency_penalty,
    efficiency_report,
    question_type,
)

GOLD = "Fabry disease"
COUNT_Q = "It is a disorder linked to 6 genes. How many phenotypes does Orphanet annotate to it?"
IDENTIFY_Q = "It is a disorder classified under “Lysosomal disease”. Which disorder is it?"


def turn(*calls: tuple[str, dict], content: str = "") -> dict:
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {"type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for n, a in calls
        ],
    }


def result(text: str, name: str = "web_search") -> dict:
    return {"role": "tool", "name": name, "content": text}


ANSWER = {"role": "assistant", "content": f"<answer>{GOLD}</answer>"}


def report(messages: list[dict], **kwargs):
    return efficiency_report(parse_completion(messages), **kwargs)


def test_a_clean_rollout_costs_nothing() -> None:
    messages = [
        turn(("web_search", {"queries": ["GLA gene disorder"]})),
        result("GLA is linked to a lysosomal storage disorder"),
        turn(("document_read", {"url_or_id": "ORPHA:324"})),
        result("Fabry disease: X-linked, GLA"),
        ANSWER,
    ]
    assert report(messages, question=IDENTIFY_Q, answer_forms=[GOLD]).penalty == 0.0
    assert efficiency_penalty([[ANSWER]], answer=[GOLD]) == [0.0]  # no calls at all


def test_an_identical_call_repeated_is_wasted_even_with_reordered_keys() -> None:
    messages = [
        turn(("medical_retriever", {"query": "GLA", "k": 5})),
        result("nothing useful"),
        turn(("medical_retriever", {"k": 5, "query": "GLA"})),
        result("nothing useful"),
        turn(("medical_retriever", {"query": "GLA", "k": 10})),  # different arguments: fine
        result("nothing useful"),
        ANSWER,
    ]
    found = report(messages, question=IDENTIFY_Q, answer_forms=[GOLD])
    assert found.repeated == (1,)
    assert found.after_answer == () and found.irrelevant == ()
    assert found.penalty == pytest.approx(1 / 3)


def test_calls_in_turns_after_the_answer_appeared_are_wasted() -> None:
    messages = [
        turn(("web_search", {"queries": ["GLA"]}), ("web_search", {"queries": ["GLA gene"]})),
        result("GLA variants cause Anderson-Fabry disease"),  # an alias in the first turn
        result("other"),
        turn(("document_read", {"url_or_id": "ORPHA:324"})),
        result("…"),
        turn(("web_search", {"queries": ["Fabry treatment"]})),
        result("…"),
        ANSWER,
    ]
    found = report(messages, question=IDENTIFY_Q, answer_forms=[GOLD, "Anderson-Fabry disease"])
    assert found.after_answer == (2, 3)  # the same-turn sibling call (1) is not counted
    assert found.penalty == pytest.approx(2 / 4)


def test_without_a_gold_answer_the_rollouts_own_answer_is_looked_for() -> None:
    messages = [
        turn(("web_search", {"queries": ["GLA"]})),
        result("Fabry disease is caused by GLA"),
        turn(("web_search", {"queries": ["more"]})),
        result("…"),
        ANSWER,
    ]
    assert report(messages).after_answer == (1,)
    assert efficiency_penalty([messages]) == [0.5]


def test_numeric_answers_are_not_looked_for_in_observations() -> None:
    messages = [
        turn(("web_search", {"queries": ["genes"]})),
        result("linked to 4 genes; 4 references"),
        turn(("web_search", {"queries": ["more"]})),
        result("…"),
        {"role": "assistant", "content": "<answer>4</answer>"},
    ]
    assert report(messages, answer_forms=["4"]).after_answer == ()


def test_a_tool_irrelevant_to_the_question_type_is_wasted() -> None:
    messages = [
        turn(("clinical_reasoning", {"present_findings": ["cataract"]})),
        result("differential: …", "clinical_reasoning"),
        turn(("web_search", {"queries": ["disorder phenotypes"]})),
        result("…"),
        {"role": "assistant", "content": "<answer>37</answer>"},
    ]
    counted = report(messages, question=COUNT_Q, paradigm="count")
    assert counted.irrelevant == (0,) and counted.penalty == 0.5
    # the same call is fine when the question asks to identify a disorder
    assert report(messages, paradigm="identify").irrelevant == ()
    # the paradigm column is optional: the wording says "how many"
    assert efficiency_penalty([messages], question=[COUNT_Q]) == [0.5]


def test_a_call_that_breaks_several_rules_counts_once() -> None:
    messages = [
        turn(("clinical_reasoning", {"present_findings": ["x"]})),
        result("Fabry disease ranks first", "clinical_reasoning"),
        turn(("clinical_reasoning", {"present_findings": ["x"]})),
        result("Fabry disease ranks first", "clinical_reasoning"),
        ANSWER,
    ]
    found = report(messages, paradigm="count", answer_forms=[GOLD])
    assert found.wasted == (0, 1)
    assert found.penalty == 1.0


def test_the_penalty_reads_verl_text_too() -> None:
    call = '<tool_call>{"name": "web_search", "arguments": {"queries": ["GLA"]}}</tool_call>'
    text = (
        f"{call}\nuser\n<tool_response>x</tool_response>\nassistant\n"
        f"{call}\nuser\n<tool_response>x</tool_response>\nassistant\n<answer>Fabry disease</answer>"
    )
    assert efficiency_penalty([text], answer=[GOLD]) == [0.5]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (COUNT_Q, "count"),
        ("… To how many disorders is this feature annotated?", "count"),
        (IDENTIFY_Q, "identify"),
        ("… linked to a single gene. What is its mode of inheritance?", "attribute"),
        ("… heart transplant”. At what age does it begin?", "attribute"),
        ("Two lines of enquiry lead to the same disorder. … Which disorder is it?", "intersect"),
        ("Tell me about Fabry disease.", None),
        (None, None),
    ],
)
def test_question_type_reads_the_final_question(question, expected) -> None:
    assert question_type(question) == expected


def test_every_paradigm_has_an_entry_and_search_tools_are_never_irrelevant() -> None:
    assert set(IRRELEVANT_TOOLS) == {"identify", "attribute", "count", "intersect"}
    for unhelpful in IRRELEVANT_TOOLS.values():
        assert not unhelpful & {"web_search", "document_read", "medical_retriever"}
