"""Tool-call dialects: how tools and tool calls travel between us and a chat endpoint.

Two dialects exist because not every server we talk to parses tool calls itself:

* ``native`` — the OpenAI ``tools`` request parameter and ``message.tool_calls`` in the
  response. The server's own parser does the work; we only normalise its output.
* ``hermes`` — Qwen2.5/Hermes text tags. The tools are described inside the system
  prompt, the model writes ``<tool_call>{...}</tool_call>`` blocks into its content, and
  tool results go back as a *user* turn of ``<tool_response>`` blocks. This lets us run
  models behind servers with no (or a broken) tool parser, and keeps the wire text exactly
  what the model was trained on.

Models make mistakes in the hermes text format (code fences, trailing commas, truncation,
a missing closing tag), so :func:`parse_hermes_tool_calls` is deliberately tolerant and
never raises: what it cannot repair it reports in ``errors``, so the agent can show the
model its mistake instead of silently losing the call.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from medresearcher.llm.jsontext import balanced_object_span, loads_lenient, strip_code_fence
from medresearcher.llm.types import ToolCall

__all__ = [
    "Dialect",
    "HermesDialect",
    "NativeDialect",
    "ParsedToolCalls",
    "get_dialect",
    "parse_hermes_tool_calls",
    "render_hermes_tools_prompt",
]

_OPEN_TAG = "<tool_call>"
_CLOSE_TAG = "</tool_call>"
_SNIPPET_LEN = 80


@dataclass
class ParsedToolCalls:
    """What a dialect read out of one assistant message.

    ``content`` is the visible text without tool-call markup; ``errors`` holds one line per
    call the model attempted but that could not be understood, so it can be reported back
    to the model rather than dropped silently.
    """

    content: str
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def _new_call_id() -> str:
    """A fresh OpenAI-style call id; uniqueness matters, determinism does not."""
    return f"call_{uuid.uuid4().hex[:8]}"


def _snippet(text: str) -> str:
    """A short one-line excerpt for error messages, so logs stay readable."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET_LEN else flat[:_SNIPPET_LEN] + "..."


def _dump_arguments(arguments: dict[str, Any]) -> str:
    """Serialise arguments the one way we store them (UTF-8 kept readable)."""
    return json.dumps(arguments, ensure_ascii=False)


def _decode_call_body(body: str) -> tuple[Any, str]:
    """Decode the JSON of one ``<tool_call>`` body.

    Returns ``(value, leftover)`` where ``leftover`` is any text after a balanced object
    that was not part of the JSON (only non-empty when the whole body did not decode).
    Raises ``ValueError`` with the decoder's message when nothing usable is found.
    """
    text = strip_code_fence(body)
    try:
        return loads_lenient(text), ""
    except ValueError as exc:
        first_error = exc
    span = balanced_object_span(text)
    if span is not None:
        start, end = span
        try:
            return loads_lenient(text[start:end]), text[end:]
        except ValueError:
            pass
    raise first_error


