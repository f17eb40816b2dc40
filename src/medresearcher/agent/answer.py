"""The final-answer convention: ``<answer>…</answer>`` tags on the last turn.

Why tags rather than an ``Answer:`` line: they survive multi-line answers, are easy to grade
and to reward (verl/Search-R1 style reward functions look for them), and a Chinese answer
needs no translated keyword. The system prompt (prompts/agent.yaml) asks for them; a model
that forgets is still read leniently — the last ``Answer:`` / ``答案:`` line, else the whole
visible text — and the form that was found is recorded, so a filter can insist on tags.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["AnswerForm", "extract_answer"]

AnswerForm = Literal["tagged", "line", "untagged", "none"]

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_TAGGED = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
_LINE = re.compile(
    r"^\s*(?:\*\*)?(?:final answer|answer|最终答案|答案)(?:\*\*)?\s*[:：]\s*(.+)$", re.I
)


def extract_answer(text: str | None) -> tuple[str | None, AnswerForm]:
    """The final answer in ``text`` and the form it was written in.

    Examples
    --------
    >>> extract_answer("It is GLA.\\n<answer>GLA</answer>")
    ('GLA', 'tagged')
    >>> extract_answer("Reasoning...\\nAnswer: Fabry disease")
    ('Fabry disease', 'line')
    >>> extract_answer("")
    (None, 'none')
    """
    visible = _THINK.sub("", text or "").strip()
    if not visible:
        return None, "none"
    tagged = [match.strip() for match in _TAGGED.findall(visible)]
    tagged = [answer for answer in tagged if answer]
    if tagged:
        return tagged[-1], "tagged"
    for line in reversed(visible.splitlines()):
        match = _LINE.match(line)
        if match and match.group(1).strip():
            return match.group(1).strip().strip("*").strip(), "line"
    return visible, "untagged"
