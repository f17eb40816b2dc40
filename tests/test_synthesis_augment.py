"""Failure augmentation (paper §3.2, issue 9 §5) on crafted trajectories.

Every augmented trajectory must keep each call paired with exactly one result, and must show
the failure followed by a successful call of the same tool with equivalent arguments.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from medresearcher.agent import CallRecord, behaviour_stats
from medresearcher.errors import InputError
from medresearcher.schema import Trajectory
from medresearcher.synthesis.augment import (
    FAILURE_KINDS,
    augment_failures,
    augment_if_selected,
    augment_trajectory,
    canonical_arguments,
    failure_text,
)


def call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def crafted(
    trajectory_id: str = "T:1",
    *,
    repeat_next_turn: bool = False,
    parallel: bool = False,
    tokens: bool = False,
) -> Trajectory:
    """search → read (→ the same read again) → answer, with its call records."""
    first = [call("call_1", "medical_retriever", query="angiokeratoma X-linked", k=10)]
    if parallel:
        first.append(call("call_1b", "web_search", queries=["Fabry disease gene"]))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are MedResearcher."},
        {"role": "user", "content": "Which gene?"},
        {"role": "assistant", "content": "I search the medical literature.", "tool_calls": first},
        {"role": "tool", "tool_call_id": "call_1", "content": "Fabry disease [ORPHA:324] ..."},
    ]
    records = [CallRecord(1, "call_1", "medical_retriever", False, sources=["ORPHA:324"])]
    if parallel:
        messages.append({"role": "tool", "tool_call_id": "call_1b", "content": "GLA gene"})
        records.append(CallRecord(1, "call_1b", "web_search", False))
    read = call("call_2", "document_read", url_or_id="ORPHA:324", goal="gene")
    messages += [
        {
            "role": "assistant",
            "content": "I read the record of Fabry disease.",
            "tool_calls": [read],
        },
        {"role": "tool", "tool_call_id": "call_2", "content": "Genes: GLA (galactosidase alpha)"},
    ]
    records.append(CallRecord(2, "call_2", "document_read", False, sources=["ORPHA:324"]))
    turns = 3
    if repeat_next_turn:
        again = call("call_3", "document_read", url_or_id="orpha:324 ", goal="the gene, again")
        messages += [
            {"role": "assistant", "content": "Let me read it again.", "tool_calls": [again]},
            {
                "role": "tool",
                "tool_call_id": "call_3",
                "content": "Genes: GLA (galactosidase alpha)",
            },
        ]
        records.append(CallRecord(3, "call_3", "document_read", False))
        turns = 4
    messages.append({"role": "assistant", "content": "The record says GLA.\n<answer>GLA</answer>"})
    stats: dict[str, Any] = {
        "turns": turns,
        **behaviour_stats(records),
        "calls": [r.to_dict() for r in records],
        "generation": {"language": "en"},
    }
    if tokens:
        stats["conversation_tokens"] = 500
    return Trajectory(
        id=trajectory_id,
        qa_id="Q:1",
        policy="llm:agent",
        question="Which gene?",
        messages=messages,
        final_answer="GLA",
        termination="answer",
        stats=stats,
        created_at="2026-01-01T00:00:00+00:00",
    )


def check_pairing(trajectory: Trajectory) -> None:
    """Each call id is unique and answered by exactly one tool message, after its call and
    before the next assistant turn; no tool message answers nothing."""
    messages = trajectory.messages
    ids = [c["id"] for m in messages for c in m.get("tool_calls") or []]
    assert len(ids) == len(set(ids))
    answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert sorted(answered) == sorted(ids)
    for index, message in enumerate(messages):
        block = []
        for later in messages[index + 1 :]:
            if later["role"] != "tool":
                break
            block.append(later["tool_call_id"])
        if message["role"] == "assistant":
            assert block == [c["id"] for c in message.get("tool_calls") or []]


def recovery(trajectory: Trajectory) -> tuple[dict[str, Any], dict[str, Any]]:
    """The failed call and the later successful equivalent call, found from the messages."""
    results = {m["tool_call_id"]: m["content"] for m in trajectory.messages if m["role"] == "tool"}
    calls = [c for m in trajectory.messages for c in m.get("tool_calls") or []]
    failed = [c for c in calls if results[c["id"]].startswith("Error:")]
    assert len(failed) == 1
    position = calls.index(failed[0])
    fn = failed[0]["function"]
    later = [
        c
        for c in calls[position + 1 :]
        if c["function"]["name"] == fn["name"]
        and canonical_arguments(c["function"]["arguments"]) == canonical_arguments(fn["arguments"])
        and not results[c["id"]].startswith("Error:")
    ]
    assert later, "no later successful equivalent call"
    return failed[0], later[0]


@pytest.mark.parametrize("parallel", [False, True])
def test_insert_adds_a_failed_attempt_before_a_successful_call(parallel: bool) -> None:
    original = crafted(parallel=parallel, tokens=True)
    augmented = augment_trajectory(original, seed=1, method="insert", kind="timeout")
    assert augmented is not None
    check_pairing(augmented)
    failed, recovered = recovery(augmented)
    assert failed["id"] == recovered["id"] + "_failed"
    assert len(augmented.messages) == len(original.messages) + 2
    assert augmented.id == original.id and original.stats.get("augmented") is None
    stats = augmented.stats
    assert stats["augmented"]["method"] == "insert"
    assert stats["augmented"]["kind"] == "timeout"
    assert stats["errors"] == 1 and stats["recovered_errors"] == 1
    assert stats["turns"] == original.stats["turns"] + 1
    assert stats["tool_calls"] == original.stats["tool_calls"] + 1
    assert stats["conversation_tokens"] > 500
    assert [r["call_id"] for r in stats["calls"]].count(failed["id"]) == 1
    turns = {r["call_id"]: r["turn"] for r in stats["calls"]}
    assert turns[recovered["id"]] == turns[failed["id"]] + 1
    retry = next(m for m in augmented.messages if recovered in (m.get("tool_calls") or []))
    assert "timed out" in retry["content"] and "again" in retry["content"]
    # The original observation follows the retried call, unchanged.
    originals = {m["tool_call_id"]: m["content"] for m in original.messages if m["role"] == "tool"}
    after = {m["tool_call_id"]: m["content"] for m in augmented.messages if m["role"] == "tool"}
    assert after[recovered["id"]] == originals[recovered["id"]]


def test_replace_needs_an_equivalent_call_in_the_next_turn() -> None:
    assert augment_trajectory(crafted(), seed=0, method="replace") is None
    original = crafted(repeat_next_turn=True)
    augmented = augment_trajectory(original, seed=0, method="replace", kind="http_503")
    assert augmented is not None
    check_pairing(augmented)
    failed, recovered = recovery(augmented)
    assert (failed["id"], recovered["id"]) == ("call_2", "call_3")
    assert len(augmented.messages) == len(original.messages)
    change = augmented.stats["augmented"]
    assert change["method"] == "replace" and change["original"].startswith("Genes: GLA")
    assert "503" in augmented.messages[change["message_index"]]["content"]
    retry = next(m for m in augmented.messages if recovered in (m.get("tool_calls") or []))
    assert retry["content"].endswith("Let me read it again.")
    assert "temporarily unavailable" in retry["content"]
    assert augmented.stats["recovered_errors"] == 1
    # auto prefers replacing where it can, and inserts otherwise.
    assert augment_trajectory(original, seed=0).stats["augmented"]["method"] == "replace"
    assert augment_trajectory(crafted(), seed=0).stats["augmented"]["method"] == "insert"


def test_nothing_to_fail_and_no_second_augmentation() -> None:
    bare = crafted().model_copy(
        update={"messages": crafted().messages[:2] + crafted().messages[-1:], "stats": {}}
    )
    assert augment_trajectory(bare, seed=0) is None
    # Without stored call records, they are read from the messages.
    unrecorded = augment_trajectory(crafted().model_copy(update={"stats": {}}), seed=0)
    assert unrecorded is not None
    assert unrecorded.stats["errors"] == unrecorded.stats["recovered_errors"] == 1
    check_pairing(unrecorded)
    once = augment_trajectory(crafted(), seed=0)
    assert once is not None and augment_trajectory(once, seed=0) is None
    with pytest.raises(InputError):
        augment_trajectory(crafted(), method="sometimes")  # type: ignore[arg-type]


def test_a_turn_followed_by_a_user_message_is_not_used() -> None:
    original = crafted()
    messages = list(original.messages)
    messages.insert(6, {"role": "user", "content": "You cannot call tools any more."})
    # call_2's turn is now followed by a forced-answer prompt: only call_1 may fail.
    trajectory = original.model_copy(update={"messages": messages})
    for seed in range(10):
        augmented = augment_trajectory(trajectory, seed=seed, method="insert")
        assert augmented is not None
        assert augmented.stats["augmented"]["recovered_by"] == "call_1"
        check_pairing(augmented)


def test_the_rate_holds_over_many_and_the_draw_is_seeded() -> None:
    many = [crafted(f"T:{n}") for n in range(2000)]
    first = list(augment_failures(many, rate=0.05, seed=7))
    chosen = {t.id for t in first if t.stats.get("augmented")}
    assert 0.04 <= len(chosen) / len(many) <= 0.06
    again = list(augment_failures(many, rate=0.05, seed=7))
    assert [t.model_dump() for t in again] == [t.model_dump() for t in first]
    other = {t.id for t in augment_failures(many, rate=0.05, seed=8) if t.stats.get("augmented")}
    assert other != chosen
    for trajectory in first:
        if trajectory.stats.get("augmented"):
            check_pairing(trajectory)
            recovery(trajectory)
            assert trajectory.stats["augmented"]["rate"] == 0.05
    kinds = {t.stats["augmented"]["kind"] for t in first if t.stats.get("augmented")}
    assert kinds == set(FAILURE_KINDS)
    assert all(augment_if_selected(t, rate=0.0) is t for t in many[:50])
    assert all(augment_if_selected(t, rate=1.0).stats.get("augmented") for t in many[:50])


def test_failure_texts_and_equivalence() -> None:
    assert failure_text("timeout", "web_search", timeout_s=30) == (
        "Error: web_search: timed out after 30 s"
    )
    assert "429" in failure_text("http_429", "web_search")
    with pytest.raises(InputError):
        failure_text("flood", "web_search")
    assert canonical_arguments('{"queries": ["B", "a"], "k": 3}') == canonical_arguments(
        {"queries": ["A", "b"]}
    )
    assert canonical_arguments({"url_or_id": "ORPHA:1"}) != canonical_arguments(
        {"url_or_id": "ORPHA:2"}
    )
