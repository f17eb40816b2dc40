"""Rules-first grading: tricky pairs from docs/benchmarks-and-grading.md, decided or left open."""

from __future__ import annotations

import pytest

from medresearcher.grading import (
    answer_mentions,
    date_precision_asked,
    extract_final_answer,
    grade_by_rules,
    is_na,
    normalise_answer,
    parse_date,
    parse_quantity,
)
from medresearcher.grading.rules import PartialDate


@pytest.mark.parametrize(
    ("prediction", "gold", "rule"),
    [
        ("AZACITIDINE", "Azacitidine", "exact"),
        ("vitamin b", "Vitamin B", "exact"),
        ("  The Anderson–Fabry disease. ", "Anderson-Fabry disease", "exact"),
        ("Crohn's disease", "Crohn disease", "exact"),
        ("Sjögren syndrome", "Sjogren syndrome", "exact"),
        ("vitamin B-12", "Vitamin B12", "exact"),
        ("1200", "1,200", "exact"),
        ("法布里 病", "法布里病", "exact"),
        ("Not listed", "NA", "na"),
        ("Not_Listed", "N/A", "na"),
        ("unknown", "none", "na"),
        ("08-13-2027", "Aug 13, 2027", "date"),
        ("13 August 2027", "2027-08-13", "date"),
        ("2027年8月13日", "Aug 13, 2027", "date"),
        ("1,200 patients", "1200", "number"),
        ("The answer is 1,200 patients.", "1200", "number"),
        ("15.99", "15.989999771118164", "number"),
        ("$16.05", "15.989999771118164", "number"),
        ("0.12", "12%", "number"),
        ("twelve", "12", "number"),
        ("5 milligrams", "5 mg", "number"),
        ("B, A, C", "A, B, C", "list"),
        ("beta and alpha", "alpha; beta", "list"),
        ("Fabry disease (X-linked)", "Fabry disease", "contains"),
        ("Reasoning first.\nFinal Answer: **Gaucher disease**", "Gaucher disease", "exact"),
        ("<answer>Pompe disease</answer>", "Pompe disease", "exact"),
    ],
)
def test_equivalent_answers_are_correct(prediction: str, gold: str, rule: str) -> None:
    verdict = grade_by_rules(prediction, gold)
    assert (verdict.verdict, verdict.rule) == ("correct", rule)
    assert verdict.grader == f"rule:{rule}"


@pytest.mark.parametrize(
    ("prediction", "gold", "rule"),
    [
        ("", "Fabry disease", "empty"),
        ("   ", "Fabry disease", "empty"),
        ("NA", "Aug 13, 2027", "na"),
        ("Nov 17, 2026", "NA", "na"),
        ("2026", "Aug 13, 2027", "date"),
        ("Aug 14, 2027", "Aug 13, 2027", "date"),
        ("1991", "1990", "date"),
        ("151", "150", "number"),  # a count: off by one is wrong, 1 % or not
        ("1,150", "1,200", "number"),
        ("17.5", "15.99", "number"),
        ("14, 12", "12; 13", "list"),
    ],
)
def test_wrong_answers_are_incorrect(prediction: str, gold: str, rule: str) -> None:
    verdict = grade_by_rules(prediction, gold)
    assert (verdict.verdict, verdict.rule) == ("incorrect", rule)


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("vitamin A", "A"),  # a one-letter gold never matches loosely
        ("vitamin B12", "Vitamin B"),
        ("Not Fabry disease", "Fabry disease"),  # negated
        ("Fabry disease or Gaucher disease", "Fabry disease"),  # hedged
        ("Fabry", "Fabry disease"),  # shorter than the gold
        ("2027", "Aug 13, 2027"),  # only the year, and the question did not ask for it
        ("5 g", "5 mg"),  # units differ: a judge may convert
        ("alpha, gamma", "alpha; beta"),  # an unmatched name is not surely wrong
        ("about 1,150 cases in 2019", "1200"),  # two numbers
    ],
)
def test_undecidable_pairs_go_to_a_judge(prediction: str, gold: str) -> None:
    assert grade_by_rules(prediction, gold).verdict is None


