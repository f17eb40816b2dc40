"""The QA lab's work: one anchor → one sample → one question, checked (paper §3.1.2–3.1.3).

The same library calls as ``medresearcher qa generate`` (:mod:`medresearcher.qa.batch`): a
sampling strategy on the :class:`~medresearcher.sampling.GraphView`, the template writer
(offline) or the LLM writer (a configured endpoint), then every offline check. Nothing is
written to the workspace: the lab is for trying parameters on one question.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medresearcher.config import Settings
from medresearcher.errors import InputError
from medresearcher.qa.batch import check_record, sampler_of
from medresearcher.qa.specialties import specialties_of
from medresearcher.sampling import STRATEGIES, mixed
from medresearcher.schema import QARecord
from medresearcher.web.graph_data import sample_graph
from medresearcher.web.state import GraphContext

__all__ = [
    "LLMWriterUnavailable",
    "QALabRequest",
    "lab_question",
    "llm_writer_needed",
    "strategy_parameters",
]

STRATEGY_NAMES = ("mixed", *STRATEGIES)
# Parameters every strategy takes, set by their own fields of the request.
_COMMON = {"view", "anchor", "max_hops", "seed", "rules", "budget"}


class QALabRequest(BaseModel):
    """What the QA lab's form sends."""

    model_config = ConfigDict(extra="forbid")

    anchor: str = Field(min_length=1, max_length=200, description="Entity id, name or alias.")
    strategy: Literal[
        "mixed", "max_chain", "augmented_chain", "community_core_path", "dual_core_bridge"
    ] = "mixed"
    max_hops: int = Field(default=4, ge=1, le=8)
    seed: int = Field(default=0, ge=0, le=2**31)
    params: dict[str, int | float | bool] = Field(default_factory=dict)
    writer: Literal["template", "llm"] = "template"
    endpoint: str = Field(default="writer", max_length=100)
    paradigm: Literal["identify", "attribute", "count", "intersect"] | None = None
    level: int = Field(default=1, ge=1, le=5)
    language: Literal["en", "zh"] = "en"


class LLMWriterUnavailable(InputError):
    """The LLM writer was asked for but no model endpoint is configured for it."""


def strategy_parameters() -> dict[str, dict[str, Any]]:
    """Each strategy's own scalar parameters and their defaults, read from its signature
    (so the form offers exactly what the library takes)."""
    found: dict[str, dict[str, Any]] = {}
    for name in STRATEGY_NAMES:
        function = mixed if name == "mixed" else STRATEGIES[name]
        found[name] = {
            parameter.name: parameter.default
            for parameter in inspect.signature(function).parameters.values()
            if parameter.name not in _COMMON and isinstance(parameter.default, (int, float, bool))
        }
    return found


def llm_writer_needed(settings: Settings, endpoint: str) -> str | None:
    """Why the LLM writer cannot run, or None when ``endpoint`` is configured."""
    if endpoint in settings.llm:
        return None
    where = settings.source or "./medresearcher.toml"
    return (
        f"The LLM writer needs a model: add an [llm.{endpoint}] endpoint to {where} "
        "(see medresearcher.example.toml). Offline, use the template writer."
    )


def _anchor(graph: GraphContext, anchor: str) -> str:
    resolved = graph.store.resolve(anchor.strip())
    if resolved is None:
        # A name shared by twins (Orphanet and Disease Ontology) means the Orphanet record:
        # the graph is built around rare disorders.
        found = sorted(graph.store.find(anchor), key=lambda i: (not i.startswith("ORPHA:"), i))
        resolved = found[0] if found else None
    if resolved is None:
        raise InputError(f"no entity {anchor!r} in the graph (search by name, alias or id)")
    if resolved not in graph.view:
        raise InputError(f"{resolved} has no relations to sample from")
    return resolved


def lab_question(graph: GraphContext, request: QALabRequest, settings: Settings) -> dict[str, Any]:
    """Sample around the anchor, write one question, run every check; on the graph thread.

    Returns the sample's subgraph and chain (for drawing) and, when a question could be
    written, the record with its checks; ``message`` says why there is none otherwise.
    """
    allowed = strategy_parameters()[request.strategy]
    unknown = sorted(set(request.params) - set(allowed))
    if unknown:
        raise InputError(
            f"{request.strategy} takes no parameter {', '.join(unknown)}; "
            f"it takes: {', '.join(allowed) or 'none'}"
        )
    anchor = _anchor(graph, request.anchor)
    sampler = sampler_of(request.strategy)
    sample = sampler(
        graph.view, anchor, max_hops=request.max_hops, seed=request.seed, **request.params
    )
    if sample is None or sample.hops < 1:
        return {
            "anchor": anchor,
            "sample": None,
            "record": None,
            "message": "No medically valid chain from this anchor with these parameters.",
        }
    drawn = sample_graph(graph.store, sample)
    result = _write(graph, request, settings, sample)
    if isinstance(result, str):
        return {"anchor": anchor, **drawn, "record": None, "message": result}
    record = check_record(result, graph.store, sample=sample, min_hops=settings.qa.min_hops)
    return {
        "anchor": anchor,
        **drawn,
        "record": record.model_dump(),
        "passed": record.passed,
        "message": None,
    }


def _write(
    graph: GraphContext, request: QALabRequest, settings: Settings, sample: Any
) -> QARecord | str:
    """The question, or a sentence saying why none was written."""
    if request.writer == "template":
        from medresearcher.qa.template_writer import UnsupportedParadigm, write_template_question

        try:
            return write_template_question(
                sample,
                graph.store,
                paradigm=request.paradigm,
                level=request.level,
                language=request.language,
                seed=request.seed,
            )
        except UnsupportedParadigm as exc:
            return str(exc)
    from medresearcher.llm import LLMGateway
    from medresearcher.qa.llm_writer import write_llm_question

    async def go() -> Any:
        async with LLMGateway(settings) as gateway:
            return await write_llm_question(
                gateway,
                request.endpoint,
                sample,
                graph.store,
                language=request.language,
                level=request.level,
                paradigm=request.paradigm or "identify",
            )

    result = asyncio.run(go())
    if not isinstance(result, QARecord):
        problems = "; ".join(result.problems)
        return f"The model's question was rejected: {result.reason}" + (
            f" ({problems})" if problems else ""
        )
    if not result.specialties:
        result = result.model_copy(
            update={"specialties": specialties_of(result.chain[::2], graph.store)}
        )
    return result
