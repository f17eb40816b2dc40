"""The expert reward r_expert of paper §4, and the judge's confirmation of wasted calls.

r_expert is a judge model's 0–1 preference for a rollout's reasoning against the QA record's
cheat sheet (the ordered steps of the knowledge-graph path, entities as placeholders), asked
through the gateway (``LLMGateway.structured``) with ``prompts/expert_judge.yaml``. Without a
judge endpoint the term is off: its weight counts as 0, and a warning says so; nothing here
makes up a judgement.

Trainers call reward functions synchronously from inside their own loops (TRL from the training
step, verl from executor threads), while the gateway is async and its HTTP clients belong to the
event loop that first used them. Each gateway is therefore driven from one private event loop
in a daemon thread (:class:`GatewayLoop`), shared by every reward that uses that gateway; a
batch of completions is judged concurrently there, within the endpoint's own concurrency limit.
Do not use the same gateway object from another running loop at the same time.

Judgements are cached in memory by their exact request (``cache=True``): GRPO scores many
identical rollouts (the same short answer, the same calls), and a repeated one costs no call.
The gateway's own response cache (``[cache] mode = "read-write"``) adds persistence across runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import threading
import weakref
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medresearcher.errors import ConfigError
from medresearcher.prompts import load_prompts
from medresearcher.training.completion import ParsedCompletion, parse_completion
from medresearcher.training.efficiency import column, efficiency_report, gold_forms

if TYPE_CHECKING:
    from medresearcher.llm import LLMGateway

__all__ = [
    "ExpertJudgement",
    "ExpertReward",
    "GatewayLoop",
    "JudgedEfficiencyPenalty",
    "WasteConfirmation",
    "make_expert_reward",
    "make_judged_efficiency_penalty",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


class ExpertJudgement(BaseModel):
    """The judge's answer: ``score`` in [0, 1] (a percentage is read as such)."""

    model_config = ConfigDict(extra="ignore")

    rationale: str = Field(default="", description="How the path compares with the plan.")
    score: float = Field(description="0 to 1: preference for the agent's path.")

    @field_validator("score", mode="before")
    @classmethod
    def _unit_interval(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().rstrip("%")
        number = float(value)
        if 1.0 < number <= 100.0:  # "80" or "80%": a percentage
            number /= 100.0
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"score {value!r} is not between 0 and 1")
        return number


class WasteConfirmation(BaseModel):
    """The judge's confirmation: which flagged calls (their numbers) were really wasted."""

    model_config = ConfigDict(extra="ignore")

    wasted: list[int] = Field(default_factory=list)


