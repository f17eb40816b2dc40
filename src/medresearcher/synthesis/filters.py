"""Trajectory quality filters (paper §3.2; issue "Trajectory synthesis" item 3, and the
"thought before every call" rule of §4.1's intermediate thought supervision).

Each rule is a named, pure function over a :class:`~medresearcher.schema.Trajectory` (and its
:class:`~medresearcher.schema.QARecord` when given) that returns ``None`` when the trajectory
passes and otherwise a reason, in words. :func:`apply_filters` runs the rules a
:class:`FilterConfig` turns on and writes every failed rule with its reason into
``Trajectory.filters`` (``{"passed", "reasons": [{"rule", "detail"}], "rules"}``), so that a
rejection is never silent and ``traj stats`` can count rejections by rule.

The public release of the system we implement only checked that turns alternate and kept no
reasons; these rules check what makes a trajectory a good training example: it answers, the
answer is right (the shared grader), every call has its result, errors are recovered from, it
fits the context window, it uses tools enough but does not loop, it does not leak the MTG
scaffold, it stays in one language, and it reasons before every call.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from medresearcher.errors import ConfigError
from medresearcher.schema import QARecord, Trajectory
from medresearcher.synthesis.stats import call_records
from medresearcher.tokens import TokenCounter, count_message_tokens, qwen25_counter

if TYPE_CHECKING:
    from medresearcher.grading.judge import Judge

__all__ = [
    "RULES",
    "FilterConfig",
    "LeakDetector",
    "RuleName",
    "apply_filters",
    "calls_paired",
    "final_answer",
    "judge_correct",
    "judge_trajectory",
    "judge_verdict",
    "language_share",
    "min_tool_calls",
    "no_repeated_call",
    "no_scaffold_leak",
    "no_unrecovered_error",
    "one_language",
    "thought_before_call",
    "token_length",
]

RuleName = Literal[
    "final_answer",
    "judge_correct",
    "calls_paired",
    "no_unrecovered_error",
    "token_length",
    "min_tool_calls",
    "no_repeated_call",
    "no_scaffold_leak",
    "one_language",
    "thought_before_call",
]


class LeakDetector(Protocol):
    """``medresearcher.synthesis.leaks.scaffold_leaks``: one line per leak found."""

    def __call__(
        self,
        trajectory: Trajectory,
        record: QARecord,
        names_by_id: Mapping[str, Sequence[str]],
    ) -> list[str]: ...


class FilterConfig(BaseModel):
    """Which rules run and their limits (defaults suit Qwen2.5-32B SFT, paper §4.1)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[RuleName] = Field(
        default_factory=lambda: list(RULES), description="The rules to run, in this order."
    )
    allow_forced_answer: bool = Field(
        False,
        description="final_answer: accept an answer forced after a budget ran out "
        "(termination max_turns / token_budget / timeout).",
    )
    accept_undecided: bool = Field(
        False, description="judge_correct: pass when neither rules nor a judge could decide."
    )
    max_tokens: int = Field(
        32768, ge=1, description="token_length: messages + tool schemas, Qwen2.5 tokens."
    )
    count_tool_schemas: bool = Field(
        True, description="token_length: the tool schemas are part of the training prompt."
    )
    min_tool_calls: int = Field(2, ge=0, description="min_tool_calls: at least this many calls.")
    max_identical_calls: int = Field(
        2, ge=1, description="no_repeated_call: the same (name, arguments) at most k times."
    )
    language_min_share: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="one_language: least share of an assistant turn's words in the language.",
    )
    language_min_words: int = Field(
        8, ge=1, description="one_language: turns shorter than this are not judged."
    )
    min_thought_chars: int = Field(
        1, ge=1, description="thought_before_call: visible or reasoning text before a call."
    )


# -- the rules --------------------------------------------------------------------------------


def final_answer(
    trajectory: Trajectory, record: QARecord | None = None, config: FilterConfig | None = None
) -> str | None:
    """A final answer exists, given by the agent (not forced by a spent budget, by default)."""
    config = config or FilterConfig()
    if not (trajectory.final_answer or "").strip():
        detail = f": {trajectory.termination_detail}" if trajectory.termination_detail else ""
        return f"no final answer (termination {trajectory.termination}{detail})"
    if trajectory.termination != "answer" and not config.allow_forced_answer:
        return f"the answer was forced after the {trajectory.termination} budget ran out"
    return None


def judge_verdict(trajectory: Trajectory, record: QARecord | None) -> dict[str, Any] | None:
    """The verdict on the final answer: ``trajectory.judge`` when a grader already set it,
    else the shared rules grader (:func:`medresearcher.grading.rules.grade_by_rules`) against
    the QA answer and its aliases. ``None`` without a QA record."""
    if trajectory.judge and trajectory.judge.get("verdict") is not None:
        return trajectory.judge
    if record is None:
        return None
    from medresearcher.grading.rules import grade_by_rules

    verdict = grade_by_rules(
        trajectory.final_answer, record.answer, record.answer_aliases, question=record.question
    )
    return {
        "verdict": verdict.verdict or "undecided",
        "grader": verdict.grader,
        "detail": verdict.detail,
        "gold": record.answer,
    }


