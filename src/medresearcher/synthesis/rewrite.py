"""LLM rewriting of trajectory thoughts (paper §3.2, §4.1; issue "Trajectory synthesis" item 4).

A trajectory generated under Masked Trajectory Guidance, or by the path-guided policy, can
reason in ways a trained model must not learn: "following the guidance, …", or a name it could
not yet know. :func:`rewrite_trajectory` asks a model to rewrite the reasoning of every
assistant step into self-contained reasoning grounded in the observations before it (the
prompt shows them, cut to ``observation_chars`` each), with every reference to guidance
removed. A step with no reasoning gets one written (the "thought before every call" target).

Only the reasoning may change. The model must return each step's tool calls (and the final
answer) along with the new thought; they are compared with the originals, and any difference
— a tool renamed, an argument changed, a call added or dropped, another answer — rejects the
whole trajectory with a :class:`RewriteRejection` that says which step and what changed. The
messages are then rebuilt from the originals (ids, argument strings and observations verbatim)
and compared once more outside the thoughts. A rewrite that still mentions the guidance is
rejected too (:func:`medresearcher.synthesis.leaks.guidance_mentions`).

The original messages are kept on the record in ``stats["original_messages"]``, and
``stats["rewrite"]`` says which endpoint, model and prompt version rewrote which steps.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medresearcher.llm.errors import StructuredOutputError
from medresearcher.prompts import load_prompts
from medresearcher.schema import Trajectory

__all__ = [
    "REWRITE_PROMPT",
    "RewriteRejection",
    "RewrittenCall",
    "RewrittenStep",
    "rewrite_all",
    "rewrite_trajectory",
]

#: The prompt file (``prompts/rewrite.yaml``).
REWRITE_PROMPT = "rewrite"

_ANSWER_TAIL = re.compile(r"<answer>.*?(?:</answer>|$)\s*$", re.DOTALL | re.IGNORECASE)

RejectionReason = Literal[
    "tool_call_changed",
    "answer_changed",
    "guidance_reference",
    "empty_thought",
    "unreadable",
    "messages_changed",
]


class RewrittenCall(BaseModel):
    """A tool call as the rewriting model copied it."""

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class RewrittenStep(BaseModel):
    """What the rewriting model returns for one step."""

    thought: str = Field(description="The rewritten reasoning of this step.")
    tool_calls: list[RewrittenCall] = Field(
        default_factory=list, description="This step's tool calls, copied exactly."
    )
    answer: str | None = Field(default=None, description="The answering step's answer, copied.")


class RewriteRejection(BaseModel):
    """Why a trajectory's rewrite was not kept (written to ``<run>.rewrite_rejected.jsonl``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The trajectory's id.")
    qa_id: str | None = None
    rollout: int = 0
    reason: RejectionReason = Field(description="The first problem found, as a code.")
    step: int | None = Field(default=None, description="1-based assistant step of that problem.")
    detail: str = Field(description="Every problem found, in words.")
    endpoint: str


@dataclass
class _Step:
    """One assistant message to rewrite and the field that holds its thought."""

    index: int
    number: int
    field: Literal["content", "reasoning_content"]
    thought: str
    calls: list[tuple[str, str]]
    final: bool
    answer_tail: str = ""


