"""What a run records besides its messages: the id, the usage and the behaviour statistics.

The statistics are the ones the paper reports for its trajectories (§4.1): how many tool
calls, which tool came first, whether the agent switched between general tools (web search,
page reading) and medical tools (private retriever, clinical reasoning), and whether it
recovered from a tool error. They are computed from explicit call records by pure functions,
so that the trajectory stage (``traj stats``) can recompute them after augmentation.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from medresearcher.agent.policy import AssistantTurn

__all__ = [
    "GENERAL_TOOLS",
    "MEDICAL_TOOLS",
    "CallRecord",
    "UsageTally",
    "behaviour_stats",
    "tool_category",
    "trajectory_id",
]

GENERAL_TOOLS = frozenset({"web_search", "document_read"})
MEDICAL_TOOLS = frozenset({"medical_retriever", "clinical_reasoning"})


def trajectory_id(question_key: str, policy: str, rollout: int, guidance: str) -> str:
    """Stable id of one rollout: the same question (QA id, else its text), policy, rollout
    number and guidance mode give the same id, so a resumed stage skips what it wrote."""
    blob = "\x1f".join([question_key, policy, str(rollout), guidance])
    return "T:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def tool_category(name: str) -> str:
    """``general``, ``medical`` or ``other`` (paper §2.2's two families of tools)."""
    if name in GENERAL_TOOLS:
        return "general"
    if name in MEDICAL_TOOLS:
        return "medical"
    return "other"


@dataclass
class CallRecord:
    """One tool call and the facts about its result (the text itself is in the messages).

    ``name`` is ``None`` for a malformed call the policy wrote but that could not be read;
    ``known`` is false for a call that names no tool of the toolbox.
    """

    turn: int
    call_id: str | None
    name: str | None
    error: bool
    known: bool = True
    sources: list[str] = field(default_factory=list)
    truncated: bool = False
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["elapsed_s"] = round(self.elapsed_s, 4)
        return data


@dataclass
class UsageTally:
    """The cost of a run's model turns, summed as they come."""

    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    model: str = ""

    def add(self, turn: AssistantTurn) -> None:
        self.calls += 1
        self.cached += int(turn.cached)
        self.prompt_tokens += turn.prompt_tokens
        self.completion_tokens += turn.completion_tokens
        self.latency_s += turn.latency_s
        if turn.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + turn.cost_usd
        self.model = turn.model or self.model

    def to_dict(self) -> dict[str, Any]:
        """``Trajectory.usage``; ``cost_usd`` is ``None`` when the endpoint has no prices."""
        return {
            "calls": self.calls,
            "cached": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6),
            "latency_s": round(self.latency_s, 4),
            "model": self.model,
        }


def behaviour_stats(calls: list[CallRecord]) -> dict[str, Any]:
    """Tool-use behaviour of one trajectory (paper §4.1).

    Returns
    -------
    dict
        ``tool_calls`` (calls that named a tool), ``tool_calls_by_tool``, ``errors`` (error
        observations and malformed calls), ``malformed_calls``, ``recovered_errors``,
        ``first_tool``, ``first_tool_category``, ``switches`` (changes between the general and
        the medical family along the sequence of calls, other tools ignored) and ``switched``.

    Notes
    -----
    An error counts as recovered when a later call succeeds: a later call of the same tool,
    or — for a malformed call or an unknown tool, which name no usable tool — any later
    successful call.
    """
    named = [call for call in calls if call.name is not None]
    by_tool = Counter(call.name for call in named)
    recovered = 0
    errors = 0
    for index, call in enumerate(calls):
        if not call.error:
            continue
        errors += 1
        any_tool = call.name is None or not call.known
        later = calls[index + 1 :]
        if any(not c.error and (any_tool or c.name == call.name) for c in later):
            recovered += 1
    families = [tool_category(call.name) for call in named]
    families = [family for family in families if family != "other"]
    switches = sum(1 for a, b in itertools.pairwise(families) if a != b)
    first = named[0].name if named else None
    return {
        "tool_calls": len(named),
        "tool_calls_by_tool": dict(sorted(by_tool.items())),
        "errors": errors,
        "malformed_calls": sum(1 for call in calls if call.name is None),
        "recovered_errors": recovered,
        "first_tool": first,
        "first_tool_category": tool_category(first) if first else None,
        "switches": switches,
        "switched": switches > 0,
    }