class GatewayLoop:
    """A private event loop in a daemon thread that runs one gateway's calls for sync callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="medresearcher-reward-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop and wait for its result (from any other thread)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("GatewayLoop.run was called from its own loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self, gateway: LLMGateway | None = None) -> None:
        """Close ``gateway`` on this loop (its clients live here), then stop the thread."""
        if not self._thread.is_alive():
            return
        if gateway is not None:
            self.run(gateway.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


_LOOPS: weakref.WeakKeyDictionary[Any, GatewayLoop] = weakref.WeakKeyDictionary()
_LOOPS_LOCK = threading.Lock()


def gateway_loop(gateway: LLMGateway) -> GatewayLoop:
    """The one private loop that drives ``gateway`` (created on first use)."""
    with _LOOPS_LOCK:
        runner = _LOOPS.get(gateway)
        if runner is None or not runner._thread.is_alive():
            runner = _LOOPS[gateway] = GatewayLoop()
        return runner


class _JudgeCalls:
    """Structured calls to one endpoint through a gateway's loop, with a request cache."""

    def __init__(self, gateway: LLMGateway | None, endpoint: str | None, cache: bool) -> None:
        self.gateway = gateway
        self.endpoint = endpoint or None
        if self.endpoint is not None:
            if gateway is None:
                raise ConfigError(f"judge endpoint {endpoint!r} was given without a gateway")
            gateway.settings.endpoint(self.endpoint)  # a ConfigError naming the known ones
        self.cache: dict[str, BaseModel] | None = {} if cache else None
        self.prompts = load_prompts("expert_judge")
        self.calls = 0  # requests sent to the gateway (cache misses)

    @property
    def enabled(self) -> bool:
        return self.endpoint is not None

    def run_batch(self, requests: Sequence[list[dict[str, str]] | None], schema: type[Any]) -> list:
        """The validated answer to each request (``None`` where none was asked or usable)."""
        assert self.gateway is not None and self.endpoint is not None
        return gateway_loop(self.gateway).run(self._batch(requests, schema))

    async def _batch(self, requests: Sequence[list[dict[str, str]] | None], schema: type[Any]):
        return await asyncio.gather(*(self._one(m, schema) for m in requests))

    async def _one(self, messages: list[dict[str, str]] | None, schema: type[Any]) -> Any:
        from medresearcher.llm.errors import StructuredOutputError

        if messages is None:
            return None
        key = hashlib.sha256(
            json.dumps([self.endpoint, schema.__name__, messages], ensure_ascii=False).encode()
        ).hexdigest()
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        assert self.gateway is not None and self.endpoint is not None
        self.calls += 1
        try:
            answer = await self.gateway.structured(self.endpoint, messages, schema, temperature=0.0)
        except StructuredOutputError as exc:
            log.warning("judge %r gave no valid %s: %s", self.endpoint, schema.__name__, exc)
            return None
        if self.cache is not None:
            self.cache[key] = answer
        return answer

    def language(self, language: str, text: str) -> str:
        if language != "auto":
            return language
        return "zh" if _CJK.search(text) else "en"

    def close(self) -> None:
        if self.gateway is not None:
            with _LOOPS_LOCK:
                runner = _LOOPS.pop(self.gateway, None)
            if runner is not None:
                runner.close(self.gateway)


def _call_line(call: Any, limit: int = 300) -> str:
    args = call.arguments
    text = json.dumps(args, ensure_ascii=False) if isinstance(args, (dict, list)) else str(args)
    return f"{call.name or '(unreadable call)'}({text[:limit]})"


