"""The budgets of one agent run (paper §2.2): turns, conversation tokens, wall-clock time."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from medresearcher.stage_settings import AgentSettings

__all__ = ["AgentLimits"]


@dataclass(frozen=True)
class AgentLimits:
    """The budgets of one run.

    ``max_turns`` model turns, ``max_tokens`` conversation tokens (the prompt the policy sees,
    tool schemas included, counted with the Qwen2.5 tokenizer or the fallback estimate) and
    ``timeout_s`` of wall-clock time; whichever runs out first triggers one forced final-answer
    turn, which may take up to ``answer_grace_s`` beyond the time limit. Set ``max_tokens``
    below the model's context window by the room a final answer needs.
    """

    max_turns: int = 12
    max_tokens: int = 32768
    timeout_s: float = 600.0
    answer_grace_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: AgentSettings, **overrides: Any) -> AgentLimits:
        """Limits from ``[agent]``; ``None`` overrides are ignored (unset CLI options)."""
        limits = cls(
            max_turns=settings.max_turns,
            max_tokens=settings.max_tokens,
            timeout_s=settings.timeout_s,
        )
        return replace(limits, **{k: v for k, v in overrides.items() if v is not None})
