"""The ReAct loop against the fake model server, in both tool-call dialects (paper §2.2).

The model is scripted per test; the tools are small real tools defined here, so that what the
loop records can be compared with what the tools returned and what the server received.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel, Field

from medresearcher.agent import (
    AgentLimits,
    CallRecord,
    LLMPolicy,
    behaviour_stats,
    extract_answer,
    run_agent,
)
from medresearcher.config import Settings
from medresearcher.llm import LLMGateway
from medresearcher.schema import Trajectory
from medresearcher.tools.base import Observation, Tool, ToolBox
from tests.conftest import run
from tests.fakes.openai_server import Reply

DIALECTS = ["native", "hermes"]
QUESTION = "Which gene is mutated in the X-linked lysosomal disease with angiokeratomas?"


# --------------------------------------------------------------------------- tools


class SearchArgs(BaseModel):
    queries: list[str] = Field(min_length=1)


class QueryArgs(BaseModel):
    query: str


class TagArgs(BaseModel):
    tag: str


class WebSearch(Tool):
    name = "web_search"
    description = "Search the web; several queries at once."
    Arguments = SearchArgs

    def __init__(self) -> None:
        self.received: list[list[str]] = []

    async def run(self, arguments: SearchArgs) -> Observation:
        self.received.append(arguments.queries)
        lines = [f"[{q}] Fabry disease is caused by GLA variants." for q in arguments.queries]
        return Observation(text="\n".join(lines), sources=[f"https://example.org/{len(lines)}"])


class MedicalRetriever(Tool):
    name = "medical_retriever"
    description = "Ranked medical evidence for a query."
    Arguments = QueryArgs

    async def run(self, arguments: QueryArgs) -> Observation:
        return Observation(
            text=f"ORPHA:324 evidence for {arguments.query!r}", sources=["ORPHA:324"]
        )


class Barrier(Tool):
    """Answers only once ``expected`` calls are in flight together: proof of concurrency
    without timing (run one after another, each call would hit the tool timeout)."""

    name = "barrier"
    description = "Echo a tag."
    Arguments = TagArgs
    timeout_s = 10.0

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self.all_in: asyncio.Event | None = None

    async def run(self, arguments: TagArgs) -> Observation:
        self.all_in = self.all_in or asyncio.Event()
        self.arrived += 1
        if self.arrived >= self.expected:
            self.all_in.set()
        await self.all_in.wait()
        return Observation(text=f"echo {arguments.tag}", sources=[arguments.tag])


class Stalled(Tool):
    """Never answers (within its own generous timeout): only the run's time limit ends it."""

    name = "document_read"
    description = "Read a page."
    Arguments = QueryArgs
    timeout_s = 60.0

    async def run(self, arguments: QueryArgs) -> Observation:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class LongReader(Tool):
    name = "document_read"
    description = "Read a long page."
    Arguments = QueryArgs

    async def run(self, arguments: QueryArgs) -> Observation:
        return Observation(text="alpha-galactosidase deficiency " * 600, sources=["DOC:1"])


# --------------------------------------------------------------------------- helpers


def call_reply(dialect: str, thought: str, *calls: tuple[str, dict | str], **kw: Any) -> Reply:
    """A turn that calls tools, written the way a model of ``dialect`` writes it."""
    if dialect == "native":
        return Reply.tools(*calls, content=thought, **kw)
    blocks = "".join(
        "\n<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"
        for name, args in calls
    )
    return Reply.text(thought + blocks, **kw)


def malformed_reply(dialect: str) -> Reply:
    """A call the dialect cannot read: cut-off JSON (native), non-object arguments (hermes)."""
    if dialect == "native":
        return Reply.tools(("web_search", '{"queries": ["Fabry'), content="Let me search.")
    return Reply.text(
        'Let me search.\n<tool_call>\n{"name": "web_search", "arguments": "Fabry"}\n</tool_call>'
    )


def tools_were_offered(body: dict) -> bool:
    """Whether a request offered tools (a ``tools`` field, or the hermes tools block)."""
    system = body["messages"][0]["content"] if body["messages"] else ""
    return bool(body.get("tools")) or "<tools>" in str(system)


