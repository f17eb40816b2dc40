"""Policies: whatever decides the agent's next turn (paper §2.2).

The ReAct loop does not care who thinks. A policy sees the conversation so far and the tool
schemas and returns the next assistant turn: its visible thought (or answer), any reasoning
kept apart, and the tool calls it wants run. :class:`LLMPolicy` asks a model endpoint through
the gateway (either tool dialect); the offline ``path_guided`` policy, which follows a QA
record's chain with real tool calls, implements the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from medresearcher.errors import MedResearcherError
from medresearcher.llm.gateway import LLMGateway
from medresearcher.llm.types import ToolCall

__all__ = ["AssistantTurn", "LLMPolicy", "Policy", "PolicyError"]


class PolicyError(MedResearcherError):
    """A policy cannot go on (a path-guided walk lost its chain, ...).

    The loop ends the run with termination ``error`` and this message as the detail, so a
    failure is recorded with its reason instead of crashing a batch of rollouts.
    """


@dataclass
class AssistantTurn:
    """One assistant turn as a policy produced it.

    ``content`` is the visible text: the thought before tool calls, or the final answer when
    there are none. ``tool_call_errors`` lists calls the model attempted but that could not be
    read (bad JSON, no name); the loop reports them back to the model. The numbers below are
    the cost of producing this turn (zero for a policy that calls no model).
    """

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_errors: list[str] = field(default_factory=list)
    reasoning_content: str | None = None
    finish_reason: str | None = None
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    cached: bool = False

    def to_message(self, *, with_tool_calls: bool = True) -> dict[str, Any]:
        """The turn in OpenAI chat format (``function.arguments`` stays a JSON string)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning_content:
            message["reasoning_content"] = self.reasoning_content
        if with_tool_calls and self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        return message


@runtime_checkable
class Policy(Protocol):
    """Decides the next assistant turn.

    ``name`` goes into ``Trajectory.policy`` (``llm:<endpoint>``, ``path_guided``).
    ``tools`` is empty when the loop withholds them to force a final answer; a policy must then
    answer in text. ``rollout`` lets repeated rollouts of one question differ (a cache salt, a
    seed). Raise :class:`PolicyError` to stop the run with a recorded reason; a model that
    cannot be reached raises :class:`~medresearcher.llm.LLMCallError`, handled the same way.
    """

    name: str

    async def next_turn(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        rollout: int = 0,
    ) -> AssistantTurn: ...


class LLMPolicy:
    """A model endpoint as the policy: one chat completion per turn.

    Parameters
    ----------
    gateway:
        The gateway that owns the endpoint (and its cache, limits and usage).
    endpoint:
        Name of an ``[llm.<name>]`` table; its ``tool_dialect`` (native or hermes) decides
        how tools and calls travel, inside the gateway.
    params:
        Sampling parameters for every turn (``temperature``, ``max_tokens``, ``seed``...).
    """

    def __init__(self, gateway: LLMGateway, endpoint: str, **params: Any) -> None:
        self.gateway = gateway
        self.endpoint = endpoint
        self.params = params
        self.name = f"llm:{endpoint}"
        gateway.settings.endpoint(endpoint)  # an unknown name fails now, listing the known ones

    async def next_turn(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        rollout: int = 0,
    ) -> AssistantTurn:
        """Ask the endpoint; the rollout number salts the cache so rollouts stay distinct."""
        result = await self.gateway.chat(
            self.endpoint, messages, tools=tools or None, cache_salt=rollout, **self.params
        )
        settings = self.gateway.settings.endpoint(self.endpoint)
        cost: float | None = None
        if settings.price_per_mtok_in is not None or settings.price_per_mtok_out is not None:
            cost = 0.0
            if not result.cached:
                cost = (
                    result.prompt_tokens * (settings.price_per_mtok_in or 0.0)
                    + result.completion_tokens * (settings.price_per_mtok_out or 0.0)
                ) / 1e6
        return AssistantTurn(
            content=result.content,
            tool_calls=list(result.tool_calls),
            tool_call_errors=list(result.tool_call_errors),
            reasoning_content=result.reasoning_content,
            finish_reason=result.finish_reason,
            model=result.model,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost_usd=cost,
            latency_s=result.latency_s,
            cached=result.cached,
        )
