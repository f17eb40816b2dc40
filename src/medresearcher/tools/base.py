"""The tool interface of the agent (paper §2.2): a name, a description, a JSON schema drawn
from a pydantic model, and an async call that returns an :class:`Observation`.

A :class:`ToolBox` is what the ReAct loop talks to: it validates arguments, applies each tool's
timeout, cuts the text to a token budget, and turns every failure (unknown tool, arguments
that are not JSON or do not validate, a timeout, an exception) into an error observation, so
that a malformed call costs one turn, never the run.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medresearcher.tokens import TokenCounter, qwen25_counter, truncate_to_tokens

__all__ = ["Observation", "Tool", "ToolBox"]

logger = logging.getLogger(__name__)


class Observation(BaseModel):
    """What a tool call returns: text for the model, and the same facts as data."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="What the model reads (already cut to the token budget).")
    payload: Any = Field(default=None, description="Structured result, for records and UIs.")
    sources: list[str] = Field(
        default_factory=list, description="Ids or URLs of every source the text draws on."
    )
    error: bool = False
    truncated: bool = False
    elapsed_s: float = 0.0


class Tool(ABC):
    """An agent tool. Subclasses set ``name``, ``description`` and ``Arguments``."""

    name: ClassVar[str]
    description: ClassVar[str]
    Arguments: ClassVar[type[BaseModel]]
    timeout_s: float = 60.0

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry: ``{"type": "function", "function": {...}}``."""
        parameters = self.Arguments.model_json_schema()
        parameters.pop("title", None)
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": parameters,
            },
        }

    @abstractmethod
    async def run(self, arguments: Any) -> Observation:
        """Do the work for validated ``arguments`` (an instance of ``Arguments``)."""

    async def aclose(self) -> None:
        """Release clients and files; the default has nothing to release."""
        return None


class ToolBox:
    """The tools one agent may use, called by name with JSON arguments.

    ``closers`` release what the tools share but do not own (the workspace index that
    :func:`~medresearcher.tools.build_toolbox` opened for them); :meth:`aclose` calls them
    after every tool's own ``aclose``.
    """

    def __init__(
        self,
        tools: Iterable[Tool],
        *,
        max_observation_tokens: int = 2048,
        counter: TokenCounter | None = None,
        closers: Iterable[Callable[[], Awaitable[None] | None]] = (),
    ) -> None:
        self.tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self.tools:
                raise ValueError(f"two tools are named {tool.name!r}")
            self.tools[tool.name] = tool
        self.max_observation_tokens = max_observation_tokens
        self.counter = counter or qwen25_counter()
        self._closers = list(closers)

    def __contains__(self, name: object) -> bool:
        return name in self.tools

    def names(self) -> list[str]:
        return list(self.tools)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self.tools.values()]

    async def call(self, name: str, arguments: str | Mapping[str, Any] | None) -> Observation:
        """Run one call; every failure comes back as an error observation."""
        started = time.perf_counter()
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(self.tools) or "none"
            return _error(f"unknown tool {name!r}; the tools are: {known}", started)
        try:
            raw = json.loads(arguments) if isinstance(arguments, str) else dict(arguments or {})
        except json.JSONDecodeError as exc:
            return _error(f"{name}: arguments are not valid JSON ({exc.msg} at {exc.pos})", started)
        if not isinstance(raw, dict):
            return _error(f"{name}: arguments must be a JSON object", started)
        try:
            parsed = tool.Arguments.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
                for err in exc.errors()
            )
            return _error(f"{name}: invalid arguments: {problems}", started)
        try:
            observation = await asyncio.wait_for(tool.run(parsed), timeout=tool.timeout_s)
        except asyncio.TimeoutError:
            return _error(f"{name}: timed out after {tool.timeout_s:g} s", started)
        except Exception as exc:  # a tool bug or a source outage is an observation, not a crash
            logger.warning("tool %s failed: %s", name, exc, exc_info=True)
            return _error(f"{name}: {type(exc).__name__}: {exc}", started)
        text, cut = truncate_to_tokens(observation.text, self.max_observation_tokens, self.counter)
        return observation.model_copy(
            update={
                "text": text,
                "truncated": observation.truncated or cut,
                "elapsed_s": time.perf_counter() - started,
            }
        )

    async def aclose(self) -> None:
        for tool in self.tools.values():
            await tool.aclose()
        closers, self._closers = self._closers, []
        for close in closers:
            result = close()
            if inspect.isawaitable(result):
                await result


def _error(message: str, started: float) -> Observation:
    return Observation(
        text=f"Error: {message}", error=True, elapsed_s=time.perf_counter() - started
    )
