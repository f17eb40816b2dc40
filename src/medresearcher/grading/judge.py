"""The LLM judge: what the rules leave undecided, a model decides (paper §5, BrowseComp style).

The judge reads the question, the agent's whole response and the gold answer, extracts the
response's final answer and says whether it means the same as the gold, as one JSON object
(:class:`JudgeOutput`): ``extracted_final_answer``, ``reasoning``, ``correct`` (``yes`` | ``no``)
and ``confidence``, the grader of BrowseComp and HLE that MedBrowseComp also uses
(docs/benchmarks-and-grading.md §1.3, §3.2).

Why the verdict is read strictly, from the ``correct`` field of valid JSON and nowhere else: the
public MedResearcher-R1 evaluator scans the judge's text for a standalone "A", so an explanation
that mentions "vitamin A" counts as correct, and simple-evals compares a whole regex match with
``"yes"``, so nothing ever does. Here an output that is not such an object, after the gateway's
one repair round, is ``unjudgeable``: counted wrong, kept with its raw text and reported.

Calls go through the gateway at temperature 0, so they are deterministic where the server is and
the gateway's response cache (``[cache] mode = "read-write"``) answers a repeated judgement
without a model call; ``replay`` makes a published grading exactly repeatable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medresearcher.prompts import load_prompts

if TYPE_CHECKING:
    from medresearcher.llm import LLMGateway

__all__ = ["Judge", "JudgeOutput", "Judgement"]

JudgeVerdict = Literal["correct", "incorrect", "unjudgeable"]
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


class JudgeOutput(BaseModel):
    """The judge's answer, validated: only ``correct`` decides the verdict.

    ``correct`` must be the string ``yes`` or ``no`` (any case, surrounding spaces and markdown
    emphasis tolerated); anything else fails validation. ``confidence`` is informative only and
    is read leniently ("85%" → 85, unreadable → None), so that it never makes a clear verdict
    unjudgeable.
    """

    model_config = ConfigDict(extra="ignore")

    extracted_final_answer: str | None = Field(
        default=None, description="The final exact answer in the response; null if none."
    )
    reasoning: str = Field(default="", description="Only how the answer differs from the gold.")
    correct: Literal["yes", "no"] = Field(description='"yes" or "no".')
    confidence: float | None = Field(default=None, description="0-100, stated by the response.")

    @field_validator("correct", mode="before")
    @classmethod
    def _yes_no(cls, value: Any) -> Any:
        return value.strip().strip("*_`'\" ").lower() if isinstance(value, str) else value

    @field_validator("extracted_final_answer", mode="before")
    @classmethod
    def _answer_text(cls, value: Any) -> Any:
        return (
            str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        )

    @field_validator("reasoning", mode="before")
    @classmethod
    def _reasoning_text(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("confidence", mode="before")
    @classmethod
    def _lenient_confidence(cls, value: Any) -> float | None:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, str):
            match = _NUMBER.search(value)
            value = float(match.group(0)) if match else None
        if isinstance(value, (int, float)):
            return min(100.0, max(0.0, float(value)))
        return None


@dataclass(frozen=True)
class Judgement:
    """What the judge decided about one response.

    ``raw`` keeps the judge's unreadable output when the verdict is ``unjudgeable`` (for review);
    ``prompt_version`` is the version of ``prompts/judge.yaml`` that asked.
    """

    verdict: JudgeVerdict
    model: str
    extracted: str | None = None
    reasoning: str | None = None
    confidence: float | None = None
    raw: str | None = None
    prompt_version: str = ""

    @property
    def grader(self) -> str:
        """``llm:<model>``, as results record which grader decided."""
        return f"llm:{self.model}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record, e.g. for ``Trajectory.judge`` or an EvalResult's metadata."""
        return {**asdict(self), "grader": self.grader}


class Judge:
    """A BrowseComp-style LLM judge on one gateway endpoint::

        async with LLMGateway(settings) as gateway:
            judge = Judge(gateway, "judge")
            judgement = await judge.judge(question=q, gold="Fabry disease", response=reply)

    Parameters
    ----------
    gateway:
        The gateway the calls (and their cache) go through.
    endpoint:
        The endpoint name (``[llm.judge]`` by default); pin its ``model`` for comparable runs.
    language:
        ``en`` or ``zh`` prompt, or ``auto``: Chinese when the question or gold is Chinese
        (xbench-DeepSearch), English otherwise.
    max_response_chars:
        Longer responses keep their end, where the final answer is, and lose their start.

    Raises
    ------
    ConfigError
        At construction, when the endpoint is not configured.
    """

    def __init__(
        self,
        gateway: LLMGateway,
        endpoint: str = "judge",
        *,
        language: Literal["auto", "en", "zh"] = "auto",
        max_response_chars: int = 8000,
    ) -> None:
        self.gateway = gateway
        self.endpoint = endpoint
        self.model = gateway.settings.endpoint(endpoint).model
        self.language = language
        self.max_response_chars = max_response_chars
        self.prompts = load_prompts("judge")

    @property
    def grader(self) -> str:
        return f"llm:{self.model}"

    def messages(
        self, *, question: str | None, gold: str, response: str, aliases: Sequence[str] = ()
    ) -> list[dict[str, str]]:
        """The chat messages that ask for one judgement (system + user)."""
        language = self.language
        if language == "auto":
            language = "zh" if _CJK.search(f"{question or ''}{gold}") else "en"
        if len(response) > self.max_response_chars:
            response = "[…] " + response[-self.max_response_chars :]
        variables = {
            "question": (question or "").strip(),
            "response": response.strip() or "(empty response)",
            "gold": gold.strip(),
            "aliases": [
                a.strip() for a in aliases if a and a.strip() and a.strip() != gold.strip()
            ],
        }
        return [
            {"role": "system", "content": self.prompts.render("system", language)},
            {"role": "user", "content": self.prompts.render("user", language, **variables)},
        ]

    async def judge(
        self,
        *,
        question: str | None,
        gold: str,
        response: str,
        aliases: Sequence[str] = (),
    ) -> Judgement:
        """Judge ``response`` against ``gold`` (and ``aliases``) for ``question``.

        Returns ``correct`` / ``incorrect`` from the output's ``correct`` field, or
        ``unjudgeable`` (with the raw output) when the output is no valid verdict even after
        one repair round. An endpoint that fails for good raises ``LLMCallError``: an outage is
        not a verdict, and the caller decides whether to retry the item later.
        """
        # Imported here: the rules must stay importable without the model client stack (~1 s).
        from medresearcher.llm.errors import StructuredOutputError

        messages = self.messages(question=question, gold=gold, response=response, aliases=aliases)
        version = self.prompts.version
        try:
            output = await self.gateway.structured(
                self.endpoint, messages, JudgeOutput, temperature=0
            )
        except StructuredOutputError as exc:
            return Judgement("unjudgeable", self.model, raw=exc.raw, prompt_version=version)
        extracted = (output.extracted_final_answer or "").strip() or None
        return Judgement(
            "correct" if output.correct == "yes" else "incorrect",
            self.model,
            extracted=extracted,
            reasoning=output.reasoning.strip() or None,
            confidence=output.confidence,
            prompt_version=version,
        )