def _arguments_from(value: Any) -> dict[str, Any] | None:
    """Arguments as a dict, accepting a JSON string that encodes an object; else ``None``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            decoded = loads_lenient(value)
        except ValueError:
            return None
        return decoded if isinstance(decoded, dict) else None
    return None


def _call_from_object(obj: Any, label: str) -> tuple[ToolCall | None, str | None]:
    """Turn one decoded hermes call object into a :class:`ToolCall` or an error line."""
    if not isinstance(obj, dict):
        return None, f"{label}: expected a JSON object, got {type(obj).__name__}"
    # Some models echo the OpenAI shape {"type": "function", "function": {...}}.
    if "name" not in obj and isinstance(obj.get("function"), dict):
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None, f"{label}: missing 'name' in {_snippet(json.dumps(obj, ensure_ascii=False))!r}"
    raw_args = obj["arguments"] if "arguments" in obj else obj.get("parameters")
    arguments = _arguments_from(raw_args)
    if arguments is None:
        return None, (
            f"{label} ({name}): arguments are not a JSON object: "
            f"{_snippet(raw_args if isinstance(raw_args, str) else json.dumps(raw_args))!r}"
        )
    call = ToolCall(id=_new_call_id(), name=name.strip(), arguments=_dump_arguments(arguments))
    return call, None


# --------------------------------------------------------------------------- hermes text


def parse_hermes_tool_calls(text: str) -> ParsedToolCalls:
    """Extract every ``<tool_call>`` block from model output; never raises.

    Text outside the blocks is kept (stripped, pieces joined by newlines) as the visible
    content. A block whose closing tag is missing ends at the next ``<tool_call>`` or at
    the end of the text; if only a leading balanced JSON object in it decodes, the text
    after that object is returned to the content rather than lost.
    """
    if not text:
        return ParsedToolCalls(content="")
    outside: list[str] = []
    calls: list[ToolCall] = []
    errors: list[str] = []
    pos = 0
    index = 0
    while True:
        start = text.find(_OPEN_TAG, pos)
        if start < 0:
            outside.append(text[pos:])
            break
        outside.append(text[pos:start])
        index += 1
        label = f"tool call {index}"
        body_start = start + len(_OPEN_TAG)
        close = text.find(_CLOSE_TAG, body_start)
        next_open = text.find(_OPEN_TAG, body_start)
        closed = close >= 0 and (next_open < 0 or close < next_open)
        if closed:
            body = text[body_start:close]
            pos = close + len(_CLOSE_TAG)
        else:
            body_end = next_open if next_open >= 0 else len(text)
            body = text[body_start:body_end]
            pos = body_end
        try:
            obj, leftover = _decode_call_body(body)
        except ValueError as exc:
            errors.append(f"{label}: invalid JSON: {exc} in {_snippet(body)!r}")
            continue
        if not closed and leftover.strip():
            outside.append(leftover)
        call, error = _call_from_object(obj, label)
        if call is not None:
            calls.append(call)
        if error is not None:
            errors.append(error)
    pieces = (piece.replace(_CLOSE_TAG, "").strip() for piece in outside)
    content = "\n".join(piece for piece in pieces if piece)
    return ParsedToolCalls(content=content, calls=calls, errors=errors)


def render_hermes_tools_prompt(tools: list[dict[str, Any]]) -> str:
    """The Qwen2.5 chat template's tools block, verbatim, so the model sees what it was
    trained on."""
    lines = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        + lines
        + "\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


# --------------------------------------------------------------------------- dialects


class Dialect(Protocol):
    """How one endpoint expects tools sent and returns tool calls."""

    name: str

    def prepare(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Wire messages and extra request kwargs; never mutates ``messages``."""
        ...

    def parse(self, message: dict[str, Any]) -> ParsedToolCalls:
        """Read the response's assistant message (as a plain dict)."""
        ...


def _parse_native_tool_calls(tool_calls: Any) -> tuple[list[ToolCall], list[str]]:
    """Normalise OpenAI ``tool_calls`` entries; bad entries become error lines, not calls."""
    calls: list[ToolCall] = []
    errors: list[str] = []
    if not isinstance(tool_calls, list):
        return calls, errors
    for i, entry in enumerate(tool_calls, start=1):
        label = f"tool call {i}"
        if isinstance(entry, ToolCall):
            entry = entry.to_openai()
        if not isinstance(entry, dict):
            errors.append(f"{label}: not an object: {_snippet(repr(entry))!r}")
            continue
        function = entry.get("function")
        if not isinstance(function, dict):
            function = entry  # tolerate a flattened {"name", "arguments"} entry
        name = function.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.append(f"{label}: missing function name")
            continue
        raw = function.get("arguments")
        arguments: Any
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            arguments = {}
        elif isinstance(raw, str):
            try:
                arguments = json.loads(raw)
            except ValueError as exc:
                errors.append(
                    f"{label} ({name}): invalid arguments JSON: {exc} in {_snippet(raw)!r}"
                )
                continue
        else:
            arguments = raw
        if not isinstance(arguments, dict):
            shown = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
            errors.append(f"{label} ({name}): arguments are not a JSON object: {_snippet(shown)!r}")
            continue
        call_id = entry.get("id")
        calls.append(
            ToolCall(
                id=call_id if isinstance(call_id, str) and call_id else _new_call_id(),
                name=name.strip(),
                arguments=_dump_arguments(arguments),
            )
        )
    return calls, errors


