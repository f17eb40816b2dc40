"""Closed-book check and difficulty calibration (§3.1.3) against a scripted panel of models."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from medresearcher.config import EndpointSettings, Settings
from medresearcher.errors import ConfigError
from medresearcher.llm import LLMGateway
from medresearcher.qa.calibration import (
    calibrate,
    closed_book_accuracy,
    closed_book_answers,
    closed_book_check,
)
from medresearcher.schema import QARecord
from tests.conftest import run
from tests.fakes.openai_server import FakeOpenAIServer, Reply

EASY = "Which lysosomal storage disorder is caused by GBA1 variants?"
HARD = "Which sphingolipidosis shares a gene with the X-linked disorder of an enzyme ...?"
HARDER = "Which autosomal recessive disorder, reached through two look-ups, ...?"


def _record(question: str = EASY, level: int = 1, **changes: Any) -> QARecord:
    fields: dict[str, Any] = {
        "id": f"Q:{level}",
        "question": question,
        "answer": "Gaucher disease",
        "answer_id": "ORPHA:355",
        "answer_aliases": ["Glucocerebrosidase deficiency"],
        "chain": ["ORPHA:324", "associated_gene", "HGNC:4296", "^associated_gene", "ORPHA:355"],
        "sample_id": "S:1",
        "strategy": "max_chain",
        "hops": 2,
        "created_at": "2026-01-01T00:00:00Z",
    }
    fields.update(changes)
    record = QARecord(**fields)
    record.difficulty.level = level
    return record


def _settings(server: FakeOpenAIServer, tmp_path: Path) -> Settings:
    def endpoint(model: str) -> EndpointSettings:
        return EndpointSettings(
            base_url=server.base_url, model=model, retry_backoff_s=0.01, max_retries=0
        )

    return Settings(
        workspace=tmp_path / "ws", llm={"ref_a": endpoint("model-a"), "ref_b": endpoint("model-b")}
    )


def _question(body: dict) -> str:
    return body["messages"][-1]["content"]


def _knows(*questions: str, models: tuple[str, ...] = ("model-a", "model-b")):
    """A reply script: the listed models answer the listed questions right, all else wrong."""

    def reply(body: dict) -> Reply:
        if body["model"] in models and _question(body) in questions:
            return Reply.text("It is a sphingolipidosis.\nAnswer: Gaucher disease")
        return Reply.text("Answer: Niemann-Pick disease")

    return reply


class _Regenerator:
    """Hands out the next harder record and remembers what it was asked."""

    def __init__(self, *questions: str | None) -> None:
        self.questions = list(questions)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, record: QARecord, level: int) -> QARecord | None:
        self.calls.append((record.question, level))
        question = self.questions.pop(0)
        return None if question is None else _record(question, level, id=f"Q:{level}")


def _calibrate(server, tmp_path, record, regenerate, **kwargs: Any) -> QARecord:
    kwargs.setdefault("panel", ["ref_a", "ref_b"])
    kwargs.setdefault("k", 4)

    async def go() -> QARecord:
        async with LLMGateway(_settings(server, tmp_path)) as gateway:
            return await calibrate(record, gateway=gateway, regenerate=regenerate, **kwargs)

    return run(go())


def test_a_panel_that_answers_correctly_triggers_regeneration(fake_llm, tmp_path) -> None:
    fake_llm.default = _knows(EASY)
    regenerate = _Regenerator(HARD)
    result = _calibrate(fake_llm, tmp_path, _record(), regenerate)
    assert regenerate.calls == [(EASY, 2)]
    assert (result.question, result.id, result.difficulty.level) == (HARD, "Q:2", 2)
    assert result.difficulty.calibrated and result.checks["calibration"].passed
    first, second = result.difficulty.rounds
    assert (first.level, first.too_easy, first.question, first.k) == (1, True, EASY, 4)
    assert first.accuracy == {"ref_a": 1.0, "ref_b": 1.0}
    assert (second.level, second.too_easy, second.question) == (2, False, HARD)
    assert second.accuracy == {"ref_a": 0.0, "ref_b": 0.0}
    models = Counter(r.json["model"] for r in fake_llm.chat_requests)
    assert models == {"model-a": 8, "model-b": 8}  # k = 4 per model and round


def test_a_panel_that_fails_keeps_the_question(fake_llm, tmp_path) -> None:
    fake_llm.default = _knows()
    regenerate = _Regenerator()
    result = _calibrate(fake_llm, tmp_path, _record(HARD), regenerate)
    assert regenerate.calls == []
    assert (result.question, result.difficulty.level, result.difficulty.calibrated) == (
        HARD,
        1,
        True,
    )
    assert [r.too_easy for r in result.difficulty.rounds] == [False]


def test_one_model_above_the_threshold_is_enough(fake_llm, tmp_path) -> None:
    fake_llm.default = _knows(EASY, models=("model-b",))
    result = _calibrate(fake_llm, tmp_path, _record(), _Regenerator(HARD))
    assert result.difficulty.rounds[0].accuracy == {"ref_a": 0.0, "ref_b": 1.0}
    assert result.difficulty.level == 2


def test_exactly_half_is_not_too_easy(fake_llm, tmp_path) -> None:
    counter = itertools.count()
    lock = threading.Lock()

    def every_other(body: dict) -> Reply:
        with lock:
            n = next(counter)
        return Reply.text("Answer: Gaucher disease" if n % 2 else "Answer: Krabbe disease")

    fake_llm.default = every_other
    result = _calibrate(fake_llm, tmp_path, _record(), _Regenerator(), panel=["ref_a"], k=2)
    assert result.difficulty.rounds[0].accuracy == {"ref_a": 0.5}
    assert result.difficulty.calibrated and result.difficulty.level == 1


def test_still_too_easy_at_the_maximum_level(fake_llm, tmp_path) -> None:
    fake_llm.default = _knows(EASY, HARD, HARDER)
    regenerate = _Regenerator(HARD, HARDER)
    result = _calibrate(fake_llm, tmp_path, _record(), regenerate, max_level=3, k=1)
    assert [level for _, level in regenerate.calls] == [2, 3]
    assert [r.level for r in result.difficulty.rounds] == [1, 2, 3]
    assert [r.question for r in result.difficulty.rounds] == [EASY, HARD, HARDER]
    assert not result.difficulty.calibrated and result.difficulty.level == 3
    check = result.checks["calibration"]
    assert not check.passed and "maximum level" in check.detail


def test_no_harder_question_stops_the_loop(fake_llm, tmp_path) -> None:
    fake_llm.default = _knows(EASY)
    regenerate = _Regenerator(None)
    result = _calibrate(fake_llm, tmp_path, _record(), regenerate, k=1)
    assert regenerate.calls == [(EASY, 2)]
    assert result.question == EASY and result.difficulty.level == 1
    assert (
        not result.difficulty.calibrated and "nothing harder" in result.checks["calibration"].detail
    )


def test_a_panel_must_be_configured(fake_llm, tmp_path) -> None:
    with pytest.raises(ConfigError, match="calibration_panel"):
        _calibrate(fake_llm, tmp_path, _record(), _Regenerator(), panel=[])
    with pytest.raises(ConfigError, match="ref_c"):
        _calibrate(fake_llm, tmp_path, _record(), _Regenerator(), panel=["ref_a", "ref_c"])
    assert fake_llm.chat_requests == []


def test_closed_book_attempts_are_cached_apart(fake_llm, tmp_path) -> None:
    """k attempts are k distinct cache entries: a rerun replays them, not one answer k times."""
    counter = itertools.count()
    lock = threading.Lock()

    def first_right(body: dict) -> Reply:
        with lock:
            n = next(counter)
        return Reply.text("Answer: Gaucher disease" if n == 0 else "Answer: Fabry disease")

    fake_llm.default = first_right

    async def go() -> tuple[float, float]:
        async with LLMGateway(_settings(fake_llm, tmp_path), cache_mode="read-write") as gateway:
            first = await closed_book_accuracy(gateway, "ref_a", _record(), 3)
            again = await closed_book_accuracy(gateway, "ref_a", _record(), 3)
            return first, again

    first, again = run(go())
    assert first == again == pytest.approx(1 / 3)
    assert len(fake_llm.chat_requests) == 3
    sent = fake_llm.chat_requests[0].json["messages"]
    assert sent[-1]["content"] == EASY and "no tools" in sent[0]["content"]


def test_closed_book_check_and_answers(fake_llm, tmp_path) -> None:
    fake_llm.default = _knows(EASY)

    async def go() -> tuple[Any, Any, Any]:
        async with LLMGateway(_settings(fake_llm, tmp_path)) as gateway:
            easy = await closed_book_check(gateway, "ref_a", _record(), 2)
            hard = await closed_book_check(gateway, "ref_a", _record(HARD), 2, too_easy_above=0.5)
            answers = await closed_book_answers(gateway, "ref_b", _record(HARD), 1)
            return easy, hard, answers

    easy, hard, answers = run(go())
    assert not easy.passed and "too easy" in easy.detail and "1.00" in easy.detail
    assert hard.passed and "0.00" in hard.detail
    assert answers == [("Answer: Niemann-Pick disease", False)]


def test_a_chinese_question_gets_the_chinese_prompt(fake_llm, tmp_path) -> None:
    fake_llm.default = Reply.text("思考……\n最终答案：Gaucher disease")

    async def go() -> float:
        async with LLMGateway(_settings(fake_llm, tmp_path)) as gateway:
            return await closed_book_accuracy(
                gateway, "ref_a", _record("哪一种疾病……？", language="zh"), 1
            )

    assert run(go()) == 1.0
    assert "最终答案" in fake_llm.chat_requests[0].json["messages"][0]["content"]
