"""The ReAct loop (paper §2.2): thought → action → observation, until an answer or a budget.

One run, in order::

    system prompt + question
    repeat:
        a budget is spent (time, tokens, turns)?  → one forced final-answer turn, tools withheld
        the policy's next turn
        no tool call in it                        → that is the final answer
        run its calls concurrently; one tool message per call, in call order, with its id;
        calls that could not be read go back to the policy as one user message

Everything that can go wrong with a tool is an observation (see :class:`ToolBox`); a model or
policy that fails ends the run with termination ``error`` and the reason. The result is the
canonical :class:`~medresearcher.schema.Trajectory`.

Guidance (the MTG scaffold of §3.2) is extra system-prompt text used **for generation only**:
the policy sees ``system prompt + "\\n\\n" + guidance``, while ``Trajectory.messages`` keep the
clean system prompt, so that every export is a training prompt without the scaffold. The
guidance text itself is kept in ``stats["generation"]["guidance"]``, which is enough to rebuild
the exact prompt the policy saw.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from dataclasses import replace
from typing import Any

from medresearcher.agent.answer import extract_answer
from medresearcher.agent.limits import AgentLimits
from medresearcher.agent.policy import AssistantTurn, Policy, PolicyError
from medresearcher.agent.record import CallRecord, UsageTally, behaviour_stats, trajectory_id
from medresearcher.agent.steps import (
    AnswerStep,
    BudgetStep,
    CallStep,
    ErrorStep,
    MalformedCallStep,
    ObservationStep,
    Step,
    StepCallback,
    ThoughtStep,
    summarize_observation,
)
from medresearcher.llm.errors import LLMError
from medresearcher.llm.types import ToolCall
from medresearcher.prompts import load_prompts
from medresearcher.schema import Trajectory, utc_now
from medresearcher.stage_settings import AgentSettings
from medresearcher.tokens import TokenCounter, count_message_tokens, qwen25_counter
from medresearcher.tools.base import Observation, ToolBox

__all__ = ["run_agent"]

log = logging.getLogger(__name__)

PROMPTS = "agent"


async def run_agent(
    question: str,
    *,
    policy: Policy,
    toolbox: ToolBox,
    limits: AgentLimits | AgentSettings | None = None,
    language: str | None = None,
    qa_id: str | None = None,
    rollout: int = 0,
    guidance: str | None = None,
    on_step: StepCallback | None = None,
    counter: TokenCounter | None = None,
) -> Trajectory:
    """Answer ``question`` with ``policy`` and the tools of ``toolbox``.

    Parameters
    ----------
    question:
        The user turn, verbatim.
    policy:
        Decides each turn (:class:`~medresearcher.agent.policy.LLMPolicy`, path-guided, ...).
    toolbox:
        The tools the policy may call; per-tool timeouts and output cuts live there.
    limits:
        :class:`AgentLimits`, or the ``[agent]`` settings (default: ``AgentSettings()``).
    language:
        ``en`` or ``zh`` prompts (default: the settings' language, else ``en``).
    qa_id, rollout:
        Carried into the record and its id.
    guidance:
        Scaffold text for the system prompt of generation only (recorded as ``guidance="mtg"``).
    on_step:
        Called (or awaited) with each :mod:`~medresearcher.agent.steps` record as it happens.
    counter:
        Token counter for the budget (default: the bundled Qwen2.5 tokenizer).

    Returns
    -------
    Trajectory
        Never raises for tool, model or policy failures: they are in ``termination``.
    """
    if isinstance(limits, AgentSettings):
        language = language or limits.language
        limits = AgentLimits.from_settings(limits)
    run = _AgentRun(
        question,
        policy=policy,
        toolbox=toolbox,
        limits=limits or AgentLimits(),
        language=language or "en",
        qa_id=qa_id,
        rollout=rollout,
        guidance=guidance,
        on_step=on_step,
        counter=counter or qwen25_counter(),
    )
    return await run.run()


class _AgentRun:
    """The state of one run; :meth:`run` is the loop, the other methods its parts."""

    def __init__(
        self,
        question: str,
        *,
        policy: Policy,
        toolbox: ToolBox,
        limits: AgentLimits,
        language: str,
        qa_id: str | None,
        rollout: int,
        guidance: str | None,
        on_step: StepCallback | None,
        counter: TokenCounter,
    ) -> None:
        self.question = question
        self.policy = policy
        self.toolbox = toolbox
        self.limits = limits
        self.language = language
        self.qa_id = qa_id
        self.rollout = rollout
        self.guidance = guidance.strip() if guidance and guidance.strip() else None
        self.on_step = on_step
        self.counter = counter
        self.prompts = load_prompts(PROMPTS)
        self.schemas = toolbox.schemas()
        self.system = self.prompts.render("system", language, tool_names=toolbox.names())
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": question},
        ]
        self.calls: list[CallRecord] = []
        self.usage = UsageTally()
        self.turns = 0
        self.ignored_calls = 0
        self._used_ids: set[str] = set()
        self._schema_tokens = counter.count(json.dumps(self.schemas, ensure_ascii=False))
        self._started = time.monotonic()
        self._deadline = self._started + limits.timeout_s

    # ------------------------------------------------------------------ the loop

    async def run(self) -> Trajectory:
        try:
            while True:
                spent = self._spent_budget()
                if spent is not None:
                    return await self._force_answer(*spent)
                try:
                    turn = await self._ask(self.schemas, self._deadline)
                except asyncio.TimeoutError:
                    detail = self._timeout_detail("a model turn")
                    return await self._force_answer("timeout", detail)
                if not turn.tool_calls and not turn.tool_call_errors:
                    return await self._finish(turn, "answer", forced=False)
                await self._act(turn)
        except (LLMError, PolicyError) as exc:
            detail = str(exc)
            log.info("agent run stopped: %s", detail)
            await self._emit(ErrorStep(detail=detail))
            return self._record(None, "error", detail, forced=False, answer_form="none")

    # ------------------------------------------------------------------ parts

    def _spent_budget(self) -> tuple[str, str] | None:
        """The first budget that is spent, as (termination reason, detail), else ``None``."""
        if time.monotonic() >= self._deadline:
            return "timeout", self._timeout_detail("the next turn")
        tokens = self._conversation_tokens()
        if tokens >= self.limits.max_tokens:
            return "token_budget", (
                f"{tokens} conversation tokens ({self.counter.name}) reached the limit of "
                f"{self.limits.max_tokens}"
            )
        if self.turns >= self.limits.max_turns:
            return (
                "max_turns",
                f"{self.turns} model turns used; the limit is {self.limits.max_turns}",
            )
        return None

    def _timeout_detail(self, what: str) -> str:
        return f"the {self.limits.timeout_s:g} s time limit was reached before {what}"

    def _generation_messages(self) -> list[dict[str, Any]]:
        """What the policy sees: the recorded messages, with the guidance in the system prompt."""
        if self.guidance is None:
            return list(self.messages)
        system = {"role": "system", "content": self.system + "\n\n" + self.guidance}
        return [system, *self.messages[1:]]

    def _conversation_tokens(self) -> int:
        return count_message_tokens(self._generation_messages(), self.counter) + (
            self._schema_tokens if self.schemas else 0
        )

    async def _ask(self, tools: list[dict[str, Any]], deadline: float) -> AssistantTurn:
        """One policy turn, bounded by ``deadline`` (``asyncio.TimeoutError`` past it)."""
        remaining = max(deadline - time.monotonic(), 0.0)
        turn = await asyncio.wait_for(
            self.policy.next_turn(self._generation_messages(), tools, rollout=self.rollout),
            timeout=remaining,
        )
        self.turns += 1
        self.usage.add(turn)
        calls, unreadable = len(turn.tool_calls), len(turn.tool_call_errors)
        log.info("turn %d: %d tool calls, %d unreadable", self.turns, calls, unreadable)
        return turn

    async def _act(self, turn: AssistantTurn) -> None:
        """Record the turn, run its calls concurrently, and pair each result with its call."""
        calls = self._with_unique_ids(turn.tool_calls)
        turn.tool_calls = calls
        self.messages.append(turn.to_message())
        await self._emit(ThoughtStep(self.turns, turn.content, turn.reasoning_content))
        for call in calls:
            await self._emit(CallStep(self.turns, call.id, call.name, call.arguments))
        observations = await self._run_calls(calls)
        for call, observation in zip(calls, observations, strict=True):
            self.messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": observation.text}
            )
            self.calls.append(
                CallRecord(
                    turn=self.turns,
                    call_id=call.id,
                    name=call.name,
                    error=observation.error,
                    known=call.name in self.toolbox,
                    sources=list(observation.sources),
                    truncated=observation.truncated,
                    elapsed_s=observation.elapsed_s,
                )
            )
            await self._emit(
                ObservationStep(
                    turn=self.turns,
                    call_id=call.id,
                    name=call.name,
                    summary=summarize_observation(observation.text),
                    sources=list(observation.sources),
                    error=observation.error,
                    truncated=observation.truncated,
                    elapsed_s=observation.elapsed_s,
                )
            )
        if turn.tool_call_errors:
            errors = list(turn.tool_call_errors)
            self.calls.extend(
                CallRecord(turn=self.turns, call_id=None, name=None, error=True, known=False)
                for _ in errors
            )
            feedback = self.prompts.render("tool_call_error", self.language, errors=errors)
            self.messages.append({"role": "user", "content": feedback})
            await self._emit(MalformedCallStep(self.turns, errors))

    async def _run_calls(self, calls: list[ToolCall]) -> list[Observation]:
        """Run the calls at once; a call still running at the deadline gets an error result."""
        if not calls:
            return []
        tasks = [
            asyncio.ensure_future(self.toolbox.call(call.name, call.arguments)) for call in calls
        ]
        remaining = max(self._deadline - time.monotonic(), 0.0)
        _, pending = await asyncio.wait(tasks, timeout=remaining)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        cancelled = Observation(
            text=f"Error: cancelled: the run's {self.limits.timeout_s:g} s time limit was reached",
            error=True,
        )
        return [cancelled if task in pending else task.result() for task in tasks]

    def _with_unique_ids(self, calls: list[ToolCall]) -> list[ToolCall]:
        """The calls with ids unique in the run, so that every result pairs with one call."""
        unique = []
        for index, call in enumerate(calls, start=1):
            call_id = call.id
            suffix = 0
            while not call_id or call_id in self._used_ids:
                suffix += 1
                call_id = f"call_{self.turns}_{index}" + (f"_{suffix}" if suffix > 1 else "")
            self._used_ids.add(call_id)
            unique.append(call if call_id == call.id else replace(call, id=call_id))
        return unique

    async def _force_answer(self, reason: str, detail: str) -> Trajectory:
        """Withhold the tools and ask once for the best answer now; this ends the run."""
        log.info("budget spent (%s): %s", reason, detail)
        await self._emit(BudgetStep(reason, detail))
        prompt = self.prompts.render("forced_answer", self.language, reason=reason)
        self.messages.append({"role": "user", "content": prompt})
        deadline = max(self._deadline, time.monotonic()) + self.limits.answer_grace_s
        try:
            turn = await self._ask([], deadline)
        except asyncio.TimeoutError:
            detail += f"; the forced answer took longer than {self.limits.answer_grace_s:g} s"
            await self._emit(AnswerStep(self.turns, None, "", True, reason))
            return self._record(None, reason, detail, forced=True, answer_form="none")
        return await self._finish(turn, reason, forced=True, detail=detail)

    async def _finish(
        self, turn: AssistantTurn, termination: str, *, forced: bool, detail: str | None = None
    ) -> Trajectory:
        """Record the answering turn and end the run (tool calls in a forced turn are dropped:
        nothing would answer them)."""
        if forced and (turn.tool_calls or turn.tool_call_errors):
            self.ignored_calls += len(turn.tool_calls) + len(turn.tool_call_errors)
        self.messages.append(turn.to_message(with_tool_calls=False))
        answer, form = extract_answer(turn.content)
        if answer is None and detail is None:
            detail = f"the policy replied with no text (finish_reason={turn.finish_reason})"
        await self._emit(AnswerStep(self.turns, answer, turn.content, forced, termination))
        return self._record(answer, termination, detail, forced=forced, answer_form=form)

    async def _emit(self, step: Step) -> None:
        if self.on_step is None:
            return
        result = self.on_step(step)
        if inspect.isawaitable(result):
            await result

    # ------------------------------------------------------------------ the record

    def _record(
        self,
        answer: str | None,
        termination: str,
        detail: str | None,
        *,
        forced: bool,
        answer_form: str,
    ) -> Trajectory:
        mode = "mtg" if self.guidance else "none"
        stats = {
            "turns": self.turns,
            **behaviour_stats(self.calls),
            "forced_answer": forced,
            "answer_form": answer_form,
            "ignored_calls": self.ignored_calls,
            "conversation_tokens": self._conversation_tokens(),
            "token_counter": self.counter.name,
            "elapsed_s": round(time.monotonic() - self._started, 4),
            "tool_time_s": round(sum(call.elapsed_s for call in self.calls), 4),
            "calls": [call.to_dict() for call in self.calls],
            "generation": {
                "prompt": PROMPTS,
                "prompt_version": self.prompts.version,
                "language": self.language,
                "guidance": self.guidance,
                "guidance_placement": "system" if self.guidance else None,
            },
        }
        return Trajectory(
            id=trajectory_id(self.qa_id or self.question, self.policy.name, self.rollout, mode),
            qa_id=self.qa_id,
            rollout=self.rollout,
            policy=self.policy.name,
            guidance=mode,
            question=self.question,
            messages=self.messages,
            tools=self.schemas,
            final_answer=answer,
            termination=termination,  # type: ignore[arg-type]
            termination_detail=detail,
            stats=stats,
            usage=self.usage.to_dict(),
            created_at=utc_now().isoformat(timespec="seconds"),
        )
