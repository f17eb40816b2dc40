"""Values in answers: numbers with units, and dates known to the year, month or day.

Grading compares a number within a tolerance and a date at the precision the question asks
(docs/benchmarks-and-grading.md §1.3); these parsers turn an answer's text into such values and
say None where the text is no single value. Kept apart from the verdict logic of
:mod:`medresearcher.grading.rules` because they are a concept of their own (what a value is),
tested on their own, and reusable wherever an answer must be read as a number or a date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from medresearcher.grading.normalise import _fold

__all__ = [
    "PartialDate",
    "Precision",
    "Quantity",
    "date_precision_asked",
    "parse_date",
    "parse_quantity",
]

Precision = Literal["year", "month", "day"]


# -- numbers ---------------------------------------------------------------------------------

_NUMBER = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(
    rf"^(?:(?:us)?\$|€|£|¥|usd\s*|eur\s*)?\s*(?P<num>{_NUMBER})\s*"
    r"(?P<unit>%|[^\W\d]+(?:\s*/\s*[^\W\d]+)?(?:\s+[^\W\d]+)?)?$",
    re.I,
)
_NUMBER_IN_TEXT = re.compile(rf"(?<![\w.,\-]){_NUMBER}(?![\d.,]*\d)")
_NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        (  # noqa: SIM905
            "zero one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
        ).split()
    )
}
_UNIT_SYNONYMS = {
    "percent": "%",
    "per cent": "%",
    "yr": "year",
    "yrs": "year",
    "y": "year",
    "years old": "year",
    "mo": "month",
    "milligram": "mg",
    "gram": "g",
    "kilogram": "kg",
    "microgram": "μg",
    "mcg": "μg",
    "µg": "μg",
    "dollar": "usd",
    "euro": "eur",
}
#: Units a gold answer may carry; "5 alpha reductase" is a name, not five of something.
_KNOWN_UNITS = frozenset(
    (  # noqa: SIM905 - a word list reads better as words
        "% second minute hour day week month year decade century mg g kg μg ng ml l dl mmol "
        "μmol mol iu u mm cm m km usd eur bp kb mb kda"
    ).split()
)


@dataclass(frozen=True)
class Quantity:
    """A number as written: its value, its unit (normalised), and whether it was an integer."""

    value: float
    unit: str | None
    integer: bool


def _unit(raw: str | None) -> str | None:
    if not raw:
        return None
    unit = " ".join(raw.casefold().replace(" / ", "/").split())
    unit = _UNIT_SYNONYMS.get(unit, unit)
    if len(unit) > 3 and unit.endswith("s") and not unit.endswith("ss"):
        unit = _UNIT_SYNONYMS.get(unit[:-1], unit[:-1])
    return unit


def _to_quantity(number: str, unit: str | None = None) -> Quantity:
    plain = number.replace(",", "").replace("−", "-")
    return Quantity(float(plain), _unit(unit), re.fullmatch(r"[-+]?\d+", plain) is not None)


def parse_quantity(text: str) -> Quantity | None:
    """``text`` read as one number with an optional currency and unit, else None.

    ``"1,200"`` and ``"1200"`` are the same; ``"$15.99"``, ``"5 mg/kg"``, ``"12%"`` and
    ``"twelve"`` parse; ``"1-9 / 100 000"`` (a prevalence class) and ``"5 alpha reductase"``
    (a unit that is no unit) do not.
    """
    stripped = _fold(text).strip().rstrip(".")
    if stripped in _NUMBER_WORDS:
        return Quantity(float(_NUMBER_WORDS[stripped]), None, True)
    match = _QUANTITY.match(stripped)
    if match is None:
        return None
    quantity = _to_quantity(match["num"], match["unit"])
    unit = quantity.unit
    if unit is None or unit in _KNOWN_UNITS or unit.split("/")[0] in _KNOWN_UNITS:
        return quantity
    return None


def _numbers_in(text: str) -> list[Quantity]:
    return [_to_quantity(m.group(0)) for m in _NUMBER_IN_TEXT.finditer(_fold(text))]


def _same_number(pred: Quantity, gold: Quantity, rel_tol: float) -> bool:
    if gold.integer and pred.integer and abs(gold.value) < 10_000:
        return pred.value == gold.value  # a count or a year: off by one is wrong
    if pred.value == gold.value:
        return True
    if gold.unit == "%" and pred.unit is None and abs(pred.value) <= 1:
        pred = Quantity(pred.value * 100, "%", False)
    elif pred.unit == "%" and gold.unit is None and abs(gold.value) <= 1:
        pred = Quantity(pred.value / 100, None, False)
    return abs(pred.value - gold.value) <= rel_tol * max(abs(gold.value), abs(pred.value))


# -- dates -----------------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = "(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<y>1[0-9]\d\d|2[01]\d\d)"
_DATE_PATTERNS = [
    re.compile(p, re.I)
    for p in (
        rf"{_YEAR}[-/.](?P<m>\d{{1,2}})[-/.](?P<d>\d{{1,2}})",
        rf"(?P<m>\d{{1,2}})[-/.](?P<d>\d{{1,2}})[-/.]{_YEAR}",
        rf"{_MONTH}\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+{_YEAR}",
        rf"(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}",
        rf"{_YEAR}\s*年\s*(?P<m>\d{{1,2}})\s*月\s*(?P<d>\d{{1,2}})\s*日",
        rf"{_MONTH},?\s+{_YEAR}",
        rf"{_YEAR}[-/](?P<m>\d{{1,2}})",
        rf"{_YEAR}\s*年\s*(?P<m>\d{{1,2}})\s*月",
        rf"{_YEAR}\s*年?",
    )
]
_LEVEL = {"year": 1, "month": 2, "day": 3}


@dataclass(frozen=True)
class PartialDate:
    """A date known to the year, the month or the day."""

    year: int
    month: int | None = None
    day: int | None = None

    @property
    def precision(self) -> Precision:
        return "day" if self.day else "month" if self.month else "year"

    def fields(self, precision: Precision) -> tuple[int | None, ...]:
        return (self.year, self.month, self.day)[: _LEVEL[precision]]


def _date_from(match: re.Match[str]) -> PartialDate | None:
    groups = match.groupdict()
    month = _MONTHS[groups["mon"].casefold()] if groups.get("mon") else groups.get("m")
    month, day = (int(month) if month else None), (int(groups["d"]) if groups.get("d") else None)
    if month and day and month > 12 and day <= 12:  # 13-08-2027: day first
        month, day = day, month
    if (month is not None and not 1 <= month <= 12) or (day is not None and not 1 <= day <= 31):
        return None
    return PartialDate(int(groups["y"]), month, day)


def parse_date(text: str, *, search: bool = False) -> PartialDate | None:
    """``text`` read as a date: ``Aug 13, 2027``, ``08-13-2027`` (US order unless the first
    number exceeds 12), ``2027-08-13``, ``August 2027``, ``2027``, ``2027年8月13日``.

    With ``search`` the date may sit inside a sentence; a sentence with two different dates
    gives None.
    """
    stripped = _fold(text).strip().rstrip(".")
    if not search:
        for pattern in _DATE_PATTERNS:
            if (match := pattern.fullmatch(stripped)) and (date := _date_from(match)):
                return date
        return None
    found: set[PartialDate] = set()
    for pattern in _DATE_PATTERNS[:-1]:  # a bare year inside a sentence is too weak a clue
        for match in re.finditer(rf"(?<![\w]){pattern.pattern}(?![\w])", stripped, re.I):
            if date := _date_from(match):
                found.add(date)
    if not found:
        return None
    best = max(found, key=lambda d: _LEVEL[d.precision])
    return best if all(d.fields(d.precision) == best.fields(d.precision) for d in found) else None


def date_precision_asked(question: str | None) -> Precision | None:
    """The precision a question asks a date in: ``date: YYYY`` or "which year" → year, …"""
    if not question:
        return None
    q = question.casefold()
    if re.search(r"mm[-/]dd[-/]yyyy|yyyy[-/]mm[-/]dd|dd[-/]mm[-/]yyyy|exact date|which day", q):
        return "day"
    if re.search(r"mm[-/]yyyy|yyyy[-/]mm|month and year|which month|哪个月", q):
        return "month"
    if re.search(r"\byyyy\b|which year|what year|in what year|year only|哪一年|年份", q):
        return "year"
    return None
