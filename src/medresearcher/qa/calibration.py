"""Difficulty calibration (paper §3.1.3; issue 7 §4–5): questions a model knows are too easy.

The paper tries each synthesised question against reference models and regenerates it with
complexity + 1 whenever any of them answers it correctly more than half of the time. The
public release never did; its own example question was answered closed-book by a general
model. Here each reference endpoint answers the question without tools ``k`` times (each
attempt with its own ``cache_salt``, so that a response cache does not hand back one answer
``k`` times), the answers are graded by the rule grader against the answer and its aliases,
and :func:`calibrate` regenerates through a caller-supplied callback until no model finds the
question easy or the maximum level is reached, keeping every round in ``difficulty.rounds``.

Grading is by rules only: an answer the rules cannot decide counts as not correct, so the
measured accuracy is a lower bound (the prompt asks for a short ``Answer:`` line to keep that
rare).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from medresearcher.errors import ConfigError
from medresearcher.grading.rules import grade_by_rules
from medresearcher.prompts import load_prompts
from medresearcher.schema import CalibrationRound, CheckResult, Difficulty, QARecord

if TYPE_CHECKING:
    from medresearcher.kg import GraphStore
    from medresearcher.llm import LLMGateway
    from medresearcher.sampling import GraphView

__all__ = [
    "calibrate",
    "calibrate_records",
    "closed_book_accuracy",
    "closed_book_answers",
    "closed_book_check",
]

log = logging.getLogger(__name__)

PROMPT = "closed_book"
Regenerate = Callable[[QARecord, int], Awaitable["QARecord | None"]]


async def closed_book_answers(
    gateway: LLMGateway, endpoint: str, record: QARecord, k: int
) -> list[tuple[str, bool]]:
    """``k`` closed-book replies of ``endpoint`` to ``record.question``, each with whether
    the rule grader found it correct."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    prompts = load_prompts(PROMPT)
    messages = [
        {"role": "system", "content": prompts.render("system", record.language)},
        {
            "role": "user",
            "content": prompts.render("user", record.language, question=record.question),
        },
    ]
    replies = await asyncio.gather(
        *(
            gateway.chat(endpoint, messages, cache_salt=f"closed_book:{attempt}")
            for attempt in range(k)
        )
    )
    graded = []
    for reply in replies:
        verdict = grade_by_rules(
            reply.content, record.answer, record.answer_aliases, question=record.question
        )
        graded.append((reply.content, verdict.correct))
    return graded


async def closed_book_accuracy(
    gateway: LLMGateway, endpoint: str, record: QARecord, k: int
) -> float:
    """Share of ``k`` closed-book answers of ``endpoint`` that the rule grader finds correct."""
    graded = await closed_book_answers(gateway, endpoint, record, k)
    return sum(correct for _, correct in graded) / k


async def closed_book_check(
    gateway: LLMGateway,
    endpoint: str,
    record: QARecord,
    k: int,
    *,
    too_easy_above: float = 0.5,
) -> CheckResult:
    """The optional ``closed_book`` check: fails when ``endpoint`` answers the question
    without tools more often than ``too_easy_above`` (``settings.qa.too_easy_above``)."""
    accuracy = await closed_book_accuracy(gateway, endpoint, record, k)
    detail = f"closed-book accuracy {accuracy:.2f} on {endpoint!r} (k={k})"
    if accuracy > too_easy_above:
        return CheckResult(passed=False, detail=f"{detail} > {too_easy_above:g}: too easy")
    return CheckResult(passed=True, detail=detail)


async def _panel_accuracy(
    gateway: LLMGateway, panel: Sequence[str], record: QARecord, k: int
) -> dict[str, float]:
    values = await asyncio.gather(
        *(closed_book_accuracy(gateway, endpoint, record, k) for endpoint in panel)
    )
    return dict(zip(panel, values, strict=True))


