"""What a trainer hands a reward function, read as one record: answer, tool calls, observations.

The rewards of paper §4 (r = α·r_task + β·r_expert − γ·r_efficiency) look at three things of
a rollout: its final answer, the tool calls it made and what those calls returned. Trainers
hand the rollout over in different shapes, and :func:`parse_completion` reads each of them:

- **TRL, conversational** (``GRPOTrainer`` with ``tools=``): a list of chat messages, the
  assistant turns with ``tool_calls`` (``function.arguments`` a dict, or a JSON string as in
  our records) and ``{"role": "tool", "name", "content"}`` turns in between;
- **TRL, plain text** or **verl** (``compute_score``'s ``solution_str``): one string, in which
  the calls are hermes ``<tool_call>{json}</tool_call>`` blocks and the results are
  ``<tool_response>…</tool_response>`` blocks. verl decodes the whole multi-turn response with
  ``skip_special_tokens=True``, so the Qwen role markers survive only as bare ``user`` /
  ``assistant`` lines between the blocks; they are dropped here;
- the **rendered-text** layout (tool results as ``user`` turns wrapping ``<tool_response>``);
- a medresearcher :class:`~medresearcher.schema.Trajectory` (or its ``model_dump``).

The final answer follows the agent's convention (:func:`medresearcher.agent.answer.extract_answer`:
``<answer>`` tags, else an ``Answer:`` line, else the visible text), read from the last
assistant turn only, and only when that turn makes no tool call: a rollout cut off in the middle
of a call has not answered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medresearcher.agent.answer import extract_answer
from medresearcher.schema import Trajectory

__all__ = ["ParsedCompletion", "ParsedToolCall", "ToolResult", "parse_completion"]

_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|(?=<tool_call>)|$)", re.DOTALL)
_RESPONSE = re.compile(r"<tool_response>(.*?)(?:</tool_response>|$)", re.DOTALL)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
#: Role lines that verl's ``skip_special_tokens`` decoding leaves between turns.
_ROLE_LINE = re.compile(r"^\s*(?:assistant|user|system|tool)\s*$", re.MULTILINE)
#: Qwen special tokens, when a trainer decodes without ``skip_special_tokens``.
_SPECIAL = re.compile(r"<\|(?:im_start|im_end|endoftext)\|>")


@dataclass(frozen=True)
class ParsedToolCall:
    """One tool call: ``key`` is the name with canonical JSON arguments (repeat detection)."""

    name: str
    arguments: Any
    turn: int

    @property
    def key(self) -> str:
        if isinstance(self.arguments, (dict, list)):
            args = json.dumps(self.arguments, sort_keys=True, ensure_ascii=False)
        else:
            args = str(self.arguments).strip()
        return f"{self.name}\x00{args}"


@dataclass(frozen=True)
class ToolResult:
    """One tool result, tied to the assistant turn whose calls produced it."""

    text: str
    turn: int
    name: str | None = None


@dataclass(frozen=True)
class ParsedCompletion:
    """A rollout as the rewards see it.

    ``reasoning`` is every assistant text (thoughts included) in order, for the expert judge;
    ``turns`` counts assistant turns.
    """

    final_answer: str | None
    answer_form: str
    calls: list[ParsedToolCall] = field(default_factory=list)
    observations: list[ToolResult] = field(default_factory=list)
    reasoning: str = ""
    turns: int = 0


def parse_completion(completion: Any) -> ParsedCompletion:
    """Read ``completion`` (string, chat messages, Trajectory or its dict) as one record.

    Examples
    --------
    >>> parsed = parse_completion('<tool_call>{"name": "web_search", "arguments": '
    ...     '{"queries": ["GLA"]}}</tool_call>\\nuser\\n<tool_response>Fabry disease'
    ...     '</tool_response>\\nassistant\\n<answer>Fabry disease</answer>')
    >>> parsed.final_answer, [c.name for c in parsed.calls], parsed.observations[0].text
    ('Fabry disease', ['web_search'], 'Fabry disease')
    """
    if isinstance(completion, Trajectory):
        return _from_messages(completion.messages, completion.final_answer)
    if isinstance(completion, Mapping):
        if "messages" in completion:
            return _from_messages(list(completion["messages"]), completion.get("final_answer"))
        if "role" in completion:
            return _from_messages([completion], None)
        raise TypeError(f"cannot read a completion from a mapping with keys {sorted(completion)}")
    if isinstance(completion, str):
        return _from_text(completion)
    if isinstance(completion, Sequence):
        return _from_messages(list(completion), None)
    if completion is None:
        return ParsedCompletion(final_answer=None, answer_form="none")
    raise TypeError(f"cannot read a completion of type {type(completion).__name__}")


def _from_text(text: str) -> ParsedCompletion:
    """A hermes-tagged multi-turn string: responses split it into assistant turns."""
    pieces = re.split(r"(<tool_response>.*?(?:</tool_response>|$))", text, flags=re.DOTALL)
    calls: list[ParsedToolCall] = []
    observations: list[ToolResult] = []
    reasoning: list[str] = []
    turn = 0
    last_text = ""
    last_has_call = False
    for piece in pieces:
        response = _RESPONSE.fullmatch(piece.strip()) if piece.strip() else None
        if response is not None:
            observations.append(ToolResult(response.group(1).strip(), max(turn - 1, 0)))
            continue
        body = _ROLE_LINE.sub("", _SPECIAL.sub("\n", piece)).strip()
        if not body:
            continue
        turn_calls = _calls_in_text(body, turn)
        calls.extend(turn_calls)
        reasoning.append(body)
        last_text, last_has_call = body, bool(turn_calls)
        turn += 1
    return _finish(calls, observations, reasoning, turn, last_text, last_has_call, None)


def _from_messages(messages: list[Any], recorded_answer: str | None) -> ParsedCompletion:
    calls: list[ParsedToolCall] = []
    observations: list[ToolResult] = []
    reasoning: list[str] = []
    turn = 0
    last_text = ""
    last_has_call = False
    names_by_id: dict[str, str] = {}
    for message in messages:
        if not isinstance(message, Mapping):
            raise TypeError(f"a chat message must be a mapping, not {type(message).__name__}")
        role = message.get("role")
        content = _content_text(message.get("content"))
        if role == "assistant":
            turn_calls = []
            for raw in message.get("tool_calls") or []:
                function = raw.get("function", raw)
                name = str(function.get("name") or "")
                turn_calls.append(ParsedToolCall(name, _arguments(function.get("arguments")), turn))
                if raw.get("id"):
                    names_by_id[str(raw["id"])] = name
            turn_calls.extend(_calls_in_text(content, turn))
            calls.extend(turn_calls)
            thought = _content_text(message.get("reasoning_content"))
            reasoning.extend(part for part in (thought, content) if part.strip())
            last_text, last_has_call = content, bool(turn_calls)
            turn += 1
        elif role == "tool":
            name = message.get("name") or names_by_id.get(str(message.get("tool_call_id")))
            observations.append(ToolResult(content.strip(), max(turn - 1, 0), name))
        elif role == "user" and turn > 0:
            for match in _RESPONSE.finditer(content):  # the rendered-text layout
                observations.append(ToolResult(match.group(1).strip(), turn - 1))
    return _finish(calls, observations, reasoning, turn, last_text, last_has_call, recorded_answer)


def _finish(
    calls: list[ParsedToolCall],
    observations: list[ToolResult],
    reasoning: list[str],
    turns: int,
    last_text: str,
    last_has_call: bool,
    recorded_answer: str | None,
) -> ParsedCompletion:
    if recorded_answer is not None and recorded_answer.strip():
        answer, form = recorded_answer.strip(), "recorded"
    elif last_has_call or not turns:
        answer, form = None, "none"
    else:
        answer, form = extract_answer(_CALL.sub("", last_text))
    return ParsedCompletion(
        final_answer=answer,
        answer_form=form,
        calls=calls,
        observations=observations,
        reasoning="\n\n".join(reasoning),
        turns=turns,
    )


def _calls_in_text(text: str, turn: int) -> list[ParsedToolCall]:
    """Hermes ``<tool_call>`` blocks; an unreadable block still counts as a call (name '')."""
    found = []
    for match in _CALL.finditer(_THINK.sub("", text)):
        body = match.group(1).strip()
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            found.append(ParsedToolCall("", body, turn))
            continue
        if not isinstance(obj, dict):
            found.append(ParsedToolCall("", body, turn))
            continue
        found.append(
            ParsedToolCall(str(obj.get("name") or ""), _arguments(obj.get("arguments")), turn)
        )
    return found


def _arguments(raw: Any) -> Any:
    """Arguments as a dict where they parse (JSON strings as our records keep them)."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return {} if raw is None else raw


def _content_text(content: Any) -> str:
    """Message content as text (OpenAI content parts are joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            part.get("text", "") if isinstance(part, Mapping) else str(part) for part in content
        )
    return str(content)
