"""Thought rewriting against the fake model server: a faithful rewrite is kept with the
originals; a rewrite that touches a tool call, the answer, or still cites the guidance is
rejected with the reason (issue 9 item 4)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from medresearcher.config import EndpointSettings, Settings
from medresearcher.llm import LLMGateway
from medresearcher.schema import Trajectory
from medresearcher.synthesis.rewrite import RewriteRejection, rewrite_trajectory
from tests.conftest import run
from tests.fakes.openai_server import FakeOpenAIServer, Reply

QUESTION = "Which gene is associated with the X-linked disorder with angiokeratoma?"
OBSERVATION_1 = "1. Fabry disease [ORPHA:324]: X-linked, angiokeratoma, acroparesthesia."
OBSERVATION_2 = "Source: Fabry disease — ORPHA:324\nAssociated gene: GLA."
CALLS = {
    1: [("medical_retriever", {"query": "X-linked angiokeratoma", "k": 10})],
    2: [("document_read", {"url_or_id": "ORPHA:324", "goal": "associated gene"})],
}
REWRITES = {
    1: "The question names two findings of an X-linked disorder; a medical search for them "
    "should identify the disorder.",
    2: "The search identified Fabry disease (ORPHA:324); its record should give the gene.",
    3: "The record of Fabry disease lists GLA as its associated gene.",
}


def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def trajectory(language: str = "en", first_thought: str | None = None) -> Trajectory:
    """A path-guided-style rollout whose thoughts lean on the research guidance."""
    messages = [
        {"role": "system", "content": "You are MedResearcher."},
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": first_thought
            if first_thought is not None
            else "I follow the research guidance, which starts from a disorder.",
            "tool_calls": [tool_call("call_1", *CALLS[1][0])],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": OBSERVATION_1},
        {
            "role": "assistant",
            "content": "The guidance says the next hop is associated_gene.",
            "tool_calls": [tool_call("call_2", *CALLS[2][0])],
        },
        {"role": "tool", "tool_call_id": "call_2", "content": OBSERVATION_2},
        {
            "role": "assistant",
            "content": "Following the guidance to its end.\n<answer>GLA</answer>",
        },
    ]
    return Trajectory(
        id="T:rewrite",
        qa_id="Q:fabry",
        policy="path_guided",
        question=QUESTION,
        messages=messages,
        final_answer="GLA",
        termination="answer",
        stats={"generation": {"language": language}, "turns": 3},
        created_at="2026-01-01T00:00:00+00:00",
    )


def step_of(body: dict) -> int:
    user = body["messages"][1]["content"]  # the step's prompt (a repair round adds turns)
    return int(re.search(r"(?:Step|第) (\d+) (?:of|步（共)", user).group(1))


def faithful(body: dict, *, changes: dict[int, dict] | None = None) -> Reply:
    """The fake rewriter: the scripted thought, this step's calls copied (keys reordered)."""
    step = step_of(body)
    reply: dict[str, Any] = {"thought": REWRITES[step]}
    if step in CALLS:
        reply["tool_calls"] = [
            {"name": name, "arguments": dict(reversed(list(arguments.items())))}
            for name, arguments in CALLS[step]
        ]
    else:
        reply["answer"] = "GLA"
    reply.update((changes or {}).get(step, {}))
    return Reply.text(json.dumps(reply, ensure_ascii=False))


@pytest.fixture
def settings(fake_llm: FakeOpenAIServer, tmp_path: Path) -> Settings:
    endpoint = EndpointSettings(
        base_url=fake_llm.base_url, model="rewriter-model", max_retries=0, timeout_s=5.0
    )
    return Settings(workspace=tmp_path / "ws", llm={"rewriter": endpoint})


def rewrite(settings: Settings, original: Trajectory) -> Trajectory | RewriteRejection:
    async def go() -> Trajectory | RewriteRejection:
        async with LLMGateway(settings, cache_mode="off") as gateway:
            return await rewrite_trajectory(original, gateway=gateway, endpoint="rewriter")

    return run(go())


def test_a_faithful_rewrite_is_kept_with_the_originals(fake_llm, settings) -> None:
    fake_llm.default = faithful
    original = trajectory()
    rewritten = rewrite(settings, original)
    assert isinstance(rewritten, Trajectory)
    assistant = [m for m in rewritten.messages if m["role"] == "assistant"]
    assert [m["content"] for m in assistant] == [
        REWRITES[1],
        REWRITES[2],
        REWRITES[3] + "\n<answer>GLA</answer>",
    ]
    # Calls (ids, argument strings) and observations are the originals, verbatim.
    for before, after in zip(original.messages, rewritten.messages, strict=True):
        assert before.get("tool_calls") == after.get("tool_calls")
        if before["role"] != "assistant":
            assert before == after
    assert rewritten.stats["original_messages"] == original.messages
    assert rewritten.stats["rewrite"]["model"] == "rewriter-model"
    assert rewritten.stats["rewrite"]["steps"] == [1, 2, 3]
    assert (rewritten.id, rewritten.final_answer) == (original.id, "GLA")
    # Each step saw the observations before it, and no earlier (leaky) thought.
    prompts = {step_of(r.json): r.json["messages"][1]["content"] for r in fake_llm.chat_requests}
    assert len(prompts) == 3
    assert OBSERVATION_1 in prompts[2] and OBSERVATION_2 not in prompts[2]
    assert "research guidance" not in prompts[2] and "next hop" in prompts[2]
    assert OBSERVATION_1 not in prompts[1] and "nothing has been observed yet" in prompts[1]


