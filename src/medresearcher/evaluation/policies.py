"""What :func:`~medresearcher.evaluation.runner.run_eval` is given: policies and a grader.

The runner drives (item, rollout) pairs; which agent answers and how an answer is graded
are arguments, so the same runner evaluates a model endpoint (:func:`llm_policies`), the
offline path-guided policy over QA records (:func:`path_guided_policies`), and grades by
rules then an optional LLM judge (:func:`make_grader`).
The callable types the runner accepts are declared here too; ``runner`` re-exports them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from medresearcher.agent import Policy
from medresearcher.errors import InputError
from medresearcher.schema import QARecord

if TYPE_CHECKING:
    from medresearcher.config import Settings
    from medresearcher.evaluation.items import BenchmarkItem
    from medresearcher.llm import LLMGateway

__all__ = [
    "GradeFn",
    "Graded",
    "PolicyFactory",
    "llm_policies",
    "make_grader",
    "path_guided_policies",
    "path_guided_turns",
]


class Graded(Protocol):
    """What a grader returns (:class:`medresearcher.grading.grade.GradeResult`)."""

    verdict: str
    grader: str
    detail: str | None
    extracted: str | None


GradeFn = Callable[["BenchmarkItem", "str | None"], Awaitable[Graded]]
"""``grade_fn(item, prediction)``: grade one final answer against the item's gold."""

PolicyFactory = Callable[["BenchmarkItem", int], Policy]
"""``policy_factory(item, rollout)``: the policy of one run."""


def llm_policies(gateway: LLMGateway, endpoint: str, **params: Any) -> PolicyFactory:
    """One :class:`~medresearcher.agent.LLMPolicy` for every pair (rollouts salt its cache)."""
    from medresearcher.agent import LLMPolicy

    policy = LLMPolicy(gateway, endpoint, **params)
    return lambda item, rollout: policy


def path_guided_policies(records: Mapping[str, QARecord], settings: Settings) -> PolicyFactory:
    """The offline path-guided policy of each item's QA record (benchmark ``qa`` only).

    The policy follows the record's chain with the real tools; it needs the workspace's
    knowledge graph for entity names. An item without a record is an :class:`InputError`.
    """
    from medresearcher.agent.path_guided import policy_for

    def factory(item: BenchmarkItem, rollout: int) -> Policy:
        record = records.get(item.item_id)
        if record is None:
            raise InputError(
                f"no QA record with id {item.item_id!r}: the path-guided policy follows QA "
                "records, so it evaluates the qa benchmark only"
            )
        if item.question != record.question:
            record = record.model_copy(update={"question": item.question})
        return policy_for(record, settings)

    return factory


def path_guided_turns(records: Iterable[QARecord], floor: int) -> int:
    """Turns a path-guided run may need: up to four calls per hop, and room to say why."""
    return max([floor, *(4 * record.hops + 8 for record in records)])


def make_grader(judge: Any = None) -> GradeFn:
    """Rules first, then ``judge`` (a :class:`medresearcher.grading.grade.Judge`) if given."""

    async def grade_item(item: BenchmarkItem, prediction: str | None) -> Graded:
        from medresearcher.grading.grade import grade

        return await grade(
            prediction, item.gold, tuple(item.aliases), question=item.question, judge=judge
        )

    return grade_item