def judge_correct(
    trajectory: Trajectory, record: QARecord | None = None, config: FilterConfig | None = None
) -> str | None:
    """The shared grader says the final answer is the QA record's answer: the verdict already
    in ``trajectory.judge`` (an LLM judge's, see :func:`judge_trajectory`), else the rules."""
    config = config or FilterConfig()
    verdict = judge_verdict(trajectory, record)
    if verdict is None:
        return "no QA record to grade the answer against"
    label = verdict.get("verdict")
    if label == "correct":
        return None
    grader = verdict.get("grader", "?")
    if label in ("undecided", "unjudgeable"):
        if config.accept_undecided:
            return None
        return (
            f"{grader} could not decide whether {trajectory.final_answer!r} is "
            f"{verdict.get('gold', getattr(record, 'answer', '?'))!r}; grade with a judge endpoint"
        )
    gold = verdict.get("gold", getattr(record, "answer", "?"))
    return f"{grader}: {trajectory.final_answer!r} is not {gold!r}"


def calls_paired(
    trajectory: Trajectory, record: QARecord | None = None, config: FilterConfig | None = None
) -> str | None:
    """Every assistant tool call has exactly one tool message with its id, before the next
    assistant turn; every tool message answers a call of the turn before it. Parallel calls
    (several in one turn, answered in any order) are allowed."""
    problems: list[str] = []
    seen_ids: set[str] = set()
    answered: set[str] = set()
    pending: dict[str, str] = {}
    turn = 0

    def close_turn() -> None:
        problems.extend(
            f"turn {turn}: call {cid} ({name}) has no result" for cid, name in pending.items()
        )
        pending.clear()

    for index, message in enumerate(trajectory.messages):
        role = message.get("role")
        if role == "assistant":
            close_turn()
            turn += 1
            for call in message.get("tool_calls") or []:
                call_id = call.get("id")
                name = (call.get("function") or {}).get("name")
                if not call_id:
                    problems.append(f"turn {turn}: a call to {name} has no id")
                    continue
                if call_id in seen_ids:
                    problems.append(f"turn {turn}: call id {call_id} is used twice")
                seen_ids.add(call_id)
                pending[call_id] = str(name)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if call_id in pending:
                del pending[call_id]
                answered.add(call_id)
            elif call_id in answered:
                problems.append(f"message {index}: call {call_id} has a second result")
            elif call_id in seen_ids:
                problems.append(f"message {index}: the result of {call_id} comes a turn late")
            else:
                problems.append(f"message {index}: a tool result for unknown call {call_id!r}")
    close_turn()
    return "; ".join(problems) if problems else None


def no_unrecovered_error(
    trajectory: Trajectory, record: QARecord | None = None, config: FilterConfig | None = None
) -> str | None:
    """No tool error is left unrecovered at the end: after each failed call, a later call of
    the same tool succeeds (for a malformed call or an unknown tool, any later successful call
    counts) — the definition of recovery that ``traj stats`` counts (paper §4.1)."""
    calls = call_records(trajectory)
    left: list[str] = []
    for index, call in enumerate(calls):
        if not call.error:
            continue
        any_tool = call.name is None or not call.known
        later = calls[index + 1 :]
        if not any(not c.error and (any_tool or c.name == call.name) for c in later):
            what = call.name or "a malformed call"
            left.append(f"turn {call.turn}: {what} ({call.call_id or 'no id'})")
    if left:
        return "tool errors never recovered from: " + "; ".join(left)
    return None


def token_length(
    trajectory: Trajectory,
    record: QARecord | None = None,
    config: FilterConfig | None = None,
    *,
    counter: TokenCounter | None = None,
) -> str | None:
    """The training example fits ``max_tokens``: messages in ChatML framing, plus the tool
    schemas, counted with the Qwen2.5 tokenizer by default."""
    config = config or FilterConfig()
    counter = counter or qwen25_counter()
    tokens = count_message_tokens(trajectory.messages, counter)
    if config.count_tool_schemas and trajectory.tools:
        tokens += counter.count(json.dumps(trajectory.tools, ensure_ascii=False))
    if tokens > config.max_tokens:
        return f"{tokens} tokens ({counter.name}) exceed the limit of {config.max_tokens}"
    return None


