"""One benchmark item, whatever benchmark it came from.

Every loader (:mod:`medresearcher.evaluation.loaders`) turns its file format into this one
record, so that the runner, the grader and the metrics of paper §5 (MedBrowseComp, GAIA,
xbench-DeepSearch, our own synthesised QA) never branch on where a question came from. The
fields by which results are broken down (task, hops, level, specialties…) sit in ``metadata``
and are carried into each :class:`~medresearcher.schema.EvalResult`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["BenchmarkItem"]


class BenchmarkItem(BaseModel):
    """A question to put to an agent, with the answer it is graded against.

    ``item_id`` is the benchmark's own id where it has one (GAIA ``task_id``, xbench ``id``,
    a QA record's ``id``, a PubMed id) and otherwise a stable hash of the question and gold
    answer, never a row number: results stay linked to their item when a file is re-sorted.
    """

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, description="Given id, or a content hash.")
    question: str = Field(min_length=1, description="The text the agent is asked.")
    gold: str = Field(min_length=1, description="The reference answer.")
    aliases: list[str] = Field(
        default_factory=list, description="Other accepted forms of the gold (KG synonyms)."
    )
    file_name: str | None = Field(
        default=None, description="An attachment the question refers to (GAIA), if any."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Breakdown keys: task, hops, paradigm, specialties, level, language, ...",
    )

    @field_validator("question", "gold")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("aliases")
    @classmethod
    def _drop_blank_aliases(cls, value: list[str]) -> list[str]:
        return [alias for alias in dict.fromkeys(value) if alias.strip()]
