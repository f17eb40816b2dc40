"""Structured output: a JSON answer validated against a pydantic model, with one repair.

Servers differ in what they support (``response_format`` json_schema, guided decoding,
nothing at all), so the portable path is an instruction with the JSON schema, a tolerant
extraction of the object from the text, validation, and one repair round in which the
model sees its own answer and the validation error. Callers may still pass
``response_format`` where the server supports it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from medresearcher.llm.errors import StructuredOutputError
from medresearcher.llm.jsontext import extract_json_object

if TYPE_CHECKING:
    from medresearcher.llm.endpoint import EndpointClient

__all__ = ["chat_structured", "schema_instruction"]

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)


def schema_instruction(schema: type[BaseModel]) -> str:
    """The system-prompt text that asks for one JSON object matching ``schema``."""
    spec = json.dumps(schema.model_json_schema(), ensure_ascii=False)
    return (
        "Answer with a single JSON object and nothing else (no prose, no code fence). "
        f"It must validate against this JSON schema:\n{spec}"
    )


def _validate(text: str, schema: type[T]) -> T:
    return schema.model_validate(extract_json_object(text))


async def chat_structured(
    client: EndpointClient,
    messages: list[dict[str, Any]],
    schema: type[T],
    **params: Any,
) -> T:
    """Ask ``client`` for an answer that validates as ``schema``; one repair round.

    Raises
    ------
    StructuredOutputError
        When the repaired answer still does not validate; the raw text is logged and
        kept on the exception.
    """
    conversation = _with_instruction(messages, schema_instruction(schema))
    result = await client.chat(conversation, **params)
    try:
        return _validate(result.content, schema)
    except (ValueError, ValidationError) as exc:
        error = _short_error(exc)
        log.warning(
            "endpoint %r: answer is not a valid %s (%s); asking for a repair",
            client.name,
            schema.__name__,
            error,
        )
    repair = [
        *conversation,
        {"role": "assistant", "content": result.content},
        {
            "role": "user",
            "content": f"Your answer did not validate: {error}\n"
            "Reply with the corrected JSON object only.",
        },
    ]
    second = await client.chat(repair, **params)
    try:
        return _validate(second.content, schema)
    except (ValueError, ValidationError) as exc:
        error = _short_error(exc)
        log.error(
            "endpoint %r: unrepaired %s answer, raw text: %r",
            client.name,
            schema.__name__,
            second.content,
        )
        raise StructuredOutputError(
            f"endpoint {client.name!r}: the answer does not match {schema.__name__} after one "
            f"repair round: {error}",
            raw=second.content,
        ) from None


def _with_instruction(messages: list[dict[str, Any]], instruction: str) -> list[dict[str, Any]]:
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = f"{first.get('content') or ''}\n\n{instruction}".strip()
        return [first, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"]) or "(root)"
            parts.append(f"{where}: {err['msg']}")
        return "; ".join(parts)
    return str(exc)
