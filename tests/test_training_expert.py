"""r_expert (paper §4) and the judge-confirmed efficiency penalty, against the fake model server:
sync reward calls driving the async gateway, caching, failures, and the composite with β."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from medresearcher.errors import ConfigError
from medresearcher.llm import LLMCallError, LLMGateway
from medresearcher.training.expert import make_expert_reward, make_judged_efficiency_penalty
from medresearcher.training.rewards import RewardWeights, make_composite_reward
from tests.fakes.openai_server import Reply

QUESTION = "It is a disorder classified under “Lysosomal disease”. Which disorder is it?"
CHEAT_SHEET = ["Identify [E1] (gene) from its clues.", "From [E1], follow associated_gene to [E2]."]
GOOD = (
    "<think>The gene clue points to GLA.</think>"
    '<tool_call>{"name": "web_search", "arguments": {"queries": ["GLA disorder"]}}</tool_call>'
    "\nuser\n<tool_response>GLA causes Fabry disease</tool_response>\nassistant\n"
    "<answer>Fabry disease</answer>"
)
GUESS = "<answer>Fabry disease</answer>"


def judged(score: float, rationale: str = "covers the plan") -> Reply:
    return Reply.text(json.dumps({"rationale": rationale, "score": score}))


@pytest.fixture
def gateway(fake_llm, make_settings) -> LLMGateway:
    """A gateway on the fake server; each test's reward closes it on its own loop."""
    return LLMGateway(make_settings(fake_llm, max_retries=0))


def test_the_judge_scores_each_completion_and_sees_the_plan_and_the_path(fake_llm, gateway):
    fake_llm.add_rule(lambda body: "GLA disorder" in json.dumps(body), judged(0.9))
    fake_llm.add_rule(lambda body: True, judged(0.1, "no evidence"))
    expert = make_expert_reward(gateway, "agent")
    try:
        scores = expert([GOOD, GUESS], question=[QUESTION] * 2, cheat_sheet=[CHEAT_SHEET] * 2)
    finally:
        expert.close()
    assert scores == [0.9, 0.1]
    assert expert.__name__ == "expert_reward"
    sent = fake_llm.chat_requests[0].json["messages"]
    user = sent[-1]["content"]
    assert "follow associated_gene to [E2]" in user and QUESTION in user
    assert "Fabry disease" in user  # the agent's answer is shown; the gold is not a variable
    assert sent[0]["role"] == "system"


def test_an_identical_request_is_answered_from_the_cache(fake_llm, gateway):
    fake_llm.default = judged(0.7)
    expert = make_expert_reward(gateway, "agent")
    try:
        first = expert([GOOD, GOOD], question=[QUESTION] * 2, cheat_sheet=[CHEAT_SHEET] * 2)
        sent = len(fake_llm.chat_requests)
        again = expert([GOOD], question=[QUESTION], cheat_sheet=[CHEAT_SHEET])
    finally:
        expert.close()
    assert first == [0.7, 0.7] and again == [0.7]
    assert len(fake_llm.chat_requests) == sent  # no request for the repeat
    assert expert.calls == sent


def test_without_the_cache_every_call_reaches_the_server(fake_llm, gateway):
    fake_llm.default = judged(0.7)
    expert = make_expert_reward(gateway, "agent", cache=False)
    try:
        expert([GOOD], question=[QUESTION], cheat_sheet=[CHEAT_SHEET])
        expert([GOOD], question=[QUESTION], cheat_sheet=[CHEAT_SHEET])
    finally:
        expert.close()
    assert len(fake_llm.chat_requests) == 2


def test_no_cheat_sheet_or_no_valid_verdict_scores_none(fake_llm, gateway):
    fake_llm.default = Reply.text("I would say fairly good.")  # not JSON, twice (with repair)
    expert = make_expert_reward(gateway, "agent")
    try:
        scores = expert([GOOD, GOOD], question=[QUESTION] * 2, cheat_sheet=[[], CHEAT_SHEET])
    finally:
        expert.close()
    assert scores == [None, None]
    assert len(fake_llm.chat_requests) == 2  # one call + one repair, none for the empty sheet


