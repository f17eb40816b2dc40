"""Failure augmentation (paper §3.2): teach recovery from tool failures that really happen.

The paper simulates tool failures in 5 % of its trajectories so that a trained agent learns
to retry or change course instead of giving up or inventing a result. A failure is only
instructive when the trajectory then *recovers*, so every change made here is followed, in
the same trajectory, by a successful call of the same tool with equivalent arguments.

Method
------
A trajectory is selected with probability ``rate`` (default 0.05) by a stable hash of
``(seed, trajectory id)``: the same file and seed always select the same trajectories, and
the share over many trajectories is ``rate``. Trajectories without a successful tool call
cannot be augmented and are left as they are (so the share is of trajectories that have one).
A selected trajectory gets exactly one failure, of a kind drawn with the same seed —
``timeout``, ``empty`` result, ``http_503`` or ``http_429`` — in the words the toolbox
uses for real failures (``Error: <tool>: timed out after 60 s``, ...). Two edits:

- **replace**: a successful observation is replaced by the failure text, *only* where the
  next assistant turn repeats the same tool with equivalent arguments and that call
  succeeded; that turn's thought is prefixed with a templated retry sentence
  (``prompts/augment.yaml``). Only the next turn qualifies, so no reasoning in between can
  rest on the observation that was taken away. The original text is kept in
  ``stats["augmented"]["original"]``.
- **insert**: a successful call is duplicated as a failed attempt just before it: the turn
  that made the call now makes a copy of it (a new call id, ``<id>_failed``) whose result is
  the failure text, and a new assistant turn — a templated "retrying" thought and the
  original call with its original id and result — follows that turn's results. Turns
  followed by a user message (unreadable-call feedback, a forced-answer prompt) are not used.

``method="auto"`` (the default) replaces where the trajectory has such a pair and inserts
otherwise. Calls are *equivalent* when they name the same tool and their arguments are equal
after dropping the keys that only shape the result (``goal``, ``k``, ``top_k``,
``max_results``, ``limit``) and folding case, whitespace and the order of list items.

Every call still has exactly one result with its id; ``stats["calls"]`` and the behaviour
statistics (``errors``, ``recovered_errors``, …) are recomputed, ``stats["turns"]`` and
``stats["conversation_tokens"]`` follow the edit, and ``stats["augmented"]`` says what was
changed. The trajectory keeps its id.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from medresearcher.agent.record import CallRecord, behaviour_stats
from medresearcher.errors import InputError
from medresearcher.prompts import load_prompts
from medresearcher.schema import Trajectory
from medresearcher.tokens import TokenCounter, count_message_tokens, qwen25_counter

__all__ = [
    "DEFAULT_RATE",
    "FAILURE_KINDS",
    "IGNORED_ARGUMENTS",
    "augment_failures",
    "augment_if_selected",
    "augment_trajectory",
    "canonical_arguments",
    "failure_text",
    "selected_for_failure",
]

#: The paper's share of trajectories with a simulated tool failure (§3.2).
DEFAULT_RATE = 0.05
FAILURE_KINDS = ("timeout", "empty", "http_503", "http_429")
#: Argument keys that shape a result without changing what is asked for.
IGNORED_ARGUMENTS = frozenset({"goal", "k", "top_k", "max_results", "limit"})

Method = Literal["auto", "replace", "insert"]
METHODS = ("auto", "replace", "insert")
PROMPTS = "augment"


def failure_text(kind: str, tool: str, *, timeout_s: float = 60.0) -> str:
    """A tool observation for a failure of ``kind``, worded like the toolbox's own errors."""
    texts = {
        "timeout": f"Error: {tool}: timed out after {timeout_s:g} s",
        "empty": f"Error: {tool}: the source returned an empty result (0 records)",
        "http_503": f"Error: {tool}: HTTPStatusError: 503 Service Unavailable (the source is "
        "temporarily unavailable; try again later)",
        "http_429": f"Error: {tool}: HTTPStatusError: 429 Too Many Requests (rate limit "
        "exceeded; retry in a few seconds)",
    }
    if kind not in texts:
        raise InputError(f"unknown failure kind {kind!r}; the kinds are {', '.join(texts)}")
    return texts[kind]