def _calls(trajectory: Trajectory) -> list[tuple[str, str]]:
    """(name, canonical arguments) of every call: JSON re-dumped with sorted keys."""
    calls = []
    for message in trajectory.messages:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            arguments = function.get("arguments")
            try:
                parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
                canonical = json.dumps(parsed, sort_keys=True, ensure_ascii=False)
            except (TypeError, ValueError):
                canonical = str(arguments).strip()
            calls.append((str(function.get("name")), canonical))
    return calls


def min_tool_calls(
    trajectory: Trajectory, record: QARecord | None = None, config: FilterConfig | None = None
) -> str | None:
    """The agent made at least ``min_tool_calls`` calls (a deep-research example researches)."""
    config = config or FilterConfig()
    count = len(_calls(trajectory))
    if count < config.min_tool_calls:
        return f"{count} tool calls; at least {config.min_tool_calls} required"
    return None


def no_repeated_call(
    trajectory: Trajectory, record: QARecord | None = None, config: FilterConfig | None = None
) -> str | None:
    """No identical call — same tool, same arguments as JSON — appears more than
    ``max_identical_calls`` times (one retry after a failure is fine; a loop is not)."""
    config = config or FilterConfig()
    repeated = [
        f"{name}({arguments[:80]}) × {count}"
        for (name, arguments), count in Counter(_calls(trajectory)).items()
        if count > config.max_identical_calls
    ]
    if repeated:
        return f"identical calls more than {config.max_identical_calls} times: " + "; ".join(
            repeated
        )
    return None


def no_scaffold_leak(
    trajectory: Trajectory,
    record: QARecord | None = None,
    config: FilterConfig | None = None,
    *,
    names_by_id: Mapping[str, Sequence[str]] | None = None,
    detector: LeakDetector | None = None,
) -> str | None:
    """No thought names a masked entity before an observation showed it, or mentions the
    guidance itself (MTG, paper §3.2). The detector is
    :func:`medresearcher.synthesis.leaks.scaffold_leaks` unless one is given; ``names_by_id``
    maps the chain's entity ids to their names and aliases (from the knowledge graph)."""
    if record is None:
        return "no QA record: which entities are masked is unknown"
    if detector is None:
        try:
            from medresearcher.synthesis.leaks import scaffold_leaks
        except ImportError as exc:
            raise ConfigError(
                "the no_scaffold_leak rule needs medresearcher.synthesis.leaks, which cannot be "
                f"imported ({exc}); turn the rule off or install a complete package"
            ) from exc
        detector = scaffold_leaks
    leaks = detector(trajectory, record, names_by_id or {})
    if leaks:
        return "; ".join(leaks)
    return None


