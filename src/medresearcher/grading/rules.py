"""Rules-first grading: decide the clear cases without a model, leave the rest to a judge.

Every peer headlines an LLM judge, yet judges are costly, noisy and fallible even on case
("Azacitidine" vs "AZACITIDINE" judged wrong in MedBrowseComp's shipped results;
docs/benchmarks-and-grading.md §1.3). A deterministic pass first settles what rules can settle
(normalised equality, aliases, numbers within a tolerance, dates at the precision the question
asks, the NA class, lists in any order) and says ``None`` — undecided — where only a judge can.
It also serves the QA stage: the LLM writer checks its answer against the knowledge graph with
it, and difficulty calibration (paper §3.1.3) grades closed-book answers with it.

Traps this module avoids on purpose:

- a short gold such as ``"A"`` never matches ``"vitamin A"``: containment needs a whole-word
  hit, a gold of at least four characters, and a short, unhedged final answer;
- articles are dropped only at the start ("the Fabry disease"), so ``"vitamin A"`` does not
  become ``"vitamin"``;
- a four-digit year or a small count is compared exactly, never "within 1 %".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "NA_ANSWERS",
    "PartialDate",
    "Quantity",
    "RuleVerdict",
    "answer_mentions",
    "date_precision_asked",
    "extract_final_answer",
    "grade_by_rules",
    "is_na",
    "normalise_answer",
    "parse_date",
    "parse_quantity",
]

Verdict = Literal["correct", "incorrect"]
Precision = Literal["year", "month", "day"]


@dataclass(frozen=True)
class RuleVerdict:
    """What the rules decided: ``verdict`` is None when no rule could decide (ask a judge).

    ``rule`` names the rule that decided (or why none did); records carry it as
    ``rule:<name>`` (see :attr:`grader`).
    """

    verdict: Verdict | None
    rule: str
    detail: str | None = None

    @property
    def grader(self) -> str:
        return f"rule:{self.rule}"

    @property
    def correct(self) -> bool:
        return self.verdict == "correct"


# -- normalisation ---------------------------------------------------------------------------

_CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK = re.compile(f"[{_CJK_RANGES}]")
_SPACE_NEAR_CJK = re.compile(f"(?<=[{_CJK_RANGES}])\\s+|\\s+(?=[{_CJK_RANGES}])")
_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b")
_LEADING_ARTICLE = re.compile(r"^(?:the|an|a)\s+(?=\S)")


def _fold(text: str) -> str:
    """NFKC, case-folded, accents dropped from Latin letters (Sjögren → sjogren)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    out: list[str] = []
    for char in unicodedata.normalize("NFD", text):
        if unicodedata.category(char) == "Mn" and out and out[-1].isascii():
            continue
        out.append(char)
    return unicodedata.normalize("NFC", "".join(out))


def _words(text: str) -> str:
    """Folded text with punctuation turned into spaces and spaces collapsed."""
    text = _POSSESSIVE.sub("", _fold(text))
    text = "".join(
        " " if unicodedata.category(c)[0] in "PSZC" and c not in "%$" else c for c in text
    )
    return _SPACE_NEAR_CJK.sub("", " ".join(text.split()))


def normalise_answer(text: str) -> str:
    """The comparable form of a short answer.

    NFKC, case folding, Latin accents dropped, possessive ``'s`` dropped (Crohn's → crohn),
    punctuation as spaces, whitespace collapsed (none around CJK characters), and one leading
    article removed when something follows it.

    Examples
    --------
    >>> normalise_answer("  The Anderson–Fabry  disease. ")
    'anderson fabry disease'
    >>> normalise_answer("A")
    'a'
    """
    return _LEADING_ARTICLE.sub("", _words(text))


def _compact(norm: str) -> str:
    return norm.replace(" ", "")


# -- final-answer extraction -----------------------------------------------------------------

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_MARKER = re.compile(
    r"^[\s*#>_-]*(?:final answer|exact answer|short answer|answer|最终答案|答案)"
    r"[\s*_]*[:：][\s*_]*(.+?)\s*$",
    re.I | re.M,
)
_LABEL = re.compile(r"^[A-Z][A-Z _]{1,24}:\s*(?=\S)")


def extract_final_answer(text: str) -> str:
    """The final answer in a model's reply.

    In order: the last ``<answer>…</answer>``, the last ``\\boxed{…}``, the last line marked
    ``Final answer:`` / ``Exact Answer:`` / ``Answer:`` / ``最终答案：``, else the last non-empty
    line. Markdown emphasis, quotes and an upper-case label the question asked for
    (``DATE: 2027``, ``INGREDIENT: …``) are removed.
    """
    found = None
    if tags := _ANSWER_TAG.findall(text):
        found = tags[-1]
    elif boxed := _BOXED.findall(text):
        found = boxed[-1]
    elif marked := _MARKER.findall(text):
        found = marked[-1]
    else:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        found = lines[-1] if lines else ""
    found = found.strip().strip("*_`\"'“”‘’ ").strip()
    found = _LABEL.sub("", found)
    return found.rstrip(".。").strip()


