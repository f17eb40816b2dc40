"""``grade``: the issue's tricky pairs, rules first, the judge only for what rules leave open.

Every pair runs with a judge attached whose server has nothing scripted: a pair the rules must
settle fails the test if it reaches the model (the recorded requests are checked).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from medresearcher.config import EndpointSettings, Settings
from medresearcher.grading import GradeResult, Judge, grade
from medresearcher.llm import LLMGateway
from tests.conftest import run
from tests.fakes.openai_server import FakeOpenAIServer, Reply

YEAR_QUESTION = "When does the patent expire? Answer in the format date: YYYY."
DAY_QUESTION = "On which exact date (MM-DD-YYYY) does the patent expire?"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def judge_server(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.reset()
    server.default = Reply.error(400, message="the judge was not supposed to be asked")
    return server


def settings_for(server: FakeOpenAIServer, tmp_path: Path) -> Settings:
    endpoint = EndpointSettings(
        base_url=server.base_url, model="judge-model", max_retries=0, timeout_s=5.0
    )
    return Settings(workspace=tmp_path / "ws", llm={"judge": endpoint})


def grade_with_judge(
    server: FakeOpenAIServer,
    tmp_path: Path,
    prediction: str | None,
    gold: str,
    aliases: tuple[str, ...] = (),
    question: str | None = None,
) -> GradeResult:
    async def main() -> GradeResult:
        async with LLMGateway(settings_for(server, tmp_path)) as gateway:
            judge = Judge(gateway)
            return await grade(prediction, gold, aliases, question=question, judge=judge)

    return run(main())


def judge_says(correct: str, extracted: str) -> Reply:
    body = {"extracted_final_answer": extracted, "reasoning": "compared", "correct": correct}
    return Reply.text(json.dumps(body))


@pytest.mark.parametrize(
    ("prediction", "gold", "question", "verdict", "grader"),
    [
        # case
        ("AZACITIDINE", "Azacitidine", None, "correct", "rule:exact"),
        ("INGREDIENT: AZACITIDINE", "Azacitidine", None, "correct", "rule:exact"),
        # vitamin B vs vitamin b
        ("vitamin b", "Vitamin B", None, "correct", "rule:exact"),
        # the NA class
        ("NA", "Not listed", None, "correct", "rule:na"),
        ("Not_Listed", "NA", None, "correct", "rule:na"),
        ("NA", "Nov 17, 2026", None, "incorrect", "rule:na"),
        # dates at the precision the question asks
        ("2027", "Aug 13, 2027", YEAR_QUESTION, "correct", "rule:date"),
        ("2026", "Aug 13, 2027", YEAR_QUESTION, "incorrect", "rule:date"),
        ("08-13-2027", "Aug 13, 2027", DAY_QUESTION, "correct", "rule:date"),
        ("Aug 14, 2027", "Aug 13, 2027", DAY_QUESTION, "incorrect", "rule:date"),
        # numbers with units, and a price within 1 %
        ("5 milligrams", "5 mg", None, "correct", "rule:number"),
        ("1,200 patients", "1200", None, "correct", "rule:number"),
        ("$16.05", "15.989999771118164", None, "correct", "rule:number"),
        ("17.50", "15.989999771118164", None, "incorrect", "rule:number"),
        # lists in another order
        ("C, B, A", "A, B, C", None, "correct", "rule:list"),
        ("beta and alpha", "alpha; beta", None, "correct", "rule:list"),
        # no answer at all
        ("", "Fabry disease", None, "incorrect", "rule:empty"),
        (None, "Fabry disease", None, "incorrect", "rule:empty"),
    ],
)
def test_rules_settle_the_tricky_pairs_without_the_judge(
    judge_server, tmp_path, prediction, gold, question, verdict, grader
) -> None:
    result = grade_with_judge(judge_server, tmp_path, prediction, gold, question=question)
    assert (result.verdict, result.grader) == (verdict, grader)
    assert result.judgement is None
    assert judge_server.chat_requests == []


def test_extracted_answer_is_recorded_for_rule_verdicts(judge_server, tmp_path) -> None:
    reply = "I checked the FDA label.\nFinal answer: **AZACITIDINE**"
    result = grade_with_judge(judge_server, tmp_path, reply, "Azacitidine")
    assert (result.verdict, result.extracted) == ("correct", "AZACITIDINE")


def test_aliases_from_the_kg_count(judge_server, tmp_path) -> None:
    result = grade_with_judge(
        judge_server,
        tmp_path,
        "Anderson-Fabry disease",
        "Fabry disease",
        ("Anderson-Fabry disease",),
    )
    assert (result.verdict, result.grader) == ("correct", "rule:alias")


@pytest.mark.parametrize(
    ("prediction", "gold", "question"),
    [
        ("vitamin B12", "Vitamin B", None),  # more specific is not the same answer
        ("Vitamin B", "vitamin B12", None),  # less specific neither
        ("2027", "Aug 13, 2027", DAY_QUESTION),  # a year where the day was asked
    ],
)
def test_what_rules_leave_open_goes_to_the_judge(
    judge_server, tmp_path, prediction, gold, question
) -> None:
    judge_server.enqueue(judge_says("no", prediction))
    result = grade_with_judge(judge_server, tmp_path, prediction, gold, question=question)
    assert (result.verdict, result.grader) == ("incorrect", "llm:judge-model")
    assert len(judge_server.chat_requests) == 1
    assert result.judgement is not None and result.judgement.verdict == "incorrect"


def test_vitamin_b_pairs_are_never_correct_without_a_judge() -> None:
    for prediction, gold in [("vitamin B12", "Vitamin B"), ("Vitamin B", "vitamin B12")]:
        result = run(grade(prediction, gold))
        assert result.verdict == "incorrect", (prediction, gold)
        assert result.grader == "rule:undecided"
        assert result.detail is not None and "no judge" in result.detail


def test_a_synonym_the_rules_cannot_know_is_judged_correct(judge_server, tmp_path) -> None:
    judge_server.enqueue(judge_says("yes", "alpha-galactosidase A deficiency"))
    reply = "The GLA enzyme is missing.\nExact Answer: alpha-galactosidase A deficiency"
    result = grade_with_judge(
        judge_server, tmp_path, reply, "Fabry disease", question="Which disorder?"
    )
    assert (result.verdict, result.grader) == ("correct", "llm:judge-model")
    assert result.extracted == "alpha-galactosidase A deficiency"
    assert result.detail == "compared" and result.correct


def test_lists_with_an_undecided_item_are_left_to_the_judge(judge_server, tmp_path) -> None:
    judge_server.enqueue(judge_says("no", "Pompe disease, Fabry disease"))
    result = grade_with_judge(
        judge_server, tmp_path, "Pompe disease, Fabry disease", "Fabry disease; Gaucher disease"
    )
    assert (result.verdict, result.grader) == ("incorrect", "llm:judge-model")
