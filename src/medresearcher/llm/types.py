"""Value types that cross the gateway boundary: tool calls, usage, chat results."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ChatResult", "ToolCall", "Usage"]


@dataclass(frozen=True)
class ToolCall:
    """One tool call requested by the model.

    ``arguments`` stays a JSON *string*, as on the OpenAI wire: a dict would be
    double-encoded by some chat templates and merged across rows by Arrow
    (see docs/ecosystem.md §2.3). Use :meth:`arguments_dict` to read it.
    """

    id: str
    name: str
    arguments: str

    def arguments_dict(self) -> dict[str, Any]:
        """The arguments parsed as a JSON object (raises ``ValueError`` if they are not one)."""
        value = json.loads(self.arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError(f"tool call {self.name!r}: arguments are not a JSON object")
        return value

    def to_openai(self) -> dict[str, Any]:
        """The call in OpenAI ``tool_calls`` wire form."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class Usage:
    """Token counts and cost of one or many calls."""

    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: Usage) -> None:
        self.requests += other.requests
        self.cached += other.cached
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cached": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


@dataclass
class ChatResult:
    """What one chat completion gave back, already parsed for the endpoint's dialect.

    ``content`` is the visible text with any hermes ``<tool_call>`` blocks removed;
    ``reasoning_content`` is kept apart, as vLLM/SGLang reasoning parsers return it.
    ``tool_call_errors`` lists calls the model tried to make but that could not be
    parsed, so the agent can show the model its mistake instead of losing it.
    """

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_errors: list[str] = field(default_factory=list)
    reasoning_content: str | None = None
    finish_reason: str | None = None
    model: str = ""
    endpoint: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False

    def to_message(self) -> dict[str, Any]:
        """The assistant turn in OpenAI chat format, for appending to a conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning_content:
            message["reasoning_content"] = self.reasoning_content
        if self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        return message

    def to_dict(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "tool_calls": [call.to_openai() for call in self.tool_calls],
            "tool_call_errors": list(self.tool_call_errors),
            "reasoning_content": self.reasoning_content,
            "finish_reason": self.finish_reason,
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, endpoint: str = "", cached: bool = False
    ) -> ChatResult:
        calls = [
            ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
            for c in data.get("tool_calls") or []
        ]
        return cls(
            content=data.get("content") or "",
            tool_calls=calls,
            tool_call_errors=list(data.get("tool_call_errors") or []),
            reasoning_content=data.get("reasoning_content"),
            finish_reason=data.get("finish_reason"),
            model=data.get("model", ""),
            endpoint=endpoint,
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            cached=cached,
        )
