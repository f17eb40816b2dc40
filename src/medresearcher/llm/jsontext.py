"""Reading the JSON that models write: code fences, trailing commas, text around it.

Both the hermes tool-call parser and structured output need this, and both must stay
strict about everything else: a repair here never changes a value inside a string.
"""

from __future__ import annotations

import json
import re
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


def remove_trailing_commas(text: str) -> str:
    """Drop commas directly before ``}`` or ``]``, but never inside string literals.

    A regex would also rewrite ``"a,}"`` inside a string value, corrupting the
    arguments, so this walks the text tracking string state instead.
    """
    out: list[str] = []
    in_string = False
    escaped = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                i += 1  # skip the comma; the whitespace after it is kept
                continue
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def balanced_object_span(text: str) -> tuple[int, int] | None:
    """The ``(start, end)`` of the first brace-balanced ``{...}`` in ``text``, or ``None``.

    Used when the closing tag is missing (or junk follows the JSON), to find where the
    call's JSON ends without trusting the rest of the text. Braces inside strings are
    ignored.
    """
    start = text.find("{")
    if start < 0:
        return None
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return start, i + 1
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