async def rewrite_trajectory(
    trajectory: Trajectory,
    *,
    gateway: Any,
    endpoint: str,
    language: str | None = None,
    observation_chars: int = 3000,
) -> Trajectory | RewriteRejection:
    """Rewrite every step's thought with the model at ``endpoint``; keep calls unchanged.

    Parameters
    ----------
    trajectory:
        The rollout; not modified.
    gateway:
        A :class:`medresearcher.llm.LLMGateway`.
    endpoint:
        The ``[llm.<name>]`` endpoint of the rewriter.
    language:
        Prompt language (default: the generation language of the trajectory, else ``en``).
    observation_chars:
        Each observation shown to the model is cut to this many characters.

    Returns
    -------
    Trajectory | RewriteRejection
        The rewritten trajectory (same id; originals in ``stats["original_messages"]``), or
        why it was rejected. A model that cannot be reached raises
        :class:`~medresearcher.llm.LLMCallError`: that is no verdict on the trajectory.
    """
    language = language or (trajectory.stats.get("generation") or {}).get("language") or "en"
    prompts = load_prompts(REWRITE_PROMPT)
    steps = _steps(trajectory)
    total = sum(1 for m in trajectory.messages if m.get("role") == "assistant")
    replies = await asyncio.gather(
        *(
            _ask(
                gateway,
                endpoint,
                prompts,
                language,
                trajectory,
                step,
                total,
                observation_chars,
            )
            for step in steps
        )
    )
    problems: list[tuple[RejectionReason, int, str]] = []
    messages = [dict(message) for message in trajectory.messages]
    for step, reply in zip(steps, replies, strict=True):
        if isinstance(reply, str):
            problems.append(("unreadable", step.number, reply))
            continue
        problems += [(code, step.number, text) for code, text in _check(step, reply, trajectory)]
        thought = reply.thought.strip()
        if step.final and step.field == "content":
            thought = f"{thought}\n{step.answer_tail}"
        messages[step.index][step.field] = thought
    if not problems:
        changed = _skeleton_changes(trajectory.messages, messages)
        problems += [("messages_changed", 0, text) for text in changed]
    if problems:
        code, number, _ = problems[0]
        return RewriteRejection(
            id=trajectory.id,
            qa_id=trajectory.qa_id,
            rollout=trajectory.rollout,
            reason=code,
            step=number or None,
            detail="; ".join(f"step {n}: {text}" if n else text for _, n, text in problems),
            endpoint=endpoint,
        )
    stats = {
        **trajectory.stats,
        "original_messages": trajectory.messages,
        "rewrite": {
            "endpoint": endpoint,
            "model": _model_name(gateway, endpoint),
            "prompt": REWRITE_PROMPT,
            "prompt_version": prompts.version,
            "language": language,
            "steps": [step.number for step in steps],
        },
    }
    return trajectory.model_copy(update={"messages": messages, "stats": stats})


async def rewrite_all(
    todo: Sequence[Trajectory],
    *,
    gateway: Any,
    endpoint: str,
    workers: int = 4,
    write: Callable[[Trajectory | RewriteRejection], Any],
) -> None:
    """:func:`rewrite_trajectory` over ``todo``, ``workers`` at a time; ``write`` gets each
    outcome (the rewritten trajectory or its rejection) as soon as it is done.

    The one loop of ``traj rewrite``, in this process or in a shard task of the Ray executor.
    """
    limit = asyncio.Semaphore(max(1, workers))

    async def one(trajectory: Trajectory) -> None:
        async with limit:
            outcome = await rewrite_trajectory(trajectory, gateway=gateway, endpoint=endpoint)
        write(outcome)

    await asyncio.gather(*(one(t) for t in todo))


def _steps(trajectory: Trajectory) -> list[_Step]:
    """The assistant steps to rewrite: every turn with tool calls, and the answering turn
    when its answer is in ``<answer>`` tags (the text before the tags is its thought)."""
    steps: list[_Step] = []
    number = 0
    for index, message in enumerate(trajectory.messages):
        if message.get("role") != "assistant":
            continue
        number += 1
        reasoning = str(message.get("reasoning_content") or "")
        field: Literal["content", "reasoning_content"] = (
            "reasoning_content" if reasoning.strip() else "content"
        )
        calls = [
            (
                str((call.get("function") or {}).get("name")),
                str((call.get("function") or {}).get("arguments") or ""),
            )
            for call in message.get("tool_calls") or []
        ]
        content = str(message.get("content") or "")
        if calls:
            thought = reasoning if field == "reasoning_content" else content
            steps.append(
                _Step(
                    index=index,
                    number=number,
                    field=field,
                    thought=thought,
                    calls=calls,
                    final=False,
                )
            )
            continue
        if field == "reasoning_content":
            steps.append(
                _Step(
                    index=index, number=number, field=field, thought=reasoning, calls=[], final=True
                )
            )
            continue
        tail = _ANSWER_TAIL.search(content)
        if tail and content[: tail.start()].strip():
            steps.append(
                _Step(
                    index=index,
                    number=number,
                    field="content",
                    thought=content[: tail.start()].strip(),
                    calls=[],
                    final=True,
                    answer_tail=tail.group(0).strip(),
                )
            )
    return [s for s in steps if not s.final or _is_last_answer(trajectory, s)]


def _is_last_answer(trajectory: Trajectory, step: _Step) -> bool:
    return trajectory.final_answer is not None and step.index == max(
        i for i, m in enumerate(trajectory.messages) if m.get("role") == "assistant"
    )