async def calibrate(
    record: QARecord,
    *,
    gateway: LLMGateway,
    panel: Sequence[str],
    k: int,
    too_easy_above: float = 0.5,
    max_level: int = 4,
    regenerate: Regenerate,
) -> QARecord:
    """Raise ``record``'s complexity until no reference model finds it easy (paper §3.1.3).

    Each round asks every endpoint of ``panel`` the current question ``k`` times and records a
    :class:`~medresearcher.schema.CalibrationRound`. When any accuracy exceeds
    ``too_easy_above``, ``regenerate(record, level + 1)`` is awaited for a harder record (a
    longer chain, deeper obfuscation, an extra constraint) and the next round tries it, up to
    ``max_level``; the callback returns None when it cannot make the question harder.

    Returns
    -------
    QARecord
        The last record tried, with every round in ``difficulty.rounds``, its level, and
        ``difficulty.calibrated`` True when the panel did not find it easy. Its ``calibration``
        check says the same, so that a still-too-easy question is visible in ``qa stats``.

    Raises
    ------
    ConfigError
        An empty panel, or an endpoint that is not configured.
    """
    if not panel:
        raise ConfigError(
            "calibration needs at least one reference endpoint: set [qa] calibration_panel"
        )
    for endpoint in panel:
        gateway.endpoint(endpoint)  # an unknown name fails before any call
    rounds = list(record.difficulty.rounds)
    current = record
    level = record.difficulty.level
    while True:
        accuracy = await _panel_accuracy(gateway, panel, current, k)
        too_easy = any(value > too_easy_above for value in accuracy.values())
        rounds.append(
            CalibrationRound(
                level=level, accuracy=accuracy, k=k, too_easy=too_easy, question=current.question
            )
        )
        if not too_easy:
            why = f"no reference model above {too_easy_above:g}"
            break
        if level >= max_level:
            why = f"too easy (> {too_easy_above:g}) at the maximum level"
            break
        harder = await regenerate(current, level + 1)
        if harder is None:
            why = f"too easy (> {too_easy_above:g}) and nothing harder at level {level + 1}"
            break
        log.info(
            "%s too easy at level %d %s; trying level %d", current.id, level, accuracy, level + 1
        )
        current, level = harder, level + 1
    best = max(accuracy.values())
    detail = f"{why}: highest closed-book accuracy {best:.2f} at level {level}"
    difficulty = Difficulty(level=level, calibrated=not too_easy, rounds=rounds)
    checks = {**current.checks, "calibration": CheckResult(passed=not too_easy, detail=detail)}
    return current.model_copy(update={"difficulty": difficulty, "checks": checks})


async def calibrate_records(
    records: Iterable[QARecord],
    *,
    gateway: LLMGateway,
    store: GraphStore,
    view: GraphView,
    panel: Sequence[str],
    k: int,
    too_easy_above: float = 0.5,
    max_level: int = 4,
    min_hops: int = 2,
    write: Callable[[QARecord], Any],
) -> list[int]:
    """:func:`calibrate` each record in turn, regenerating harder ones from the graph
    (:func:`~medresearcher.qa.batch.harder_question`); ``write`` gets each result as soon as
    it is done, with ``provenance["calibrated_from"]`` naming the record it started from.

    The one loop of ``qa calibrate``, in this process or in a shard task of the Ray
    executor; returns the level each record ended at.
    """
    from medresearcher.qa.batch import harder_question

    async def regenerate(record: QARecord, level: int) -> QARecord | None:
        return await harder_question(record, level, store, view, gateway=gateway, min_hops=min_hops)

    levels: list[int] = []
    for record in records:
        result = await calibrate(
            record,
            gateway=gateway,
            panel=panel,
            k=k,
            too_easy_above=too_easy_above,
            max_level=max_level,
            regenerate=regenerate,
        )
        provenance = {**result.provenance, "calibrated_from": record.id}
        write(result.model_copy(update={"provenance": provenance}))
        levels.append(result.difficulty.level)
    return levels