def canonical_arguments(arguments: str | Mapping[str, Any] | None) -> str:
    """The arguments as compared for equivalence (see the module notes)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return " ".join(arguments.casefold().split())
    if not isinstance(arguments, Mapping):
        return json.dumps(_fold(arguments), sort_keys=True)
    kept = {k: _fold(v) for k, v in arguments.items() if k not in IGNORED_ARGUMENTS}
    return json.dumps(kept, sort_keys=True, ensure_ascii=False)


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.casefold().split())
    if isinstance(value, list):
        return sorted((_fold(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, Mapping):
        return {k: _fold(v) for k, v in value.items()}
    return value


def _unit(*parts: object) -> float:
    blob = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") / 2**64


def selected_for_failure(trajectory_id: str, rate: float, seed: int) -> bool:
    """Whether the trajectory is drawn for a failure: a stable Bernoulli(``rate``) draw."""
    if not 0.0 <= rate <= 1.0:
        raise InputError(f"the failure augmentation rate must be in [0, 1], got {rate}")
    return _unit("augment-select", seed, trajectory_id) < rate


@dataclass(frozen=True)
class _Call:
    turn: int  # the assistant turn (1-based), as CallRecord.turn counts them
    message: int  # index of the assistant message
    position: int  # index in its tool_calls
    result: int  # index of its tool message
    id: str
    name: str
    arguments: str
    error: bool
    followed_by_user: bool  # the turn's results are followed by a user message


def augment_trajectory(
    trajectory: Trajectory,
    *,
    seed: int = 0,
    method: Method = "auto",
    kind: str | None = None,
    timeout_s: float = 60.0,
    counter: TokenCounter | None = None,
) -> Trajectory | None:
    """``trajectory`` with one simulated, recovered tool failure; ``None`` if it has no
    call that can fail that way (or was augmented before).

    ``kind`` is one of :data:`FAILURE_KINDS` (default: drawn with ``seed``); ``counter``
    recounts the conversation tokens (default: the bundled Qwen2.5 tokenizer).
    """
    if method not in METHODS:
        raise InputError(f"unknown augmentation method {method!r}; use {', '.join(METHODS)}")
    if trajectory.stats.get("augmented"):
        return None
    rng = random.Random(_unit("augment-edit", seed, trajectory.id))
    calls = _calls(trajectory)
    pairs = _replace_pairs(calls) if method in ("auto", "replace") else []
    kind = kind or rng.choice(FAILURE_KINDS)
    if pairs:
        failed, recovered = rng.choice(pairs)
        return _replace(trajectory, failed, recovered, kind, timeout_s, seed, counter)
    if method == "replace":
        return None
    candidates = [c for c in calls if not c.error and not c.followed_by_user]
    if not candidates:
        return None
    return _insert(trajectory, rng.choice(candidates), kind, timeout_s, seed, counter)


def augment_if_selected(
    trajectory: Trajectory,
    *,
    rate: float = DEFAULT_RATE,
    seed: int = 0,
    method: Method = "auto",
    timeout_s: float = 60.0,
    counter: TokenCounter | None = None,
) -> Trajectory:
    """The trajectory, augmented when :func:`selected_for_failure` draws it and it can be."""
    if not selected_for_failure(trajectory.id, rate, seed):
        return trajectory
    augmented = augment_trajectory(
        trajectory, seed=seed, method=method, timeout_s=timeout_s, counter=counter
    )
    if augmented is None:
        return trajectory
    augmented.stats["augmented"]["rate"] = rate
    return augmented


def augment_failures(
    trajectories: Iterable[Trajectory],
    *,
    rate: float = DEFAULT_RATE,
    seed: int = 0,
    method: Method = "auto",
    timeout_s: float = 60.0,
) -> Iterator[Trajectory]:
    """Every trajectory, a ``rate`` share of them with one recovered tool failure."""
    for trajectory in trajectories:
        yield augment_if_selected(
            trajectory, rate=rate, seed=seed, method=method, timeout_s=timeout_s
        )


# ---------------------------------------------------------------------------- reading


def _calls(trajectory: Trajectory) -> list[_Call]:
    """The trajectory's tool calls with where they and their results are."""
    messages = trajectory.messages
    errors = {
        str(r.get("call_id")): bool(r.get("error"))
        for r in trajectory.stats.get("calls") or []
        if isinstance(r, Mapping) and r.get("call_id")
    }
    results: dict[str, int] = {}
    for index, message in enumerate(messages):
        if message.get("role") == "tool" and message.get("tool_call_id"):
            results.setdefault(str(message["tool_call_id"]), index)
    calls: list[_Call] = []
    turn = 0
    for index, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        turn += 1
        after = index + 1
        while after < len(messages) and messages[after].get("role") == "tool":
            after += 1
        followed_by_user = after < len(messages) and messages[after].get("role") == "user"
        for position, call in enumerate(message.get("tool_calls") or []):
            call_id = str(call.get("id") or "")
            function = call.get("function") or {}
            if call_id not in results or not function.get("name"):
                continue
            content = str(messages[results[call_id]].get("content") or "")
            calls.append(
                _Call(
                    turn=turn,
                    message=index,
                    position=position,
                    result=results[call_id],
                    id=call_id,
                    name=str(function["name"]),
                    arguments=str(function.get("arguments") or ""),
                    error=errors.get(call_id, content.startswith("Error:")),
                    followed_by_user=followed_by_user,
                )
            )
    return calls


def _replace_pairs(calls: list[_Call]) -> list[tuple[_Call, _Call]]:
    """(call to fail, the equivalent successful call of the very next turn) pairs."""
    pairs = []
    for first in calls:
        if first.error:
            continue
        key = canonical_arguments(first.arguments)
        for later in calls:
            if (
                later.turn == first.turn + 1
                and not later.error
                and later.name == first.name
                and canonical_arguments(later.arguments) == key
            ):
                pairs.append((first, later))
                break
    return pairs


