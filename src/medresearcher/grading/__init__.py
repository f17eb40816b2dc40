"""Grading answers against gold answers: rules first, a judge for what rules cannot decide.

The rules (:mod:`medresearcher.grading.rules`) are pure functions with no model behind them;
the QA stage uses them to validate written questions and to grade closed-book answers during
difficulty calibration (paper §3.1.3), and evaluation (paper §5) puts an LLM judge after them.
"""

# Rules first, then an LLM judge (paper §5): ``grade`` is the entry point for evaluation.
from medresearcher.grading.grade import GradeResult, grade
from medresearcher.grading.judge import Judge
from medresearcher.grading.rules import (
    NA_ANSWERS,
    PartialDate,
    Quantity,
    RuleVerdict,
    answer_mentions,
    date_precision_asked,
    extract_final_answer,
    grade_by_rules,
    is_na,
    normalise_answer,
    parse_date,
    parse_quantity,
)

__all__ = [
    "NA_ANSWERS",
    "GradeResult",
    "Judge",
    "PartialDate",
    "Quantity",
    "RuleVerdict",
    "answer_mentions",
    "date_precision_asked",
    "extract_final_answer",
    "grade",
    "grade_by_rules",
    "is_na",
    "normalise_answer",
    "parse_date",
    "parse_quantity",
]