# -- the NA class ----------------------------------------------------------------------------

NA_ANSWERS = frozenset(
    (  # noqa: SIM905
        "na|n a|none|nil|null|not available|not applicable|no exclusivity|not listed|unlisted|"
        "unknown|not known|no data|no answer|cannot be determined|i don t know|i do not know|"
        "无|未知|不适用|不详|未上市"
    ).split("|")
)


def is_na(text: str) -> bool:
    """Whether ``text`` is one of the NA/unknown answers (``NA``, ``Not_Listed``, ``未知``…)."""
    norm = normalise_answer(text)
    return norm in NA_ANSWERS or _compact(norm) == "na"


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


# -- containment -----------------------------------------------------------------------------

_HEDGES = frozenset(
    (  # noqa: SIM905
        "not no never nor or except excluding unlikely rather instead non either maybe "
        "possibly perhaps"
    ).split()
)
_HEDGES_CJK = ("不", "非", "或", "除了", "可能")


def answer_mentions(text: str, names: Iterable[str], *, min_chars: int = 3) -> list[str]:
    """The ``names`` that ``text`` mentions, in the order given, each once.

    Case-, accent- and punctuation-insensitive whole-word matching ("Anderson–Fabry disease"
    is found in "anderson fabry disease's course"); names shorter than ``min_chars`` are
    ignored, except that CJK names match as plain substrings from two characters on.
    """
    folded = _words(text)
    # Latin words are delimited by CJK characters too ("患有Fabry disease的" names it).
    spaced = " " + " ".join(_CJK.sub(lambda m: f" {m.group(0)} ", folded).split()) + " "
    found: list[str] = []
    for name in dict.fromkeys(names):
        needle = _words(name)
        if not needle:
            continue
        if _CJK.search(needle):
            if len(needle) >= 2 and needle in _compact(folded):
                found.append(name)
        elif len(_compact(needle)) >= min_chars and f" {needle} " in spaced:
            found.append(name)
    return found


def _contains(answer: str, forms: Sequence[str]) -> str | None:
    """The gold form that the short, unhedged ``answer`` contains as whole words, if any."""
    norm = _words(re.sub(r"\([^)]*\)", " ", answer))
    tokens = norm.split()
    if not tokens or _HEDGES.intersection(tokens) or any(h in norm for h in _HEDGES_CJK):
        return None
    for form in forms:
        gold = _words(form)
        if len(_compact(gold)) < 4 or parse_quantity(gold) is not None:
            continue
        if _CJK.search(gold):
            if gold in norm.replace(" ", "") and len(norm) <= len(gold) + 4:
                return form
        elif f" {gold} " in f" {norm} " and len(tokens) <= len(gold.split()) + 3:
            return form
    return None


# -- the grader ------------------------------------------------------------------------------

_LIST_SPLIT = re.compile(r"\s*(?:[;；、]|,(?!\d{3}(?!\d))|，)\s*")
_PRED_LIST_SPLIT = re.compile(
    r"\s*(?:[;；、]|,(?!\d{3}(?!\d))|，|\s+and\s+|\s+&\s+|和|及)\s*", re.I
)


def _split(text: str, pattern: re.Pattern[str]) -> list[str]:
    parts = [re.sub(r"^(?:and|or)\s+", "", p.strip(), flags=re.I) for p in pattern.split(text)]
    return [p for p in parts if p]