class ExpertReward:
    """r_expert as a TRL reward function (``__name__`` ``expert_reward``).

    Reads the dataset columns ``question`` and ``cheat_sheet`` (a list of steps per row). A
    rollout without a cheat sheet, or one the judge gave no valid answer for, scores ``None``
    (TRL's "not applicable"; the composite counts it as 0). When disabled (no endpoint) every
    score is 0.0 and a warning says once that the term is off. An endpoint that fails for good
    raises ``LLMCallError``: an outage is not a judgement.
    """

    __name__ = "expert_reward"

    def __init__(
        self,
        gateway: LLMGateway | None,
        endpoint: str | None,
        *,
        cache: bool = True,
        language: Literal["auto", "en", "zh"] = "auto",
        max_reasoning_chars: int = 12000,
    ) -> None:
        self._judge = _JudgeCalls(gateway, endpoint, cache)
        self.language = language
        self.max_reasoning_chars = max_reasoning_chars
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._judge.enabled

    @property
    def calls(self) -> int:
        """Judge requests sent so far (cache hits excluded)."""
        return self._judge.calls

    def messages(
        self, parsed: ParsedCompletion, *, question: str, cheat_sheet: Sequence[str]
    ) -> list[dict[str, str]]:
        """The chat messages that ask for one judgement (system + user)."""
        language = self._judge.language(self.language, question)
        reasoning = parsed.reasoning.strip() or "(no reasoning written)"
        if len(reasoning) > self.max_reasoning_chars:
            reasoning = "[…] " + reasoning[-self.max_reasoning_chars :]
        prompts = self._judge.prompts
        user = prompts.render(
            "user",
            language,
            question=question,
            cheat_sheet=list(cheat_sheet),
            reasoning=reasoning,
            tool_calls=[_call_line(c) for c in parsed.calls],
            final_answer=parsed.final_answer,
        )
        return [
            {"role": "system", "content": prompts.render("system", language)},
            {"role": "user", "content": user},
        ]

    def __call__(
        self,
        completions: Sequence[Any],
        question: Sequence[str | None] | None = None,
        cheat_sheet: Sequence[Sequence[str] | None] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        n = len(completions)
        if not self.enabled:
            if not self._warned:
                log.warning("expert reward: no judge endpoint, so r_expert is off (scores 0)")
                self._warned = True
            return [0.0] * n
        questions = column(question, n, "question")
        sheets = column(cheat_sheet, n, "cheat_sheet")
        requests = []
        for i, completion in enumerate(completions):
            steps = [str(s) for s in (sheets[i] or []) if str(s).strip()]
            if not steps:
                requests.append(None)
                continue
            parsed = parse_completion(completion)
            requests.append(self.messages(parsed, question=questions[i] or "", cheat_sheet=steps))
        answers = self._judge.run_batch(requests, ExpertJudgement)
        return [None if a is None else float(a.score) for a in answers]

    def close(self) -> None:
        """Close the gateway on its private loop and stop that loop's thread."""
        self._judge.close()


def make_expert_reward(
    gateway: LLMGateway | None, endpoint: str | None, *, cache: bool = True
) -> ExpertReward:
    """r_expert on judge ``endpoint`` through ``gateway``; off (0, with a warning) without one.

    Raises
    ------
    ConfigError
        An endpoint that is not configured, or an endpoint without a gateway.
    """
    return ExpertReward(gateway, endpoint, cache=cache)


class JudgedEfficiencyPenalty:
    """The efficiency penalty with the rules' flagged calls confirmed by a judge.

    The rules of :mod:`medresearcher.training.efficiency` flag calls; the judge keeps those it
    agrees were wasted, and the penalty is the share of confirmed calls. Rollouts with nothing
    flagged cost no judge call. Where the judge gives no valid answer, the rules stand.
    Named ``efficiency_penalty`` for TRL's logs.
    """

    __name__ = "efficiency_penalty"

    def __init__(self, gateway: LLMGateway, endpoint: str, *, cache: bool = True) -> None:
        self._judge = _JudgeCalls(gateway, endpoint, cache)

    def __call__(
        self,
        completions: Sequence[Any],
        question: Sequence[str | None] | None = None,
        paradigm: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        n = len(completions)
        questions = column(question, n, "question")
        paradigms = column(paradigm, n, "paradigm")
        answers = column(kwargs.get("answer"), n, "answer")
        aliases = column(kwargs.get("answer_aliases"), n, "answer_aliases")
        reports, requests = [], []
        for i, completion in enumerate(completions):
            parsed = parse_completion(completion)
            report = efficiency_report(
                parsed,
                question=questions[i],
                paradigm=paradigms[i],
                answer_forms=gold_forms(answers[i], aliases[i]),
            )
            reports.append(report)
            if not report.wasted:
                requests.append(None)
                continue
            results = [o.text for o in parsed.observations]
            lines = [
                _call_line(c, 200) + (f" → {results[k][:200]}" if k < len(results) else "")
                for k, c in enumerate(parsed.calls)
            ]
            language = self._judge.language("auto", questions[i] or "")
            prompts = self._judge.prompts
            requests.append(
                [
                    {"role": "system", "content": prompts.render("efficiency_system", language)},
                    {
                        "role": "user",
                        "content": prompts.render(
                            "efficiency_user",
                            language,
                            question=questions[i] or "",
                            calls=lines,
                            flagged=[str(k) for k in report.wasted],
                        ),
                    },
                ]
            )
        answers_ = self._judge.run_batch(requests, WasteConfirmation)
        penalties = []
        for report, answer in zip(reports, answers_, strict=True):
            if answer is None:
                penalties.append(report.penalty)
                continue
            confirmed = set(answer.wasted) & set(report.wasted)
            penalties.append(len(confirmed) / report.calls if report.calls else 0.0)
        return penalties

    def close(self) -> None:
        self._judge.close()


def make_judged_efficiency_penalty(
    gateway: LLMGateway, endpoint: str, *, cache: bool = True
) -> JudgedEfficiencyPenalty:
    """The efficiency penalty, its flagged calls confirmed by the judge on ``endpoint``."""
    return JudgedEfficiencyPenalty(gateway, endpoint, cache=cache)