_CJK_CHAR = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-zÀ-ÿ]+(?:['’-][A-Za-zÀ-ÿ]+)*")
_ANSWER_TAG = re.compile(r"<answer>.*?(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
_URL = re.compile(r"\S+://\S+|\b[A-Z][A-Za-z]*:\S+")


def language_share(text: str, language: str) -> tuple[float, int]:
    """The share of ``text``'s word units in ``language`` and the number of units.

    A CJK character counts as one unit, a Latin word as one unit (so an English disease name
    inside a Chinese sentence weighs like a word, not like its letters). URLs, CURIEs and
    ``<answer>`` contents (entity names are often English by design) are left out.
    """
    text = _URL.sub(" ", _ANSWER_TAG.sub(" ", text))
    cjk = len(_CJK_CHAR.findall(text))
    latin = len(_LATIN_WORD.findall(text))
    units = cjk + latin
    if units == 0:
        return 1.0, 0
    share = cjk / units if language == "zh" else latin / units
    return share, units


def _trajectory_language(trajectory: Trajectory, record: QARecord | None) -> str:
    generation = trajectory.stats.get("generation") or {}
    language = generation.get("language") or (record.language if record else None)
    if language in ("en", "zh"):
        return str(language)
    share, _ = language_share(trajectory.question, "zh")
    return "zh" if share >= 0.5 else "en"


def one_language(
    trajectory: Trajectory, record: QARecord | None = None, config: FilterConfig | None = None
) -> str | None:
    """Every assistant turn is written in the trajectory's language (the generation language,
    else the QA record's, else the question's): its share of CJK units (zh) or Latin words
    (en) is at least ``language_min_share``."""
    config = config or FilterConfig()
    language = _trajectory_language(trajectory, record)
    off: list[str] = []
    turn = 0
    for message in trajectory.messages:
        if message.get("role") != "assistant":
            continue
        turn += 1
        text = "\n".join(str(message.get(key) or "") for key in ("reasoning_content", "content"))
        share, units = language_share(text, language)
        if units >= config.language_min_words and share < config.language_min_share:
            off.append(f"turn {turn}: {share:.0%} {language}")
    if off:
        return f"assistant text not in {language}: " + "; ".join(off)
    return None


_THINK_TAGS = re.compile(r"</?think>", re.IGNORECASE)


def thought_before_call(
    trajectory: Trajectory, record: QARecord | None = None, config: FilterConfig | None = None
) -> str | None:
    """Every assistant turn with tool calls states its reasoning first: non-empty ``content``
    or ``reasoning_content`` (intermediate thought supervision, paper §4.1)."""
    config = config or FilterConfig()
    bare: list[str] = []
    turn = 0
    for message in trajectory.messages:
        if message.get("role") != "assistant":
            continue
        turn += 1
        if not message.get("tool_calls"):
            continue
        thought = " ".join(
            _THINK_TAGS.sub("", str(message.get(key) or "")).strip()
            for key in ("reasoning_content", "content")
        ).strip()
        if len(thought) < config.min_thought_chars:
            names = ", ".join(
                str((c.get("function") or {}).get("name")) for c in message["tool_calls"]
            )
            bare.append(f"turn {turn} ({names})")
    if bare:
        return "tool calls without a thought before them: " + "; ".join(bare)
    return None


Rule = Callable[..., "str | None"]

#: Every rule by name, in the default order.
RULES: dict[str, Rule] = {
    "final_answer": final_answer,
    "judge_correct": judge_correct,
    "calls_paired": calls_paired,
    "no_unrecovered_error": no_unrecovered_error,
    "token_length": token_length,
    "min_tool_calls": min_tool_calls,
    "no_repeated_call": no_repeated_call,
    "no_scaffold_leak": no_scaffold_leak,
    "one_language": one_language,
    "thought_before_call": thought_before_call,
}


def apply_filters(
    trajectory: Trajectory,
    record: QARecord | None = None,
    config: FilterConfig | None = None,
    *,
    names_by_id: Mapping[str, Sequence[str]] | None = None,
    leak_detector: LeakDetector | None = None,
    counter: TokenCounter | None = None,
) -> Trajectory:
    """``trajectory`` with ``filters`` set by the rules ``config`` turns on.

    Parameters
    ----------
    trajectory:
        The rollout to judge; it is not modified (a copy is returned).
    record:
        Its QA record (``judge_correct`` and ``no_scaffold_leak`` need it).
    config:
        Rules and limits (default :class:`FilterConfig`).
    names_by_id:
        Names and aliases of the chain's entities, for the leak detector
        (``medresearcher.qa.batch.chain_names(store, record.chain)``).
    leak_detector:
        Replaces :func:`medresearcher.synthesis.leaks.scaffold_leaks`.
    counter:
        Token counter for ``token_length`` (default Qwen2.5).

    Returns
    -------
    Trajectory
        With ``filters = {"passed", "reasons": [{"rule", "detail"}], "rules"}``, and
        ``judge`` set to the rules grader's verdict when ``judge_correct`` ran and no grader
        had judged it before.
    """
    config = config or FilterConfig()
    reasons: list[dict[str, str]] = []
    update: dict[str, Any] = {}
    for name in config.rules:
        rule = RULES[name]
        if name == "no_scaffold_leak":
            reason = no_scaffold_leak(
                trajectory, record, config, names_by_id=names_by_id, detector=leak_detector
            )
        elif name == "token_length":
            reason = token_length(trajectory, record, config, counter=counter)
        else:
            reason = rule(trajectory, record, config)
        if name == "judge_correct" and not (trajectory.judge or {}).get("verdict"):
            verdict = judge_verdict(trajectory, record)
            if verdict is not None:
                update["judge"] = verdict
        if reason is not None:
            reasons.append({"rule": name, "detail": reason})
    update["filters"] = {"passed": not reasons, "reasons": reasons, "rules": list(config.rules)}
    return trajectory.model_copy(update=update)


async def judge_trajectory(
    trajectory: Trajectory, record: QARecord, *, judge: Judge | None = None
) -> Trajectory:
    """``trajectory`` with ``judge`` set by the shared grader of the evaluation stage
    (:func:`medresearcher.grading.grade`, paper §5): rules first, then — only where the rules
    cannot decide — the LLM ``judge`` when one is given. Without a judge an undecided answer is
    recorded as ``undecided`` (``judge_correct`` rejects it unless ``accept_undecided``).

    Raises
    ------
    LLMCallError
        When the judge's endpoint fails for good: an outage is no verdict.
    """
    from medresearcher.grading import grade

    result = await grade(
        trajectory.final_answer,
        record.answer,
        record.answer_aliases,
        question=record.question,
        judge=judge,
    )
    verdict: dict[str, Any] = {
        "verdict": "undecided" if result.grader == "rule:undecided" else result.verdict,
        "grader": result.grader,
        "detail": result.detail,
        "gold": record.answer,
    }
    if result.judgement is not None:
        verdict["judgement"] = result.judgement.to_dict()
    return trajectory.model_copy(update={"judge": verdict})