def test_a_percentage_score_is_read_as_a_fraction(fake_llm, gateway):
    fake_llm.default = Reply.text('{"rationale": "ok", "score": "80%"}')
    expert = make_expert_reward(gateway, "agent")
    try:
        assert expert([GOOD], question=[QUESTION], cheat_sheet=[CHEAT_SHEET]) == [0.8]
    finally:
        expert.close()


def test_an_endpoint_outage_raises_rather_than_scoring(fake_llm, gateway):
    fake_llm.default = Reply.error(500)
    expert = make_expert_reward(gateway, "agent")
    try:
        with pytest.raises(LLMCallError):
            expert([GOOD], question=[QUESTION], cheat_sheet=[CHEAT_SHEET])
    finally:
        expert.close()


def test_the_reward_can_be_called_from_inside_a_running_event_loop(fake_llm, gateway):
    """TRL calls rewards synchronously, possibly while its own loop runs (async tools)."""
    fake_llm.default = judged(0.4)
    expert = make_expert_reward(gateway, "agent")

    async def trainer_step() -> list:
        return expert([GOOD], question=[QUESTION], cheat_sheet=[CHEAT_SHEET])

    try:
        assert asyncio.run(trainer_step()) == [0.4]
    finally:
        expert.close()


def test_without_an_endpoint_the_term_is_off_and_says_so(fake_llm, caplog):
    expert = make_expert_reward(None, None)
    assert not expert.enabled
    with caplog.at_level(logging.WARNING):
        assert expert([GOOD, GUESS], cheat_sheet=[CHEAT_SHEET] * 2) == [0.0, 0.0]
    assert any("r_expert is off" in r.getMessage() for r in caplog.records)
    assert make_composite_reward(expert=expert).effective_weights.expert == 0.0
    assert fake_llm.chat_requests == []


def test_an_unknown_endpoint_or_a_missing_gateway_is_a_config_error(gateway):
    with pytest.raises(ConfigError, match="judge"):
        make_expert_reward(gateway, "judge")
    with pytest.raises(ConfigError, match="without a gateway"):
        make_expert_reward(None, "agent")


def test_the_composite_adds_beta_times_the_expert_score(fake_llm, gateway):
    fake_llm.default = judged(0.5)
    expert = make_expert_reward(gateway, "agent")
    try:
        columns = {
            "answer": ["Fabry disease"],
            "question": [QUESTION],
            "cheat_sheet": [CHEAT_SHEET],
        }
        with_expert = make_composite_reward(RewardWeights(expert=0.2), expert=expert)
        heavier = make_composite_reward(RewardWeights(expert=0.6), expert=expert)
        low = with_expert([GOOD], **columns)[0]
        high = heavier([GOOD], **columns)[0]
    finally:
        expert.close()
    assert low == pytest.approx(1.0 + 0.2 * 0.5)  # correct, no wasted call
    assert high - low == pytest.approx(0.4 * 0.5)
    assert len(fake_llm.chat_requests) == 1  # the second composite hit the cache


def test_the_judge_confirms_only_the_flagged_calls_it_agrees_with(fake_llm, gateway):
    repeat = '<tool_call>{"name": "web_search", "arguments": {"queries": ["x"]}}</tool_call>'
    text = (
        f"{repeat}\nuser\n<tool_response>a</tool_response>\nassistant\n"
        f"{repeat}\nuser\n<tool_response>a</tool_response>\nassistant\n"
        "<answer>Fabry disease</answer>"
    )
    clean = "<answer>Fabry disease</answer>"
    fake_llm.default = Reply.text('{"wasted": []}')  # the judge overrules the rule
    penalty = make_judged_efficiency_penalty(gateway, "agent")
    try:
        assert penalty([text, clean], answer=["Fabry disease"] * 2) == [0.0, 0.0]
        assert len(fake_llm.chat_requests) == 1  # nothing flagged in `clean`: no call
        user = fake_llm.chat_requests[0].json["messages"][-1]["content"]
        assert "1" in user.split("possibly wasted:")[1]
        fake_llm.default = Reply.text('{"wasted": [1, 7]}')  # 7 was never flagged: ignored
        assert penalty([text], answer=["Fabry"], question=["other"]) == [0.5]
    finally:
        penalty.close()
    assert penalty.__name__ == "efficiency_penalty"
