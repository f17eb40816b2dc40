"""Text normalisation for grading: the comparable form of an answer, the final answer in a reply,
the NA class, and whole-word mentions of names.

These are the string-level pieces every grading rule stands on (docs/benchmarks-and-grading.md
§1.3: judges fail even on case, so case, accents, punctuation and articles are folded here once).
They live apart from :mod:`medresearcher.grading.rules` because the QA stage uses them on their
own (``answer_mentions`` checks that a question does not name its answer) and because the value
parsers of :mod:`medresearcher.grading.values` fold text the same way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = [
    "NA_ANSWERS",
    "answer_mentions",
    "extract_final_answer",
    "is_na",
    "normalise_answer",
]

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


# -- mentions --------------------------------------------------------------------------------


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
