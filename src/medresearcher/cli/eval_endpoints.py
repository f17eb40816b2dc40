"""The model and judge endpoints of ``medresearcher eval run | ask``.

Both commands need a model for the llm policy and may grade with an LLM judge; they resolve
and check those endpoints the same way, here: offline nothing fakes a model's answer, so a
missing endpoint stops with a message saying how to configure one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medresearcher.cli.state import require_model as require_any_model
from medresearcher.config import Settings

if TYPE_CHECKING:  # the gateway imports the openai SDK: only when a command runs
    from medresearcher.llm import LLMGateway

__all__ = ["judge_label", "judge_of", "make_judge", "require_model"]

_NO_JUDGE = ("none", "off", "rules")


def require_model(settings: Settings, endpoint: str) -> None:
    """Offline, nothing fakes a model: say how to configure one, and stop."""
    require_any_model(
        settings,
        endpoint,
        offline="`eval run --benchmark qa --policy path_guided` evaluates the path-guided "
        "policy on QA records instead",
    )


def judge_of(settings: Settings, option: str | None) -> str | None:
    """The judge endpoint: the one named, none, or ``judge`` when configured."""
    if option is None:
        return "judge" if "judge" in settings.llm else None
    if option.strip().lower() in _NO_JUDGE:
        return None
    settings.endpoint(option)
    return option


def make_judge(gateway: LLMGateway, endpoint: str | None) -> Any:
    """The :class:`~medresearcher.grading.grade.Judge` of ``endpoint``; ``None`` for rules only."""
    if endpoint is None:
        return None
    from medresearcher.grading.grade import Judge

    return Judge(gateway, endpoint)


def judge_label(settings: Settings, endpoint: str | None) -> str:
    """How answers are graded, in words (for run.json and the console)."""
    if endpoint is None:
        return "rules only"
    return f"rules, then judge llm.{endpoint} ({settings.endpoint(endpoint).model})"