def _call_records(trajectory: Trajectory, calls: list[_Call]) -> list[CallRecord]:
    """The stored call records, or records read from the messages when they are missing or
    do not cover every call (a trajectory from elsewhere)."""
    stored = trajectory.stats.get("calls")
    if isinstance(stored, list) and stored:
        records = [CallRecord(**record) for record in stored]
        if {c.id for c in calls} <= {r.call_id for r in records}:
            return records
    return [CallRecord(turn=c.turn, call_id=c.id, name=c.name, error=c.error) for c in calls]


# ---------------------------------------------------------------------------- editing


def _retry_thought(trajectory: Trajectory, tool: str, kind: str) -> str:
    language = str((trajectory.stats.get("generation") or {}).get("language") or "en")
    prompts = load_prompts(PROMPTS)
    reason = prompts.render(f"reason_{kind}", language)
    return prompts.render("retry", language, tool=tool, reason=reason)


def _replace(
    trajectory: Trajectory,
    failed: _Call,
    recovered: _Call,
    kind: str,
    timeout_s: float,
    seed: int,
    counter: TokenCounter | None,
) -> Trajectory:
    messages = copy.deepcopy(trajectory.messages)
    original = str(messages[failed.result].get("content") or "")
    messages[failed.result]["content"] = failure_text(kind, failed.name, timeout_s=timeout_s)
    retry = messages[recovered.message]
    lead = _retry_thought(trajectory, failed.name, kind)
    retry["content"] = f"{lead} {retry.get('content') or ''}".strip()
    records = [
        replace(r, error=True, sources=[], truncated=False) if r.call_id == failed.id else r
        for r in _call_records(trajectory, _calls(trajectory))
    ]
    change = {
        "method": "replace",
        "kind": kind,
        "tool": failed.name,
        "failed_call_id": failed.id,
        "recovered_by": recovered.id,
        "message_index": failed.result,
        "original": original,
    }
    return _rebuilt(trajectory, messages, records, change, seed, counter, added_turns=0)


def _insert(
    trajectory: Trajectory,
    call: _Call,
    kind: str,
    timeout_s: float,
    seed: int,
    counter: TokenCounter | None,
) -> Trajectory:
    messages = copy.deepcopy(trajectory.messages)
    used = {str(c.get("id")) for m in messages for c in m.get("tool_calls") or [] if c.get("id")}
    failed_id = f"{call.id}_failed"
    while failed_id in used:
        failed_id += "_"
    original_call = messages[call.message]["tool_calls"][call.position]
    original_result = messages[call.result]
    failed_call = {**copy.deepcopy(original_call), "id": failed_id}
    messages[call.message]["tool_calls"][call.position] = failed_call
    messages[call.result] = {
        **original_result,
        "tool_call_id": failed_id,
        "content": failure_text(kind, call.name, timeout_s=timeout_s),
    }
    end = call.message + 1
    while end < len(messages) and messages[end].get("role") == "tool":
        end += 1
    retry_turn = {
        "role": "assistant",
        "content": _retry_thought(trajectory, call.name, kind),
        "tool_calls": [original_call],
    }
    messages[end:end] = [retry_turn, dict(original_result)]

    records = _call_records(trajectory, _calls(trajectory))
    k = next(i for i, r in enumerate(records) if r.call_id == call.id)
    mine = records[k]
    failed_record = replace(
        mine,
        call_id=failed_id,
        error=True,
        sources=[],
        truncated=False,
        elapsed_s=timeout_s if kind == "timeout" else 0.0,
    )
    rest = records[k + 1 :]
    records = [
        *records[:k],
        failed_record,
        *(r for r in rest if r.turn <= mine.turn),
        replace(mine, turn=mine.turn + 1),
        *(replace(r, turn=r.turn + 1) for r in rest if r.turn > mine.turn),
    ]
    change = {
        "method": "insert",
        "kind": kind,
        "tool": call.name,
        "failed_call_id": failed_id,
        "recovered_by": call.id,
        "message_index": call.result,
        "inserted_messages": [end, end + 1],
    }
    return _rebuilt(trajectory, messages, records, change, seed, counter, added_turns=1)


def _rebuilt(
    trajectory: Trajectory,
    messages: list[dict[str, Any]],
    records: list[CallRecord],
    change: dict[str, Any],
    seed: int,
    counter: TokenCounter | None,
    *,
    added_turns: int,
) -> Trajectory:
    stats = copy.deepcopy(trajectory.stats)
    stats.update(behaviour_stats(records))
    stats["calls"] = [record.to_dict() for record in records]
    if "turns" in stats:
        stats["turns"] = int(stats["turns"]) + added_turns
    if isinstance(stats.get("conversation_tokens"), int):
        counter = counter or qwen25_counter()
        delta = count_message_tokens(messages, counter) - count_message_tokens(
            trajectory.messages, counter
        )
        stats["conversation_tokens"] += delta
    stats["augmented"] = {**change, "seed": seed}
    return trajectory.model_copy(update={"messages": messages, "stats": stats})