def _text_of(content: Any) -> str:
    """Plain text of a message content (string, ``None`` or a list of text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return str(content)


class NativeDialect:
    """OpenAI function calling: the server parses tool calls for us."""

    name = "native"

    def prepare(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Copy the messages, dropping ``reasoning_content``: it is our record, not wire data."""
        wire: list[dict[str, Any]] = []
        for message in messages:
            copy = dict(message)
            if copy.get("role") == "assistant":
                copy.pop("reasoning_content", None)
            wire.append(copy)
        extra: dict[str, Any] = {"tools": list(tools)} if tools else {}
        return wire, extra

    def parse(self, message: dict[str, Any]) -> ParsedToolCalls:
        """Normalise ``tool_calls``; calls with unusable arguments are reported and dropped."""
        calls, errors = _parse_native_tool_calls(message.get("tool_calls"))
        return ParsedToolCalls(content=_text_of(message.get("content")), calls=calls, errors=errors)


def _hermes_call_block(call: Any) -> str:
    """One ``<tool_call>`` block for an OpenAI ``tool_calls`` entry from our history."""
    if isinstance(call, ToolCall):
        call = call.to_openai()
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        function = call if isinstance(call, dict) else {}
    raw = function.get("arguments")
    arguments = _arguments_from(raw)
    # Malformed history must not crash a request: send the raw value as the model wrote it.
    payload = {
        "name": function.get("name", ""),
        "arguments": raw if arguments is None else arguments,
    }
    return _OPEN_TAG + "\n" + json.dumps(payload, ensure_ascii=False) + "\n" + _CLOSE_TAG


class HermesDialect:
    """Qwen2.5/Hermes text tags: tools in the system prompt, calls parsed from content."""

    name = "hermes"

    def prepare(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Render everything as plain text turns, as the Qwen2.5 chat template would.

        No ``tools`` parameter is sent: the point of this dialect is that the server does
        not have to understand tools at all.
        """
        wire: list[dict[str, Any]] = []
        pending_responses: list[str] = []

        def flush_responses() -> None:
            if pending_responses:
                wire.append({"role": "user", "content": "\n".join(pending_responses)})
                pending_responses.clear()

        for message in messages:
            role = message.get("role")
            if role == "tool":
                text = _text_of(message.get("content"))
                pending_responses.append("<tool_response>\n" + text + "\n</tool_response>")
                continue
            flush_responses()
            copy = dict(message)
            if role == "assistant":
                copy.pop("reasoning_content", None)
                tool_calls = copy.pop("tool_calls", None)
                if tool_calls:
                    blocks = "\n".join(_hermes_call_block(call) for call in tool_calls)
                    text = _text_of(copy.get("content"))
                    copy["content"] = (text + "\n" + blocks) if text else blocks
            wire.append(copy)
        flush_responses()

        if tools:
            prompt = render_hermes_tools_prompt(tools)
            for i, message in enumerate(wire):
                if message.get("role") == "system":
                    system = dict(message)
                    existing = system.get("content")
                    if isinstance(existing, list):
                        system["content"] = [*existing, {"type": "text", "text": "\n\n" + prompt}]
                    else:
                        text = _text_of(existing)
                        system["content"] = (text + "\n\n" + prompt) if text else prompt
                    wire[i] = system
                    break
            else:
                wire.insert(0, {"role": "system", "content": prompt})
        return wire, {}

    def parse(self, message: dict[str, Any]) -> ParsedToolCalls:
        """Read ``<tool_call>`` tags from content, plus any native calls a server added."""
        parsed = parse_hermes_tool_calls(_text_of(message.get("content")))
        if message.get("tool_calls"):
            calls, errors = _parse_native_tool_calls(message.get("tool_calls"))
            parsed.calls.extend(calls)
            parsed.errors.extend(f"native {error}" for error in errors)
        return parsed


_DIALECTS: dict[str, type[NativeDialect] | type[HermesDialect]] = {
    NativeDialect.name: NativeDialect,
    HermesDialect.name: HermesDialect,
}


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name``; a typo in a config fails loudly with the valid names."""
    key = name.strip().lower() if isinstance(name, str) else name
    try:
        return _DIALECTS[key]()
    except (KeyError, TypeError):
        known = ", ".join(sorted(_DIALECTS))
        raise ValueError(f"unknown tool-call dialect {name!r}; known: {known}") from None
