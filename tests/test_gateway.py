"""The LLM gateway against the fake server: retries, limits, cache, usage, dialects, errors."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import pytest
from pydantic import BaseModel

from medresearcher.config import Settings
from medresearcher.llm import (
    CacheMissError,
    LLMCallError,
    LLMGateway,
    StructuredOutputError,
)
from tests.conftest import run
from tests.fakes.openai_server import Reply

HELLO = [{"role": "user", "content": "Hello"}]
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the medical corpus.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}


async def chat(settings: Settings, messages=HELLO, **kwargs):
    async with LLMGateway(settings) as gateway:
        return await gateway.chat("agent", messages, **kwargs)


def test_a_plain_call_returns_content_usage_and_sends_the_model(fake_llm, make_settings) -> None:
    fake_llm.enqueue(
        Reply.text(
            "pong", usage={"prompt_tokens": 7, "completion_tokens": 2}, reasoning_content="thinking"
        )
    )
    result = run(chat(make_settings(fake_llm), temperature=0.2))
    assert result.content == "pong"
    assert result.reasoning_content == "thinking"
    assert (result.prompt_tokens, result.completion_tokens) == (7, 2)
    sent = fake_llm.chat_requests[0].json
    assert sent["model"] == "fake-model"
    assert sent["temperature"] == 0.2
    assert sent["messages"] == HELLO


def test_429_then_success_honours_retry_after(fake_llm, make_settings) -> None:
    fake_llm.enqueue(Reply.error(429, retry_after=0.3), Reply.text("after the wait"))
    started = time.monotonic()
    result = run(chat(make_settings(fake_llm)))
    elapsed = time.monotonic() - started
    assert result.content == "after the wait"
    requests = fake_llm.chat_requests
    assert len(requests) == 2
    # Backoff alone would be ~0.01 s: the gap shows the server's Retry-After was obeyed.
    assert requests[1].received_at - requests[0].received_at >= 0.29
    assert elapsed < 3


def test_a_500_storm_ends_in_one_clear_error_after_the_configured_attempts(
    fake_llm, make_settings
) -> None:
    fake_llm.default = Reply.error(500, message="the GPU is on fire")
    with pytest.raises(LLMCallError) as err:
        run(chat(make_settings(fake_llm, max_retries=3)))
    assert len(fake_llm.chat_requests) == 4
    error = err.value
    assert (error.status, error.attempts, error.endpoint) == (500, 4, "agent")
    assert str(error) == (
        f"endpoint 'agent' ({fake_llm.base_url}): HTTP 500 after 4 attempts: the GPU is on fire"
    )


def test_a_client_error_is_not_retried(fake_llm, make_settings) -> None:
    fake_llm.default = Reply.error(400, message="bad request: unknown field")
    with pytest.raises(LLMCallError, match="HTTP 400: bad request: unknown field"):
        run(chat(make_settings(fake_llm, max_retries=3)))
    assert len(fake_llm.chat_requests) == 1


def test_a_timeout_is_retried_then_reported(fake_llm, make_settings) -> None:
    fake_llm.default = Reply.hang(5)
    started = time.monotonic()
    with pytest.raises(LLMCallError) as err:
        run(chat(make_settings(fake_llm, timeout_s=0.3, max_retries=1)))
    assert time.monotonic() - started < 3
    assert err.value.attempts == 2
    assert "timed out after 0.3 s" in str(err.value)
    assert len(fake_llm.chat_requests) == 2


def test_a_malformed_body_is_retried_then_reported(fake_llm, make_settings) -> None:
    fake_llm.enqueue(Reply.malformed(), Reply.text("fine now"))
    assert run(chat(make_settings(fake_llm))).content == "fine now"
    fake_llm.default = Reply.malformed()
    with pytest.raises(LLMCallError, match="malformed response body"):
        run(chat(make_settings(fake_llm, max_retries=1)))


def test_an_unreachable_endpoint_gives_one_line_with_url_and_cause(make_settings) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(LLMCallError) as err:
        run(chat(make_settings(url, max_retries=0)))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"endpoint 'agent' ({url}): failed: cannot connect: ")
    assert len(message) > len(f"endpoint 'agent' ({url}): failed: cannot connect: ")


def test_the_concurrency_cap_holds(fake_llm, make_settings) -> None:
    fake_llm.default = Reply.text("ok", delay_s=0.05)
    settings = make_settings(fake_llm, max_concurrency=4)

    async def many() -> None:
        async with LLMGateway(settings) as gateway:
            await asyncio.gather(*(gateway.chat("agent", HELLO) for _ in range(24)))

    run(many())
    assert len(fake_llm.chat_requests) == 24
    assert fake_llm.peak_in_flight == 4


def test_the_qps_limit_holds(fake_llm, make_settings) -> None:
    settings = make_settings(fake_llm, qps=20, max_concurrency=64)

    async def many() -> None:
        async with LLMGateway(settings) as gateway:
            await asyncio.gather(*(gateway.chat("agent", HELLO) for _ in range(21)))

    run(many())
    times = sorted(r.received_at for r in fake_llm.chat_requests)
    span = times[-1] - times[0]
    # 21 requests at 20/s need 20 intervals of 50 ms: 1.0 s; allow 10 % slack below.
    assert span >= 0.9, span
    assert span < 2.0, span
    # No burst: any 250 ms window holds at most 5 + 1 requests.
    assert max(sum(1 for t in times if s <= t < s + 0.25) for s in times) <= 6


def test_an_endpoint_can_keep_its_own_cache(fake_llm, make_settings) -> None:
    # The global cache is off, the judge caches: an identical grading is asked once.
    settings = make_settings(fake_llm)
    settings.llm["judge"] = settings.llm["agent"].model_copy(update={"cache": "read-write"})

    async def calls():
        async with LLMGateway(settings) as gateway:
            results = [await gateway.chat(name, HELLO, temperature=0) for name in ("agent",) * 2]
            results += [await gateway.chat("judge", HELLO, temperature=0) for _ in range(2)]
            return results

    agent_1, agent_2, judge_1, judge_2 = run(calls())
    assert (agent_1.cached, agent_2.cached) == (False, False)
    assert (judge_1.cached, judge_2.cached) == (False, True)
    assert len(fake_llm.chat_requests) == 3


def test_a_cache_hit_sends_no_request(fake_llm, make_settings) -> None:
    settings = make_settings(fake_llm)

    async def twice():
        async with LLMGateway(settings, cache_mode="read-write") as gateway:
            first = await gateway.chat("agent", HELLO, temperature=0)
            second = await gateway.chat("agent", HELLO, temperature=0)
            salted = await gateway.chat("agent", HELLO, temperature=0, cache_salt=1)
            return first, second, salted, gateway.usage_report()

    first, second, salted, usage = run(twice())
    assert len(fake_llm.chat_requests) == 2  # the salted call is a different key
    assert (first.cached, second.cached, salted.cached) == (False, True, False)
    assert second.content == first.content
    assert usage["agent"]["cached"] == 1
    assert usage["agent"]["requests"] == 2


def test_replay_fails_on_a_miss_and_answers_a_recorded_request(fake_llm, make_settings) -> None:
    settings = make_settings(fake_llm)

    async def replay(messages):
        async with LLMGateway(settings, cache_mode="replay") as gateway:
            return await gateway.chat("agent", messages)

    with pytest.raises(CacheMissError, match="replay mode and no cached response"):
        run(replay(HELLO))
    assert fake_llm.chat_requests == []

    async def record():
        async with LLMGateway(settings, cache_mode="read-write") as gateway:
            return await gateway.chat("agent", HELLO)

    recorded = run(record())
    replayed = run(replay(HELLO))
    assert replayed.cached and replayed.content == recorded.content
    assert len(fake_llm.chat_requests) == 1


def test_usage_is_summed_with_cost(fake_llm, make_settings) -> None:
    fake_llm.default = Reply.text("x", usage={"prompt_tokens": 1000, "completion_tokens": 500})
    settings = make_settings(fake_llm, price_per_mtok_in=2.0, price_per_mtok_out=8.0)

    async def three():
        async with LLMGateway(settings) as gateway:
            for _ in range(3):
                await gateway.chat("agent", HELLO)
            return gateway.usage_report()

    report = run(three())
    assert report["agent"]["requests"] == 3
    assert report["agent"]["prompt_tokens"] == 3000
    assert report["agent"]["completion_tokens"] == 1500
    assert report["agent"]["cost_usd"] == pytest.approx(3 * (1000 * 2 + 500 * 8) / 1e6)
    assert report["total"]["total_tokens"] == 4500


def test_native_tool_calls_are_sent_and_parsed(fake_llm, make_settings) -> None:
    fake_llm.enqueue(Reply.tools(("search", {"query": "Fabry disease GLA"})))
    result = run(chat(make_settings(fake_llm), tools=[SEARCH_TOOL]))
    assert fake_llm.chat_requests[0].json["tools"] == [SEARCH_TOOL]
    assert [(c.name, c.arguments_dict()) for c in result.tool_calls] == [
        ("search", {"query": "Fabry disease GLA"})
    ]
    assert result.to_message()["tool_calls"][0]["function"]["arguments"] == (
        '{"query": "Fabry disease GLA"}'
    )


def test_truncated_native_tool_call_json_is_an_error_not_a_crash(fake_llm, make_settings) -> None:
    fake_llm.enqueue(Reply.tools(("search", '{"query": "Fabry dis')))
    result = run(chat(make_settings(fake_llm), tools=[SEARCH_TOOL]))
    assert result.tool_calls == []
    assert len(result.tool_call_errors) == 1
    assert "search" in result.tool_call_errors[0]


def test_hermes_dialect_renders_tools_in_the_prompt_and_parses_tags(
    fake_llm, make_settings
) -> None:
    fake_llm.enqueue(
        Reply.text(
            "Let me look.\n<tool_call>\n"
            '{"name": "search", "arguments": {"query": "GLA",}}\n</tool_call>'
        )
    )
    history = [
        {"role": "user", "content": "Which enzyme?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "search", "arguments": '{"query": "Fabry"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Fabry disease: GLA deficiency"},
    ]
    result = run(chat(make_settings(fake_llm, tool_dialect="hermes"), history, tools=[SEARCH_TOOL]))
    sent = fake_llm.chat_requests[0].json
    assert "tools" not in sent
    assert sent["stop"] == ["<tool_response>"]
    assert sent["messages"][0]["role"] == "system"
    assert "<tools>" in sent["messages"][0]["content"]
    assert "<tool_call>" in sent["messages"][2]["content"]
    assert sent["messages"][3] == {
        "role": "user",
        "content": "<tool_response>\nFabry disease: GLA deficiency\n</tool_response>",
    }
    assert result.content == "Let me look."
    assert [(c.name, c.arguments_dict()) for c in result.tool_calls] == [
        ("search", {"query": "GLA"})
    ]


def test_the_api_key_is_sent_as_a_bearer_token(fake_llm, make_settings, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_PROVIDER_KEY", "sk-fake-0123456789")
    run(chat(make_settings(fake_llm, api_key_env="FAKE_PROVIDER_KEY")))
    assert fake_llm.chat_requests[0].headers["authorization"] == "Bearer sk-fake-0123456789"


class Diagnosis(BaseModel):
    disease: str
    confidence: float


def test_structured_output_repairs_once(fake_llm, make_settings) -> None:
    fake_llm.enqueue(
        Reply.text('{"disease": "Fabry disease"}'),
        Reply.text('```json\n{"disease": "Fabry disease", "confidence": 0.8}\n```'),
    )

    async def ask():
        async with LLMGateway(make_settings(fake_llm)) as gateway:
            return await gateway.structured("agent", HELLO, Diagnosis)

    answer = run(ask())
    assert answer == Diagnosis(disease="Fabry disease", confidence=0.8)
    first, repair = fake_llm.chat_requests
    assert '"confidence"' in first.json["messages"][0]["content"]  # the schema was shown
    last = repair.json["messages"][-1]
    assert last["role"] == "user"
    assert "confidence: Field required" in last["content"]
    assert repair.json["messages"][-2] == {
        "role": "assistant",
        "content": '{"disease": "Fabry disease"}',
    }


def test_structured_output_failure_is_clear_and_logs_the_raw_text(
    fake_llm, make_settings, caplog
) -> None:
    fake_llm.default = Reply.text("I think it is Fabry disease.")

    async def ask():
        async with LLMGateway(make_settings(fake_llm)) as gateway:
            return await gateway.structured("agent", HELLO, Diagnosis)

    with caplog.at_level(logging.WARNING), pytest.raises(StructuredOutputError) as err:
        run(ask())
    assert "does not match Diagnosis after one repair round" in str(err.value)
    assert err.value.raw == "I think it is Fabry disease."
    assert "I think it is Fabry disease." in caplog.text
    assert len(fake_llm.chat_requests) == 2


def test_endpoint_extra_body_reaches_the_server(fake_llm, make_settings) -> None:
    settings = make_settings(fake_llm, extra_body={"top_k": 20})
    run(chat(settings, extra_body={"chat_template_kwargs": {"enable_thinking": False}}))
    sent = fake_llm.chat_requests[0].json
    assert sent["top_k"] == 20
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert json.dumps(sent)  # a plain JSON body