def _scalar(
    pred: str, forms: Sequence[str], precision: Precision | None, rel_tol: float
) -> RuleVerdict:
    """Grade one answer against one gold and its aliases, without lists or containment."""
    gold = forms[0]
    pred_norm = normalise_answer(pred)
    for index, form in enumerate(forms):
        form_norm = normalise_answer(form)
        if form_norm and _compact(form_norm) == _compact(pred_norm):
            return RuleVerdict("correct", "exact" if index == 0 else "alias", form)
    if is_na(gold) or is_na(pred):
        if is_na(gold) and is_na(pred):
            return RuleVerdict("correct", "na")
        if is_na(pred) or parse_quantity(pred) or parse_date(pred, search=True):
            return RuleVerdict("incorrect", "na", "one side is NA, the other is not")
        return RuleVerdict(None, "na", "gold is NA; the answer is a phrase")
    gold_date = parse_date(gold)
    pred_date = None if gold_date is None else parse_date(pred) or parse_date(pred, search=True)
    if gold_date is not None and pred_date is not None:
        wanted = precision or gold_date.precision
        level = min(_LEVEL[wanted], _LEVEL[gold_date.precision])
        target: Precision = ("year", "month", "day")[level - 1]  # type: ignore[assignment]
        if _LEVEL[pred_date.precision] < level:
            shared = pred_date.precision
            if pred_date.fields(shared) != gold_date.fields(shared):
                return RuleVerdict("incorrect", "date", f"differs at {shared} precision")
            return RuleVerdict(None, "date", f"answer only gives the {shared}")
        same = pred_date.fields(target) == gold_date.fields(target)
        return RuleVerdict("correct" if same else "incorrect", "date", f"compared to the {target}")
    gold_number = parse_quantity(gold)
    if gold_number is not None:
        pred_number = parse_quantity(pred)
        if pred_number is None:
            numbers = {q.value: q for q in _numbers_in(pred)}
            if len(numbers) != 1:
                what = "date" if gold_date else "number"
                return RuleVerdict(None, what, f"{len(numbers)} numbers in the answer")
            pred_number = next(iter(numbers.values()))
        if gold_number.unit and pred_number.unit and gold_number.unit != pred_number.unit:
            return RuleVerdict(None, "number", f"units differ: {pred_number.unit}")
        same = _same_number(pred_number, gold_number, rel_tol)
        return RuleVerdict("correct" if same else "incorrect", "number")
    return RuleVerdict(None, "no_rule")


def _grade_list(
    pred: str, gold: list[str], precision: Precision | None, rel_tol: float
) -> RuleVerdict:
    items = _split(pred, _PRED_LIST_SPLIT)
    if len(items) != len(gold):
        return RuleVerdict(None, "list", f"{len(items)} items for {len(gold)}")
    verdicts = [[_scalar(p, [g], precision, rel_tol).verdict for g in gold] for p in items]
    match: dict[int, int] = {}  # gold index → prediction index (augmenting paths)

    def assign(p: int, seen: set[int]) -> bool:
        for g in range(len(gold)):
            if verdicts[p][g] == "correct" and g not in seen:
                seen.add(g)
                if g not in match or assign(match[g], seen):
                    match[g] = p
                    return True
        return False

    if all(assign(p, set()) for p in range(len(items))):
        return RuleVerdict("correct", "list")
    if all(v is not None for row in verdicts for v in row):
        return RuleVerdict("incorrect", "list", "an item has no match")
    return RuleVerdict(None, "list", "some items undecided")


def grade_by_rules(
    prediction: str | None,
    gold: str,
    aliases: Sequence[str] = (),
    *,
    question: str | None = None,
    precision: Precision | None = None,
    rel_tol: float = 1e-2,
) -> RuleVerdict:
    """Grade ``prediction`` against ``gold`` (and its ``aliases``) by rules alone.

    Parameters
    ----------
    prediction:
        The model's reply; its final answer is extracted first (:func:`extract_final_answer`).
    gold, aliases:
        The reference answer and other names of it (from the knowledge graph).
    question:
        Read for the precision a date is asked in (``date: YYYY`` → compare years only).
    precision:
        Overrides the precision read from the question.
    rel_tol:
        Relative tolerance of non-integer numbers (1 %, as MedBrowseComp grades prices).

    Returns
    -------
    RuleVerdict
        ``correct`` or ``incorrect`` when a rule is sure, else ``None``: let a judge decide.
        Rules: ``empty``, ``exact``, ``alias``, ``na``, ``date``, ``number``, ``list``,
        ``contains``, ``no_rule``.
    """
    if prediction is None or not prediction.strip():
        return RuleVerdict("incorrect", "empty", "no answer")
    answer = extract_final_answer(prediction)
    if not normalise_answer(answer):
        return RuleVerdict("incorrect", "empty", "no answer")
    forms = [gold, *(a for a in aliases if a and a.strip())]
    precision = precision or date_precision_asked(question)
    verdict = _scalar(answer, forms, precision, rel_tol)
    if verdict.verdict is not None:
        return verdict
    for form in forms:
        parts = _split(form, _LIST_SPLIT)
        if len(parts) >= 2 and parse_date(form) is None and parse_quantity(form) is None:
            listed = _grade_list(answer, parts, precision, rel_tol)
            if listed.verdict is not None:
                return listed
            verdict = listed
    if (hit := _contains(answer, forms)) is not None:
        return RuleVerdict("correct", "contains", hit)
    return verdict