def test_a_rewrite_that_alters_a_tool_call_is_rejected_with_the_reason(fake_llm, settings) -> None:
    altered = {"tool_calls": [{"name": "document_read", "arguments": {"url_or_id": "ORPHA:99"}}]}
    fake_llm.default = lambda body: faithful(body, changes={2: altered})
    rejection = rewrite(settings, trajectory())
    assert isinstance(rejection, RewriteRejection)
    assert (rejection.id, rejection.reason, rejection.step) == ("T:rewrite", "tool_call_changed", 2)
    assert rejection.detail == (
        'step 2: call 1 (document_read): arguments {"url_or_id": "ORPHA:324", "goal": '
        '"associated gene"} became {"url_or_id": "ORPHA:99"}'
    )
    assert rejection.endpoint == "rewriter"


def test_renamed_dropped_or_added_calls_are_rejected(fake_llm, settings) -> None:
    renamed = {"tool_calls": [{"name": "web_search", "arguments": CALLS[1][0][1]}]}
    fake_llm.default = lambda body: faithful(body, changes={1: renamed})
    rejection = rewrite(settings, trajectory())
    assert rejection.reason == "tool_call_changed"
    assert "tool 'medical_retriever' became 'web_search'" in rejection.detail

    fake_llm.default = lambda body: faithful(body, changes={2: {"tool_calls": []}})
    assert "1 tool calls became 0" in rewrite(settings, trajectory()).detail


def test_a_changed_answer_or_a_remaining_guidance_mention_is_rejected(fake_llm, settings) -> None:
    fake_llm.default = lambda body: faithful(body, changes={3: {"answer": "HEXA"}})
    rejection = rewrite(settings, trajectory())
    assert (rejection.reason, rejection.step) == ("answer_changed", 3)
    assert "answer 'GLA' became 'HEXA'" in rejection.detail

    still = {"thought": "As the guidance says, read the record of Fabry disease."}
    fake_llm.default = lambda body: faithful(body, changes={2: still})
    rejection = rewrite(settings, trajectory())
    assert (rejection.reason, rejection.step) == ("guidance_reference", 2)


def test_unreadable_output_is_rejected_after_one_repair(fake_llm, settings) -> None:
    fake_llm.default = lambda body: (
        Reply.text("I would rather not.") if step_of(body) == 1 else faithful(body)
    )
    rejection = rewrite(settings, trajectory())
    assert (rejection.reason, rejection.step) == ("unreadable", 1)
    steps = [step_of(r.json) for r in fake_llm.chat_requests]
    assert steps.count(1) == 2  # the first answer and the repair round


def test_a_missing_thought_is_written_and_chinese_prompts_are_used(fake_llm, settings) -> None:
    fake_llm.default = faithful
    rewritten = rewrite(settings, trajectory(language="zh", first_thought=""))
    assert rewritten.messages[2]["content"] == REWRITES[1]
    first = next(r.json for r in fake_llm.chat_requests if step_of(r.json) == 1)
    assert "（无：请写出推理）" in first["messages"][1]["content"]
    assert "使用中文书写" in first["messages"][0]["content"]


def test_the_rewrite_command_writes_kept_and_rejected_files(fake_llm, tmp_path) -> None:
    from medresearcher.workspace import read_jsonl
    from tests.test_synthesis_filters import invoke_quality

    workspace = tmp_path / "ws"
    folder = workspace / "trajectories"
    folder.mkdir(parents=True)
    good = trajectory()
    bad = good.model_copy(update={"id": "T:bad", "question": QUESTION + " (variant)"})
    (folder / "r1.filtered.jsonl").write_text(
        good.model_dump_json() + "\n" + bad.model_dump_json() + "\n", encoding="utf-8"
    )
    config = tmp_path / "medresearcher.toml"
    config.write_text(
        f'[llm.rewriter]\nbase_url = "{fake_llm.base_url}"\nmodel = "rewriter-model"\n'
        "max_retries = 0\n",
        encoding="utf-8",
    )
    fake_llm.default = lambda body: faithful(
        body, changes={3: {"answer": "HEXA"}} if "(variant)" in json.dumps(body) else None
    )
    result = invoke_quality("rewrite", "r1", workspace=workspace, config=config)
    assert result.exit_code == 0, result.output
    [kept] = list(read_jsonl(folder / "r1.rewritten.jsonl", Trajectory))
    assert kept.id == "T:rewrite" and kept.stats["original_messages"] == good.messages
    [rejected] = list(read_jsonl(folder / "r1.rewrite_rejected.jsonl", RewriteRejection))
    assert (rejected.id, rejected.reason) == ("T:bad", "answer_changed")
    assert "1 of 2 trajectories rewritten" in result.output
    assert re.search(r"answer_changed\s*│\s*1", result.output)
    again = invoke_quality("rewrite", "r1", workspace=workspace, config=config)
    assert "0 of 0 trajectories rewritten" in again.output  # resumed: nothing left to do


def test_the_rewrite_command_needs_an_endpoint_and_its_input(tmp_path) -> None:
    from tests.test_synthesis_filters import invoke_quality

    workspace = tmp_path / "ws"
    result = invoke_quality("rewrite", "r1", workspace=workspace)
    assert result.exit_code != 0
    assert "rewriting needs a model and none is configured" in str(result.exception)
    assert "[llm.rewriter]" in str(result.exception)
    config = tmp_path / "medresearcher.toml"
    config.write_text('[llm.rewriter]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n')
    missing = invoke_quality("rewrite", "r1", workspace=workspace, config=config)
    assert "run `medresearcher traj filter r1` first" in str(missing.exception)
