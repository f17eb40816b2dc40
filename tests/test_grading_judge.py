"""The LLM judge against the fake model server: strict verdicts, unreadable output, the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medresearcher.config import EndpointSettings, Settings
from medresearcher.errors import ConfigError
from medresearcher.grading import Judge, grade
from medresearcher.grading.judge import Judgement
from medresearcher.llm import LLMCallError, LLMGateway
from tests.conftest import run
from tests.fakes.openai_server import FakeOpenAIServer, Reply

QUESTION = "Which X-linked lysosomal storage disorder is caused by GLA variants?"
GOLD = "Fabry disease"


def judge_settings(server: FakeOpenAIServer, tmp_path: Path) -> Settings:
    endpoint = EndpointSettings(
        base_url=server.base_url,
        model="judge-model",
        retry_backoff_s=0.01,
        max_retries=1,
        timeout_s=5.0,
    )
    return Settings(workspace=tmp_path / "ws", llm={"judge": endpoint})


def verdict(correct: object, *, extracted: str | None = "Fabry disease", **extra) -> Reply:
    body = {
        "extracted_final_answer": extracted,
        "reasoning": "The extracted answer names the same disorder as the correct answer.",
        "correct": correct,
        "confidence": 90,
        **extra,
    }
    return Reply.text(json.dumps(body))


async def judge_once(
    settings: Settings, *, cache_mode: str = "off", response: str, question: str = QUESTION
) -> Judgement:
    async with LLMGateway(settings, cache_mode=cache_mode) as gateway:
        return await Judge(gateway).judge(question=question, gold=GOLD, response=response)


def test_a_yes_verdict_is_correct_and_the_request_is_deterministic(fake_llm, tmp_path) -> None:
    fake_llm.enqueue(verdict("Yes"))
    response = "I searched for GLA.\nExact Answer: Anderson-Fabry disease\nConfidence: 90%"
    judgement = run(judge_once(judge_settings(fake_llm, tmp_path), response=response))
    assert judgement.verdict == "correct"
    assert judgement.grader == "llm:judge-model"
    assert (judgement.extracted, judgement.confidence) == ("Fabry disease", 90.0)
    assert judgement.prompt_version == "1"
    [request] = fake_llm.chat_requests
    body = request.json
    assert body["temperature"] == 0 and body["model"] == "judge-model"
    user = body["messages"][-1]["content"]
    assert QUESTION in user and response in user and f"[correct_answer]: {GOLD}" in user
    assert '"correct"' in body["messages"][0]["content"]  # the schema instruction


def test_a_no_verdict_is_incorrect(fake_llm, tmp_path) -> None:
    fake_llm.enqueue(verdict("no", extracted="Gaucher disease", confidence="about 60%"))
    judgement = run(judge_once(judge_settings(fake_llm, tmp_path), response="Gaucher disease"))
    assert judgement.verdict == "incorrect"
    assert (judgement.extracted, judgement.confidence) == ("Gaucher disease", 60.0)


def test_an_explanation_mentioning_vitamin_a_does_not_flip_a_no(fake_llm, tmp_path) -> None:
    # The public evaluator's scan for a standalone "A" would read this as correct.
    fake_llm.enqueue(
        verdict(
            "no",
            extracted="Vitamin A",
            reasoning="A. The response answers vitamin A; A is not the correct answer: (A) ≠ B12.",
        )
    )
    settings = judge_settings(fake_llm, tmp_path)
    judgement = run(judge_once(settings, response="Final answer: Vitamin A", question="Which?"))
    assert judgement.verdict == "incorrect"
    assert "vitamin A" in (judgement.reasoning or "")


def test_unreadable_output_after_the_repair_round_is_unjudgeable(fake_llm, tmp_path) -> None:
    fake_llm.enqueue(Reply.text("A"), Reply.text("Correct: A — the answer is right."))
    settings = judge_settings(fake_llm, tmp_path)
    judgement = run(judge_once(settings, response="Fabry"))
    assert judgement.verdict == "unjudgeable"
    assert judgement.raw == "Correct: A — the answer is right."
    assert len(fake_llm.chat_requests) == 2  # one repair round, then give up


def test_a_boolean_or_unknown_verdict_is_not_read_as_yes(fake_llm, tmp_path) -> None:
    fake_llm.enqueue(verdict(True), verdict("correct"))
    judgement = run(judge_once(judge_settings(fake_llm, tmp_path), response="Fabry"))
    assert judgement.verdict == "unjudgeable"


def test_the_repair_round_can_rescue_a_verdict(fake_llm, tmp_path) -> None:
    fake_llm.enqueue(Reply.text("correct: yes"), verdict("no"))
    judgement = run(judge_once(judge_settings(fake_llm, tmp_path), response="Fabry"))
    assert judgement.verdict == "incorrect"
    repair = fake_llm.chat_requests[1].json["messages"]
    assert repair[-2] == {"role": "assistant", "content": "correct: yes"}


def test_a_fenced_json_verdict_is_read(fake_llm, tmp_path) -> None:
    body = {"extracted_final_answer": "Fabry", "reasoning": "same", "correct": "**yes**"}
    fake_llm.enqueue(Reply.text(f"```json\n{json.dumps(body)}\n```"))
    judgement = run(judge_once(judge_settings(fake_llm, tmp_path), response="Fabry"))
    assert judgement.verdict == "correct" and judgement.confidence is None


def test_a_repeated_judgement_is_answered_from_the_gateway_cache(fake_llm, tmp_path) -> None:
    fake_llm.enqueue(verdict("yes"))
    settings = judge_settings(fake_llm, tmp_path)
    first = run(judge_once(settings, cache_mode="read-write", response="Fabry disease."))
    fake_llm.default = verdict("no")  # a second model call would now say "no"
    second = run(judge_once(settings, cache_mode="read-write", response="Fabry disease."))
    assert first == second and second.verdict == "correct"
    assert len(fake_llm.chat_requests) == 1


def test_chinese_questions_get_the_chinese_prompt(fake_llm, tmp_path) -> None:
    fake_llm.enqueue(verdict("yes", extracted="法布里病"))
    settings = judge_settings(fake_llm, tmp_path)
    judgement = run(judge_once(settings, response="最终答案：法布里病", question="哪种病？"))
    assert judgement.verdict == "correct"
    assert "[正确答案]: Fabry disease" in fake_llm.chat_requests[0].json["messages"][-1]["content"]


def test_long_responses_keep_their_end(fake_llm, tmp_path) -> None:
    async def main() -> list[dict[str, str]]:
        async with LLMGateway(judge_settings(fake_llm, tmp_path)) as gateway:
            judge = Judge(gateway, max_response_chars=100)
            return judge.messages(question=None, gold=GOLD, response="x" * 500 + "END")

    user = run(main())[-1]["content"]
    assert "[…] " in user and "END" in user and "x" * 101 not in user
    assert "[question]" not in user


def test_an_unknown_endpoint_fails_at_construction(fake_llm, tmp_path) -> None:
    async def main() -> None:
        async with LLMGateway(judge_settings(fake_llm, tmp_path)) as gateway:
            Judge(gateway, "referee")

    with pytest.raises(ConfigError, match="referee"):
        run(main())


def test_an_outage_raises_instead_of_becoming_a_verdict(fake_llm, tmp_path) -> None:
    fake_llm.default = Reply.error(503, message="down")
    with pytest.raises(LLMCallError, match="HTTP 503"):
        run(judge_once(judge_settings(fake_llm, tmp_path), response="Fabry"))


def test_grade_reports_an_unjudgeable_verdict(fake_llm, tmp_path) -> None:
    fake_llm.default = Reply.text("A")

    async def main():
        async with LLMGateway(judge_settings(fake_llm, tmp_path)) as gateway:
            return await grade(
                "alpha-galactosidase A deficiency", GOLD, question=QUESTION, judge=Judge(gateway)
            )

    result = run(main())
    assert (result.verdict, result.grader, result.correct) == (
        "unjudgeable",
        "llm:judge-model",
        False,
    )
    assert result.detail is not None and "unreadable judge output" in result.detail
