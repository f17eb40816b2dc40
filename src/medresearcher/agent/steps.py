"""Step records: what happened in a run, one event at a time, for live display and logs.

The Trajectory's ``messages`` are the canonical record (what a trainer reads). Steps are the
same run told as events — a thought, a call, its observation, a budget running out, the
answer — so that a CLI or web page can show progress while the run goes on
(``run_agent(..., on_step=callback)``), the way smolagents' memory steps are shown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

__all__ = [
    "AnswerStep",
    "BudgetStep",
    "CallStep",
    "ErrorStep",
    "MalformedCallStep",
    "ObservationStep",
    "Step",
    "StepCallback",
    "ThoughtStep",
    "step_to_dict",
    "summarize_observation",
]


@dataclass(frozen=True)
class ThoughtStep:
    """The visible reasoning of an assistant turn that calls tools."""

    kind: ClassVar[str] = "thought"
    turn: int
    text: str
    reasoning: str | None = None


@dataclass(frozen=True)
class CallStep:
    """One tool call requested by the policy (``arguments`` as the JSON string it sent)."""

    kind: ClassVar[str] = "call"
    turn: int
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ObservationStep:
    """The result of one call, paired with it by ``call_id``."""

    kind: ClassVar[str] = "observation"
    turn: int
    call_id: str
    name: str
    summary: str
    sources: list[str] = field(default_factory=list)
    error: bool = False
    truncated: bool = False
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class MalformedCallStep:
    """Calls the policy attempted that could not be read; they are reported back to it."""

    kind: ClassVar[str] = "malformed"
    turn: int
    errors: list[str]


@dataclass(frozen=True)
class BudgetStep:
    """A budget ran out; the next turn is a forced final answer without tools."""

    kind: ClassVar[str] = "budget"
    reason: str
    detail: str


@dataclass(frozen=True)
class AnswerStep:
    """The final answer (``None`` when the policy gave none) and how the run ended."""

    kind: ClassVar[str] = "answer"
    turn: int
    answer: str | None
    text: str
    forced: bool
    termination: str


@dataclass(frozen=True)
class ErrorStep:
    """The run stopped on an error of the model or the policy."""

    kind: ClassVar[str] = "error"
    detail: str


Step = (
    ThoughtStep
    | CallStep
    | ObservationStep
    | MalformedCallStep
    | BudgetStep
    | AnswerStep
    | ErrorStep
)
StepCallback = Callable[[Step], Awaitable[None] | None]


def step_to_dict(step: Step) -> dict[str, Any]:
    """A step as plain JSON-ready data, with its ``kind``."""
    return {"kind": step.kind, **asdict(step)}


def summarize_observation(text: str, limit: int = 240) -> str:
    """A one-line preview of an observation for people (the model gets the full text)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
