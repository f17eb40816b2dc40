"""A trajectory's messages made ready for export: checked, cleaned, reasoning placed by option.

Every export format starts from :func:`prepare_conversation`, so that a record refused for one
reason (arguments that are not a JSON object, the MTG scaffold in the prompt, an unknown
role) is refused by every format alike, with the reason kept for the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medresearcher.schema import Trajectory
from medresearcher.synthesis.chat_template import ArgumentsError, parse_arguments

__all__ = [
    "THINK_CLOSE",
    "THINK_OPEN",
    "Conversation",
    "ExportSkip",
    "inline_reasoning",
    "prepare_conversation",
    "prompt_messages",
    "think_block",
    "tool_names",
]

#: LLaMA-Factory's default ``thought_words``, also the layout of Qwen3-style templates.
THINK_OPEN = "<think>\n"
THINK_CLOSE = "\n</think>\n\n"
_ROLES = ("system", "user", "assistant", "tool")
# A scaffold line this long found in the prompt is the scaffold, not a coincidence.
_GUIDANCE_LINE_MIN = 24


class ExportSkip(Exception):
    """A trajectory (or one format's row of it) that cannot be exported; ``reason`` is a
    short code counted in the export manifest, ``detail`` says where."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Conversation:
    """One trajectory ready to export.

    ``messages`` are OpenAI chat messages with only the keys trainers read (``role``,
    ``content`` as text, and ``reasoning_content``, ``tool_calls`` — arguments as JSON strings —
    ``tool_call_id`` and ``name`` where they apply); reasoning is still apart.
    """

    id: str
    qa_id: str | None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]

    @property
    def reasoning_turns(self) -> int:
        """Assistant turns that carry ``reasoning_content``."""
        return sum(1 for m in self.messages if m.get("reasoning_content"))


def prepare_conversation(trajectory: Trajectory) -> Conversation:
    """Check and clean ``trajectory`` for export.

    Raises
    ------
    ExportSkip
        ``rejected_by_filters``; ``unknown_role``, ``non_text_content``, ``unnamed_tool_call``
        or ``bad_arguments`` (naming the message and call); ``no_question`` when the first
        non-system turn is not the user's; ``guidance_in_messages`` when the MTG scaffold of
        ``stats["generation"]["guidance"]`` appears in the messages (§3.2: it is for
        generation only and must never reach a training prompt).
    """
    if trajectory.filters is not None and trajectory.filters.get("passed") is False:
        raise ExportSkip("rejected_by_filters", _reasons(trajectory.filters))
    messages: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for number, message in enumerate(trajectory.messages):
        role = message.get("role")
        if role not in _ROLES:
            raise ExportSkip("unknown_role", f"message {number} has role {role!r}")
        content = message.get("content")
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise ExportSkip("non_text_content", f"message {number} content is not text")
        clean: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant":
            reasoning = message.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning.strip():
                clean["reasoning_content"] = reasoning
            calls = [
                _clean_call(call, f"message {number} call {index}", call_names)
                for index, call in enumerate(message.get("tool_calls") or [])
            ]
            if calls:
                clean["tool_calls"] = calls
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if call_id:
                clean["tool_call_id"] = call_id
                name = message.get("name") or call_names.get(call_id)
                if name:
                    clean["name"] = name
        messages.append(clean)
    first = next((m for m in messages if m["role"] != "system"), None)
    if first is None or first["role"] != "user":
        raise ExportSkip("no_question", "the first non-system message is not the user's")
    guidance = (trajectory.stats.get("generation") or {}).get("guidance")
    if isinstance(guidance, str) and guidance.strip():
        where = _guidance_shown(messages, guidance)
        if where is not None:
            raise ExportSkip("guidance_in_messages", f"the MTG scaffold is in {where}")
    return Conversation(
        id=trajectory.id,
        qa_id=trajectory.qa_id,
        messages=messages,
        tools=[dict(tool) for tool in trajectory.tools],
    )


def _clean_call(call: Mapping[str, Any], where: str, names: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") or {}
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ExportSkip("unnamed_tool_call", where)
    raw = function.get("arguments")
    try:
        arguments = parse_arguments(raw, where=where)
    except ArgumentsError as exc:
        raise ExportSkip("bad_arguments", str(exc)) from None
    text = (
        raw if isinstance(raw, str) and raw.strip() else json.dumps(arguments, ensure_ascii=False)
    )
    clean: dict[str, Any] = {
        "type": "function",
        "function": {"name": name, "arguments": text},
    }
    if call.get("id"):
        clean = {"id": call["id"], **clean}
        names[call["id"]] = name
    return clean


def _guidance_shown(messages: Sequence[Mapping[str, Any]], guidance: str) -> str | None:
    """Where the scaffold shows: the whole text anywhere, or one of its lines in the prompt."""
    whole = guidance.strip()
    lines = [ln.strip() for ln in whole.splitlines() if len(ln.strip()) >= _GUIDANCE_LINE_MIN]
    for number, message in enumerate(messages):
        texts = [message.get("content") or "", message.get("reasoning_content") or ""]
        texts += [c["function"]["arguments"] for c in message.get("tool_calls") or []]
        if any(whole in text for text in texts):
            return f"message {number}"
        if message["role"] in ("system", "user") and any(ln in texts[0] for ln in lines):
            return f"message {number} ({message['role']})"
    return None


def _reasons(filters: Mapping[str, Any]) -> str:
    reasons = filters.get("reasons") or []
    names = [r.get("rule", str(r)) if isinstance(r, Mapping) else str(r) for r in reasons]
    return ", ".join(names)


def think_block(reasoning: str, content: str) -> str:
    """``reasoning`` inlined before ``content``: ``<think>\\nR\\n</think>\\n\\nC``."""
    block = THINK_OPEN + reasoning.strip("\n") + THINK_CLOSE.rstrip("\n")
    body = content.lstrip("\n")
    return block + "\n\n" + body if body.strip() else block


def inline_reasoning(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A copy of ``messages`` whose ``reasoning_content`` is inlined as ``<think>`` in the
    content (for templates and trainers without a reasoning field)."""
    inlined = []
    for message in messages:
        copy = dict(message)
        reasoning = copy.pop("reasoning_content", None)
        if reasoning:
            copy["content"] = think_block(reasoning, copy.get("content") or "")
        inlined.append(copy)
    return inlined


def prompt_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The messages before the first assistant turn (system + question): an RL prompt."""
    prompt = []
    for message in messages:
        if message["role"] == "assistant":
            break
        prompt.append({"role": message["role"], "content": message["content"]})
    return prompt


def tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    """The function names of OpenAI tool schemas (or bare function schemas)."""
    names = []
    for tool in tools:
        function = tool.get("function") if tool.get("type") == "function" else tool
        name = (function or {}).get("name")
        if isinstance(name, str) and name:
            names.append(name)
    return names