def test_an_undecided_list_says_so() -> None:
    verdict = grade_by_rules("alpha, gamma", "alpha; beta")
    assert (verdict.verdict, verdict.rule) == (None, "list")


def test_aliases_count_and_are_named() -> None:
    verdict = grade_by_rules(
        "alpha-galactosidase A deficiency",
        "Fabry disease",
        ["GLA deficiency", "Alpha-galactosidase A deficiency"],
    )
    assert (verdict.verdict, verdict.rule) == ("correct", "alias")
    assert grade_by_rules("Gaucher disease", "Fabry disease", ["GLA deficiency"]).verdict is None


def test_dates_are_compared_at_the_precision_the_question_asks() -> None:
    question = "When does the patent expire? Answer as date: YYYY"
    assert date_precision_asked(question) == "year"
    assert grade_by_rules("2027", "Aug 13, 2027", question=question).correct
    assert grade_by_rules("DATE: 2027", "Aug 13, 2027", question=question).correct
    assert grade_by_rules("Jan 1, 2027", "Aug 13, 2027", question=question).correct
    assert grade_by_rules("2028", "Aug 13, 2027", question=question).verdict == "incorrect"
    day = "Give the exclusivity date as MM-DD-YYYY"
    assert date_precision_asked(day) == "day"
    assert grade_by_rules("11-17-2026", "Nov 17, 2026", question=day).correct
    assert grade_by_rules("11-18-2026", "Nov 17, 2026", question=day).verdict == "incorrect"
    assert grade_by_rules("Aug 2027", "Aug 13, 2027", precision="month").correct


def test_normalisation_keeps_what_distinguishes_answers() -> None:
    assert normalise_answer("A") == "a"  # an article alone is the answer, not noise
    assert normalise_answer("the Netherlands") == "netherlands"
    assert normalise_answer("vitamin A") == "vitamin a"  # only a leading article goes
    assert normalise_answer("Ｆａｂｒｙ") == "fabry"  # NFKC folds full-width letters


def test_parsers() -> None:
    assert parse_quantity("1,200").value == 1200 and parse_quantity("1,200").integer
    assert parse_quantity("$15.99").value == pytest.approx(15.99)
    assert parse_quantity("12 %").unit == "%"
    assert parse_quantity("1-9 / 100 000") is None  # a prevalence class is not a number
    assert parse_date("Aug 13, 2027") == PartialDate(2027, 8, 13)
    assert parse_date("13-08-2027") == PartialDate(2027, 8, 13)  # day first when it must be
    assert parse_date("2027") == PartialDate(2027)
    assert parse_date("approved on 2019-05-02 in the US", search=True) == PartialDate(2019, 5, 2)
    assert parse_date("2019-05-02 or 2020-01-01", search=True) is None
    assert is_na("Not_Listed") and is_na("N/A") and not is_na("Nail-patella syndrome")


def test_final_answer_extraction() -> None:
    text = "Explanation: it is X.\nExact Answer: INGREDIENT: GEMCITABINE\nConfidence: 80%"
    assert extract_final_answer(text) == "GEMCITABINE"
    assert extract_final_answer("Thinking...\n最终答案：法布里病") == "法布里病"
    assert extract_final_answer("line one\n\nPompe disease.\n") == "Pompe disease"
    assert extract_final_answer(r"so \boxed{42}") == "42"


def test_answer_mentions_is_whole_word_and_insensitive() -> None:
    text = (
        "A gene whose loss causes Anderson–Fabry's disease; GLA-deficient carriers, "
        "患有Gaucher disease"
    )
    names = ["Anderson-Fabry disease", "GLA", "LA", "Gaucher disease", "Fabry d"]
    assert answer_mentions(text, names) == ["Anderson-Fabry disease", "GLA", "Gaucher disease"]
    assert answer_mentions("一种与法布里病有关的基因", ["法布里病", "病"]) == ["法布里病"]
    assert answer_mentions("vitamin A", ["A"], min_chars=1) == ["A"]
