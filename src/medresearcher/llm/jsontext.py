"""Reading the JSON that models write: code fences, trailing commas, text around it.

Both the hermes tool-call parser and structured output need this, and both must stay
strict about everything else: a repair here never changes a value inside a string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

__all__ = [
    "balanced_object_span",
    "extract_json_object",
    "loads_lenient",
    "remove_trailing_commas",
    "strip_code_fence",
]

_FENCE_OPEN_RE = re.compile(r"^```[A-Za-z0-9_+-]*[ \t]*\n?")
_FENCE_CLOSE_RE = re.compile(r"\n?[ \t]*```$")


_CLOSER_AHEAD = re.compile(r"[ \t\r\n]*[}\]]")


def _outside_strings(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """(index, character) of every character of ``text`` outside JSON string literals.

    Both repairs below must leave string values alone (a ``"a,}"`` inside an argument is
    data, not syntax), so they share this one scanner of string state.
    """
    in_string = escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        else:
            yield index, char


def remove_trailing_commas(text: str) -> str:
    """Drop commas directly before ``}`` or ``]``, but never inside string literals."""
    drop = {
        index
        for index, char in _outside_strings(text)
        if char == "," and _CLOSER_AHEAD.match(text, index + 1)
    }
    if not drop:
        return text
    return "".join(char for index, char in enumerate(text) if index not in drop)


def balanced_object_span(text: str) -> tuple[int, int] | None:
    """The ``(start, end)`` of the first brace-balanced ``{...}`` in ``text``, or ``None``.

    Used when a closing tag is missing (or junk follows the JSON), to find where the JSON
    ends without trusting the rest of the text. Braces inside strings are ignored.
    """
    start = text.find("{")
    if start < 0:
        return None
    depth = 0
    for index, char in _outside_strings(text, start):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return start, index + 1
    return None


def strip_code_fence(text: str) -> str:
    """Remove a markdown fence (```json ... ``` or ``` ... ```) some models wrap JSON in."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = _FENCE_OPEN_RE.sub("", stripped, count=1)
        stripped = _FENCE_CLOSE_RE.sub("", stripped, count=1)
    return stripped.strip()


def loads_lenient(text: str) -> Any:
    """``json.loads`` that also accepts trailing commas; raises ``ValueError`` otherwise."""
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(remove_trailing_commas(text))


def extract_json_object(text: str) -> Any:
    """The first JSON value in ``text``: the whole text, a fenced block, or a balanced ``{...}``.

    Raises ``ValueError`` with the decoder's message when none can be read.
    """
    stripped = strip_code_fence(text)
    try:
        return loads_lenient(stripped)
    except ValueError as exc:
        first_error = exc
    offset = 0
    while (span := balanced_object_span(stripped[offset:])) is not None:
        start, end = span
        try:
            return loads_lenient(stripped[offset + start : offset + end])
        except ValueError:
            offset += start + 1
    raise ValueError(f"no JSON object found ({first_error})")
