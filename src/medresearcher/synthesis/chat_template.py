"""The Qwen2.5 chat template, rendered exactly as ``transformers`` renders it.

MedResearcher-R1 is trained from Qwen2.5-32B (paper §4.1), whose template writes tool calls in
the hermes style (``<tool_call>{"name": …, "arguments": …}</tool_call>``) and tool results as
``<tool_response>`` blocks in a user turn. The project ships that template unchanged
(``data/tokenizers/qwen2.5/chat_template.jinja``); this module renders it in the same kind of
environment as ``transformers.apply_chat_template`` (a sandbox, ``trim_blocks`` and
``lstrip_blocks``, ``tojson`` without HTML escaping or key sorting), so that a trajectory
rendered here is the text the trainer tokenises.

Arguments are JSON strings in every record and file (OpenAI format). The template applies
``tojson`` to them, so a string would come out double-encoded (ecosystem.md §2.3, pitfall 1):
:func:`template_ready` parses them into dicts, and only for rendering.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "QWEN25_TEMPLATE_PATH",
    "ArgumentsError",
    "parse_arguments",
    "qwen25_template_source",
    "render_qwen25",
    "template_ready",
]

QWEN25_TEMPLATE_PATH = "tokenizers/qwen2.5/chat_template.jinja"


class ArgumentsError(ValueError):
    """A tool call whose ``arguments`` is not a JSON object (or is one encoded twice)."""


def qwen25_template_source() -> str:
    """The bundled Qwen2.5 template text (Apache-2.0, unchanged from the model repository)."""
    folder = resources.files("medresearcher.data")
    return (folder / QWEN25_TEMPLATE_PATH).read_text(encoding="utf-8")


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # transformers replaces Jinja's tojson, which escapes <, >, & and ' for HTML and sorts keys.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


@functools.cache
def _compiled_qwen25() -> Any:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    return env.from_string(qwen25_template_source())


def parse_arguments(arguments: Any, *, where: str = "tool call") -> dict[str, Any]:
    """The dict a tool call's ``arguments`` JSON string stands for.

    Raises :class:`ArgumentsError` when the text is not JSON, is not an object, or is a JSON
    string holding JSON (the double encoding this module exists to prevent).
    """
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not isinstance(arguments, str):
        raise ArgumentsError(f"{where}: arguments is a {type(arguments).__name__}, not JSON text")
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError as exc:
        raise ArgumentsError(f"{where}: arguments is not valid JSON ({exc.msg})") from None
    if isinstance(value, str):
        raise ArgumentsError(f"{where}: arguments is double-encoded (JSON text inside a string)")
    if not isinstance(value, dict):
        raise ArgumentsError(f"{where}: arguments is a JSON {type(value).__name__}, not an object")
    return value


def template_ready(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A copy of OpenAI-format ``messages`` that a chat template can render.

    Keys whose value is ``None`` are dropped (as ``transformers`` does, so that a template
    sees a missing key, not ``None``), and every tool call's ``arguments`` JSON string becomes
    the dict it encodes. The input is left unchanged. Use it as the ``map`` step when a
    trainer (TRL, a verl dataset) applies the template to the exported messages.
    """
    ready: list[dict[str, Any]] = []
    for number, message in enumerate(messages):
        clean = {k: copy.deepcopy(v) for k, v in message.items() if v is not None}
        calls = clean.get("tool_calls")
        if calls:
            for index, call in enumerate(calls):
                function = call.get("function", call)
                function["arguments"] = parse_arguments(
                    function.get("arguments"), where=f"message {number} call {index}"
                )
        ready.append(clean)
    return ready


def render_qwen25(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = False,
) -> str:
    """``messages`` (OpenAI format, arguments as JSON strings) as Qwen2.5 text.

    Parameters
    ----------
    messages:
        The conversation; ``reasoning_content`` is ignored (the Qwen2.5 template has no place
        for it: inline it as ``<think>`` first to keep it).
    tools:
        JSON schemas (``{"type": "function", "function": {...}}``), listed in the system turn.
    add_generation_prompt:
        End with an open assistant turn (for a prompt, not a training example).

    Raises
    ------
    ArgumentsError
        A tool call's arguments are not a JSON object.
    """
    template = _compiled_qwen25()
    schemas = [copy.deepcopy(dict(tool)) for tool in tools] if tools else None
    return str(
        template.render(
            messages=template_ready(messages),
            tools=schemas,
            add_generation_prompt=add_generation_prompt,
        )
    )