def tool_results_sent(body: dict) -> list[str]:
    """Tool results in a request, whichever way the dialect sent them."""
    texts = []
    for message in body["messages"]:
        if message["role"] == "tool":
            texts.append(message["content"])
        elif message["role"] == "user" and "<tool_response>" in str(message["content"]):
            parts = str(message["content"]).split("<tool_response>\n")[1:]
            texts.extend(part.split("\n</tool_response>")[0] for part in parts)
    return texts


def agent(
    settings: Settings, tools: list[Tool], question: str = QUESTION, **kwargs: Any
) -> tuple[Trajectory, list[Any]]:
    """Run the loop with an LLM policy on the ``agent`` endpoint; returns (record, steps)."""
    steps: list[Any] = []

    async def go() -> Trajectory:
        async with LLMGateway(settings) as gateway:
            return await run_agent(
                question,
                policy=LLMPolicy(gateway, "agent"),
                toolbox=ToolBox(tools, max_observation_tokens=kwargs.pop("obs_tokens", 2048)),
                on_step=steps.append,
                **kwargs,
            )

    return run(go()), steps


def pairs(trajectory: Trajectory) -> list[tuple[str, str, str]]:
    """(call id, tool name, result text) for every call, matched through ``tool_call_id``."""
    results = {m["tool_call_id"]: m["content"] for m in trajectory.messages if m["role"] == "tool"}
    return [
        (call["id"], call["function"]["name"], results[call["id"]])
        for m in trajectory.messages
        if m["role"] == "assistant"
        for call in m.get("tool_calls", [])
    ]


# --------------------------------------------------------------------------- the loop


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_multi_turn_run_with_several_tools(fake_llm, make_settings, dialect) -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 10}
    fake_llm.enqueue(
        call_reply(dialect, "Rare lysosomal disease: ask the medical retriever.",
                   ("medical_retriever", {"query": "angiokeratoma X-linked"}), usage=usage),
        call_reply(dialect, "Confirm the gene on the web.",
                   ("web_search", {"queries": ["Fabry disease gene"]}), usage=usage),
        Reply.text("Both sources name GLA.\n<answer>GLA</answer>", usage=usage),
    )  # fmt: skip
    search = WebSearch()
    trajectory, steps = agent(
        make_settings(fake_llm, tool_dialect=dialect), [search, MedicalRetriever()]
    )

    assert trajectory.termination == "answer"
    assert trajectory.final_answer == "GLA"
    assert [m["role"] for m in trajectory.messages] == [
        "system", "user", "assistant", "tool", "assistant", "tool", "assistant",
    ]  # fmt: skip
    assert trajectory.messages[1]["content"] == QUESTION
    assert trajectory.messages[2]["content"] == "Rare lysosomal disease: ask the medical retriever."
    assert [(name, text) for _, name, text in pairs(trajectory)] == [
        ("medical_retriever", "ORPHA:324 evidence for 'angiokeratoma X-linked'"),
        ("web_search", "[Fabry disease gene] Fabry disease is caused by GLA variants."),
    ]
    assert search.received == [["Fabry disease gene"]]
    # Every call's arguments are a JSON string on the record, as on the OpenAI wire.
    first_call = trajectory.messages[2]["tool_calls"][0]["function"]
    assert json.loads(first_call["arguments"]) == {"query": "angiokeratoma X-linked"}

    # The model was shown each observation in its dialect's form.
    requests = [r.json for r in fake_llm.chat_requests]
    assert len(requests) == 3 and all(tools_were_offered(body) for body in requests)
    assert tool_results_sent(requests[2]) == [text for _, _, text in pairs(trajectory)]
    if dialect == "hermes":
        assert "tools" not in requests[0]
    else:
        assert {t["function"]["name"] for t in requests[0]["tools"]} == {
            "web_search",
            "medical_retriever",
        }

    assert trajectory.stats["turns"] == 3
    assert trajectory.stats["tool_calls"] == 2
    assert trajectory.stats["tool_calls_by_tool"] == {"medical_retriever": 1, "web_search": 1}
    assert trajectory.stats["first_tool"] == "medical_retriever"
    assert trajectory.stats["switches"] == 1 and trajectory.stats["errors"] == 0
    assert trajectory.stats["answer_form"] == "tagged"
    assert trajectory.usage["calls"] == 3
    assert trajectory.usage["prompt_tokens"] == 300 and trajectory.usage["completion_tokens"] == 30
    assert trajectory.usage["cost_usd"] is None  # the endpoint has no prices
    assert trajectory.policy == "llm:agent" and trajectory.guidance == "none"
    assert [s.kind for s in steps] == [
        "thought", "call", "observation", "thought", "call", "observation", "answer",
    ]  # fmt: skip
    assert steps[2].sources == ["ORPHA:324"]
    Trajectory.model_validate_json(trajectory.model_dump_json())  # the record round-trips