async def _ask(
    gateway: Any,
    endpoint: str,
    prompts: Any,
    language: str,
    trajectory: Trajectory,
    step: _Step,
    total: int,
    observation_chars: int,
) -> RewrittenStep | str:
    """The model's rewrite of ``step``, or why it could not be read."""
    user = prompts.render(
        "user",
        language,
        question=trajectory.question,
        steps=_history(trajectory, step.index, observation_chars),
        step=step.number,
        total=total,
        thought=step.thought.strip(),
        calls=[{"name": n, "arguments": a} for n, a in step.calls],
        final=step.final,
        answer=trajectory.final_answer or "",
    )
    messages = [
        {"role": "system", "content": prompts.render("system", language)},
        {"role": "user", "content": user},
    ]
    try:
        return await gateway.structured(endpoint, messages, RewrittenStep)
    except StructuredOutputError as exc:
        return f"the rewrite could not be read: {exc}"


def _history(trajectory: Trajectory, before: int, limit: int) -> list[dict[str, Any]]:
    """Earlier steps as calls and observations (thoughts left out: they may leak)."""
    steps: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for message in trajectory.messages[:before]:
        role = message.get("role")
        if role == "assistant":
            calls = []
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                names[str(call.get("id"))] = str(function.get("name"))
                calls.append({"name": function.get("name"), "arguments": function.get("arguments")})
            steps.append({"calls": calls, "observations": [], "notes": []})
        elif role == "tool" and steps:
            text = str(message.get("content") or "")
            if len(text) > limit:
                text = text[:limit] + " …[cut]"
            name = names.get(str(message.get("tool_call_id")), "a tool")
            steps[-1]["observations"].append({"name": name, "text": text})
        elif role == "user" and steps:
            steps[-1]["notes"].append(str(message.get("content") or ""))
    return steps


def _arguments(value: dict[str, Any] | str) -> Any:
    """Arguments as a value to compare: parsed JSON, else the stripped text."""
    if isinstance(value, str):
        try:
            return json.loads(value or "{}")
        except json.JSONDecodeError:
            return value.strip()
    return value


def _check(
    step: _Step, reply: RewrittenStep, trajectory: Trajectory
) -> list[tuple[RejectionReason, str]]:
    """What is wrong with the rewrite of ``step``: changed calls or answer, no thought, or a
    thought that still mentions the guidance."""
    from medresearcher.synthesis.leaks import guidance_mentions

    problems: list[tuple[RejectionReason, str]] = []
    if not reply.thought.strip():
        problems.append(("empty_thought", "the rewritten thought is empty"))
    mentions = guidance_mentions(reply.thought)
    if mentions:
        problems.append(("guidance_reference", f"still mentions the guidance ({mentions[0]!r})"))
    if step.final:
        if (reply.answer or "").strip() != (trajectory.final_answer or "").strip():
            problems.append(
                ("answer_changed", f"answer {trajectory.final_answer!r} became {reply.answer!r}")
            )
        if reply.tool_calls:
            problems.append(("tool_call_changed", "tool calls were added to the answering step"))
        return problems
    original = [(name, _arguments(arguments)) for name, arguments in step.calls]
    copied = [(call.name, _arguments(call.arguments)) for call in reply.tool_calls]
    if len(copied) != len(original):
        problems.append(("tool_call_changed", f"{len(original)} tool calls became {len(copied)}"))
    for position, (before, after) in enumerate(zip(original, copied, strict=False), start=1):
        if before[0] != after[0]:
            problems.append(
                ("tool_call_changed", f"call {position}: tool {before[0]!r} became {after[0]!r}")
            )
        elif before[1] != after[1]:
            problems.append(
                (
                    "tool_call_changed",
                    f"call {position} ({before[0]}): arguments "
                    f"{json.dumps(before[1], ensure_ascii=False)} became "
                    f"{json.dumps(after[1], ensure_ascii=False)}",
                )
            )
    return problems


def _skeleton_changes(original: list[dict[str, Any]], rewritten: list[dict[str, Any]]) -> list[str]:
    """Differences outside the thoughts: roles, tool calls, observations, other messages."""
    if len(original) != len(rewritten):
        return [f"{len(original)} messages became {len(rewritten)}"]
    changes = []
    for index, (before, after) in enumerate(zip(original, rewritten, strict=True)):
        if before.get("role") != "assistant":
            if before != after:
                changes.append(f"message {index} ({before.get('role')}) changed")
        elif before.get("tool_calls") != after.get("tool_calls"):
            changes.append(f"message {index}: tool calls changed")
    return changes


def _model_name(gateway: Any, endpoint: str) -> str:
    return str(gateway.endpoint(endpoint).settings.model)