@pytest.mark.parametrize("dialect", DIALECTS)
def test_malformed_calls_become_error_observations_and_the_loop_goes_on(
    fake_llm, make_settings, dialect
) -> None:
    fake_llm.enqueue(
        malformed_reply(dialect),
        call_reply(
            dialect,
            "Retry with proper arguments.",
            ("web_search", {"query": "Fabry"}),  # valid JSON, wrong schema
            ("pubmed_search", {"query": "Fabry"}),  # no such tool
        ),
        call_reply(dialect, "Now correctly.", ("web_search", {"queries": ["Fabry"]})),
        Reply.text("<answer>GLA</answer>"),
    )
    trajectory, steps = agent(make_settings(fake_llm, tool_dialect=dialect), [WebSearch()])

    assert trajectory.termination == "answer" and trajectory.final_answer == "GLA"
    roles = [m["role"] for m in trajectory.messages]
    assert roles == [
        "system", "user",
        "assistant", "user",  # the unreadable call, reported back to the model
        "assistant", "tool", "tool",
        "assistant", "tool",
        "assistant",
    ]  # fmt: skip
    feedback = trajectory.messages[3]["content"]
    assert "could not be read" in feedback and "web_search" in feedback
    results = [text for _, _, text in pairs(trajectory)]
    assert results[0].startswith("Error: web_search: invalid arguments")
    assert results[1].startswith("Error: unknown tool 'pubmed_search'")
    assert not results[2].startswith("Error")
    # The model saw its mistakes: the feedback and both error observations were sent.
    sent = fake_llm.chat_requests[2].json["messages"]
    assert any("could not be read" in str(m["content"]) for m in sent if m["role"] == "user")
    assert tool_results_sent(fake_llm.chat_requests[2].json) == results[:2]

    stats = trajectory.stats
    assert stats["errors"] == 3 and stats["malformed_calls"] == 1
    assert stats["recovered_errors"] == 3  # a later web_search succeeded
    assert stats["tool_calls"] == 3
    assert [s.kind for s in steps].count("malformed") == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_turn_budget_forces_a_final_answer_without_tools(
    fake_llm, make_settings, dialect
) -> None:
    fake_llm.add_rule(
        tools_were_offered,
        call_reply(dialect, "Search more.", ("web_search", {"queries": ["Fabry"]})),
    )
    fake_llm.add_rule(lambda body: True, Reply.text("Best guess.\n<answer>GLA</answer>"))
    trajectory, steps = agent(
        make_settings(fake_llm, tool_dialect=dialect),
        [WebSearch()],
        limits=AgentLimits(max_turns=2),
    )

    assert trajectory.termination == "max_turns"
    assert trajectory.final_answer == "GLA"
    assert "2 model turns" in (trajectory.termination_detail or "")
    requests = [r.json for r in fake_llm.chat_requests]
    assert [tools_were_offered(body) for body in requests] == [True, True, False]
    assert "all the tool turns" in requests[-1]["messages"][-1]["content"]
    assert trajectory.messages[-2]["role"] == "user"  # the forced-answer prompt is recorded
    assert trajectory.stats["forced_answer"] is True and trajectory.stats["turns"] == 3
    assert [s.kind for s in steps][-2:] == ["budget", "answer"]
    assert len(pairs(trajectory)) == 2  # every call still has its result


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_token_budget_forces_a_final_answer(fake_llm, make_settings, dialect) -> None:
    fake_llm.enqueue(
        call_reply(dialect, "Read the page.", ("document_read", {"query": "DOC:1"})),
        Reply.text("<answer>GLA</answer>"),
    )
    trajectory, _ = agent(
        make_settings(fake_llm, tool_dialect=dialect),
        [LongReader()],
        limits=AgentLimits(max_tokens=1500),
        obs_tokens=4000,
    )

    assert trajectory.termination == "token_budget"
    assert trajectory.final_answer == "GLA"
    assert trajectory.stats["turns"] == 2
    assert trajectory.stats["conversation_tokens"] > 1500
    assert "1500" in (trajectory.termination_detail or "")
    last = fake_llm.chat_requests[-1].json
    assert not tools_were_offered(last)
    assert "length limit" in last["messages"][-1]["content"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_parallel_calls_run_together_and_pair_with_their_results(
    fake_llm, make_settings, dialect
) -> None:
    tags = ["alpha", "beta", "gamma"]
    fake_llm.enqueue(
        call_reply(
            dialect,
            "Three lookups at once.",
            *[("barrier", {"tag": t}) for t in tags],
            usage={"prompt_tokens": 1000, "completion_tokens": 100},
        ),
        Reply.text("<answer>done</answer>", usage={"prompt_tokens": 2000, "completion_tokens": 50}),
    )
    settings = make_settings(
        fake_llm, tool_dialect=dialect, price_per_mtok_in=2.0, price_per_mtok_out=8.0
    )
    trajectory, steps = agent(settings, [Barrier(3)])

    assert trajectory.termination == "answer"
    assert [(name, text) for _, name, text in pairs(trajectory)] == [
        ("barrier", f"echo {tag}") for tag in tags
    ]
    ids = [call_id for call_id, _, _ in pairs(trajectory)]
    assert len(set(ids)) == 3
    # Tool messages follow their assistant turn in the order of its calls.
    assert [m.get("tool_call_id") for m in trajectory.messages[3:6]] == ids
    observed = [(s.call_id, s.sources) for s in steps if s.kind == "observation"]
    assert observed == [(call_id, [tag]) for call_id, tag in zip(ids, tags, strict=True)]
    assert trajectory.stats["errors"] == 0
    # Priced endpoint: the cost of both turns is summed.
    assert trajectory.usage["cost_usd"] == pytest.approx((3000 * 2.0 + 150 * 8.0) / 1e6)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_time_limit_cancels_a_stalled_tool_and_forces_an_answer(
    fake_llm, make_settings, dialect
) -> None:
    fake_llm.enqueue(
        call_reply(
            dialect,
            "Read and search.",
            ("document_read", {"query": "https://example.org"}),
            ("web_search", {"queries": ["Fabry"]}),
        ),
        Reply.text("<answer>GLA</answer>"),
    )
    trajectory, _ = agent(
        make_settings(fake_llm, tool_dialect=dialect),
        [Stalled(), WebSearch()],
        limits=AgentLimits(timeout_s=0.3),
    )

    assert trajectory.termination == "timeout"
    assert trajectory.final_answer == "GLA"
    (_, _, read_text), (_, _, search_text) = pairs(trajectory)
    assert read_text.startswith("Error: cancelled")
    assert not search_text.startswith("Error")  # the finished call keeps its result
    assert trajectory.stats["errors"] == 1
    assert "time" in fake_llm.chat_requests[-1].json["messages"][-1]["content"]


def test_a_stalled_model_turn_hits_the_time_limit(fake_llm, make_settings) -> None:
    fake_llm.enqueue(Reply.hang(30), Reply.text("<answer>GLA</answer>"))
    trajectory, _ = agent(make_settings(fake_llm), [WebSearch()], limits=AgentLimits(timeout_s=0.3))

    assert trajectory.termination == "timeout"
    assert trajectory.final_answer == "GLA"
    assert trajectory.stats["turns"] == 1  # only the forced answer came back


def test_a_model_error_ends_the_run_with_the_reason(fake_llm, make_settings) -> None:
    fake_llm.enqueue(
        call_reply("native", "Search.", ("web_search", {"queries": ["Fabry"]})),
        Reply.error(400, message="context length exceeded"),
    )
    trajectory, steps = agent(make_settings(fake_llm), [WebSearch()])

    assert trajectory.termination == "error"
    assert trajectory.final_answer is None
    assert "HTTP 400" in trajectory.termination_detail
    assert "context length exceeded" in trajectory.termination_detail
    assert trajectory.usage["calls"] == 1 and trajectory.stats["tool_calls"] == 1
    assert steps[-1].kind == "error"


def test_guidance_reaches_the_model_but_not_the_record(fake_llm, make_settings) -> None:
    scaffold = "Guidance: ([MASK], associated_gene, [MASK])"
    fake_llm.enqueue(Reply.text("<answer>GLA</answer>"))
    settings = make_settings(fake_llm)
    guided, _ = agent(settings, [WebSearch()], guidance=scaffold, qa_id="QA:1", rollout=2)

    sent_system = fake_llm.chat_requests[0].json["messages"][0]["content"]
    assert sent_system.endswith(scaffold)
    assert scaffold not in json.dumps(guided.messages)
    assert guided.guidance == "mtg"
    assert guided.stats["generation"]["guidance"] == scaffold
    assert guided.messages[0]["content"] + "\n\n" + scaffold == sent_system
    assert guided.qa_id == "QA:1" and guided.rollout == 2

    fake_llm.enqueue(Reply.text("<answer>GLA</answer>"), Reply.text("<answer>GLA</answer>"))
    again, _ = agent(settings, [WebSearch()], guidance="another scaffold", qa_id="QA:1", rollout=2)
    other, _ = agent(settings, [WebSearch()], qa_id="QA:1", rollout=2)
    assert again.id == guided.id  # same QA, policy, rollout, guidance mode: same id
    assert other.id != guided.id


def test_chinese_prompts(fake_llm, make_settings) -> None:
    fake_llm.enqueue(Reply.text("证据指向 GLA。\n<answer>GLA</answer>"))
    trajectory, _ = agent(
        make_settings(fake_llm), [WebSearch()], question="哪个基因？", language="zh"
    )
    assert "研究助手" in trajectory.messages[0]["content"]
    assert trajectory.final_answer == "GLA"
    assert trajectory.stats["generation"]["language"] == "zh"


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It is GLA.\n<answer>GLA</answer>", ("GLA", "tagged")),
        ("<answer>first</answer> then <answer> second </answer>", ("second", "tagged")),
        ("<think>maybe <answer>X</answer></think>Final: none\nAnswer: Fabry disease", (
            "Fabry disease", "line")),
        ("推理……\n答案：GLA", ("GLA", "line")),
        ("Just GLA.", ("Just GLA.", "untagged")),
        ("  ", (None, "none")),
        (None, (None, "none")),
    ],
)  # fmt: skip
def test_extract_answer(text: str | None, expected: tuple[str | None, str]) -> None:
    assert extract_answer(text) == expected


def test_behaviour_stats_count_switches_and_recovery() -> None:
    def call(name: str | None, error: bool = False, known: bool = True) -> CallRecord:
        return CallRecord(turn=1, call_id="c", name=name, error=error, known=known)

    stats = behaviour_stats(
        [
            call("medical_retriever"),
            call("web_search", error=True),  # recovered: web_search succeeds later
            call("document_read"),
            call("clinical_reasoning", error=True),  # never recovered
            call(None, error=True),  # malformed: recovered by any later success
            call("web_search"),
        ]
    )
    assert stats["first_tool"] == "medical_retriever"
    assert stats["first_tool_category"] == "medical"
    assert stats["switches"] == 3  # medical → general → medical → general
    assert stats["errors"] == 3 and stats["recovered_errors"] == 2
    assert stats["malformed_calls"] == 1
    assert stats["tool_calls"] == 5
    assert behaviour_stats([])["first_tool"] is None
