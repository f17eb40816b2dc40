"""Batch QA synthesis: sample → write → check → deduplicate → append, resumably.

The same function serves ``medresearcher qa generate`` and the demo. Work runs in
order of a seeded anchor permutation and in chunks of ``workers``: writers of one chunk run
concurrently (model calls), while checks, near-duplicate detection and writing happen in
chunk order, so the output is the same whatever the number of workers. A run that is cut
short is finished by running it again: samples whose question is already in the output are
skipped and count toward ``n``; samples the writer rejected before are skipped too (no model
call is spent on them again) but, as in the first run, do not count toward ``n``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from medresearcher.errors import InputError
from medresearcher.kg import GraphStore
from medresearcher.qa.checks import run_checks
from medresearcher.qa.near_duplicates import NearDuplicateIndex
from medresearcher.qa.specialties import specialties_of
from medresearcher.qa.template_writer import UnsupportedParadigm, write_template_question
from medresearcher.sampling import STRATEGIES, GraphView, mixed
from medresearcher.schema import CheckResult, QARecord, Sample
from medresearcher.workspace import JsonlWriter, read_jsonl

if TYPE_CHECKING:
    from medresearcher.llm import LLMGateway

__all__ = [
    "QABatchCounts",
    "QABatchOptions",
    "WriteFn",
    "anchor_order",
    "balanced_by_specialty",
    "chain_names",
    "check_record",
    "generate_qa",
    "harder_question",
    "sampler_of",
    "write_sample",
]

logger = logging.getLogger(__name__)

Sampler = Callable[..., Sample | None]
WriteFn = Callable[[Sample, int], Awaitable[Any]]


@dataclass(frozen=True)
class QABatchOptions:
    """What ``qa generate`` asks for; every field is a CLI option."""

    n: int = 100
    strategy: str = "mixed"
    max_hops: int = 4
    seed: int = 0
    writer: Literal["template", "llm"] = "template"
    endpoint: str = "writer"
    language: Literal["en", "zh"] = "en"
    paradigm: str | None = None
    level: int = 1
    quantitative: bool = True
    min_hops: int = 2
    near_duplicate_threshold: float = 0.8
    workers: int = 16
    balance_specialties: bool = True


@dataclass
class QABatchCounts:
    """What a batch did, for the progress line, the manifest and the tests."""

    written: int = 0
    already_done: int = 0
    rejected: int = 0
    no_sample: int = 0
    near_duplicates: int = 0
    unsupported_paradigm: int = 0
    passed: int = 0
    failed_checks: Counter[str] = field(default_factory=Counter)
    rejection_reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "already_done": self.already_done,
            "rejected": self.rejected,
            "no_sample": self.no_sample,
            "near_duplicates": self.near_duplicates,
            "unsupported_paradigm": self.unsupported_paradigm,
            "passed_all_checks": self.passed,
            "failed_checks": dict(self.failed_checks),
        }


def balanced_by_specialty(
    anchors: Sequence[str], store: GraphStore, *, per_specialty: int = 3
) -> list[str]:
    """``anchors`` with the first ``per_specialty`` of every specialty moved to the front.

    Rare anchors are mostly neurological or metabolic (on the demo graph 1,038 of 2,435 are
    neurological, 6 infectious): in plain random order a few hundred questions can leave a
    small specialty out. Leading with a few anchors of each specialty the graph reaches
    (round-robin, order kept within each) makes every one appear, which a dataset "spanning
    12 specialties" (paper §3.1.3) needs, while the rest keeps the graph's own proportions.
    """
    buckets: dict[str, list[str]] = {}
    for anchor in anchors:
        tags = specialties_of([anchor], store)
        buckets.setdefault(tags[0] if tags else "", []).append(anchor)
    lead = [
        bucket[rank]
        for rank in range(per_specialty)
        for _, bucket in sorted(buckets.items())
        if rank < len(bucket)
    ]
    chosen = set(lead)
    return lead + [anchor for anchor in anchors if anchor not in chosen]


def sampler_of(strategy: str) -> Sampler:
    """The sampling function called ``strategy``, or an error that lists the known ones."""
    strategies: dict[str, Sampler] = {**STRATEGIES, "mixed": mixed}
    if strategy not in strategies:
        known = ", ".join(strategies)
        raise InputError(f"unknown sampling strategy {strategy!r}; known: {known}")
    return strategies[strategy]


def chain_names(store: GraphStore, chain: Sequence[str]) -> dict[str, list[str]]:
    """Name and aliases of every entity in ``chain``: what leakage checks look for."""
    return store.names_of(chain[::2])


def check_record(
    record: QARecord, store: GraphStore, *, sample: Sample | None, min_hops: int
) -> QARecord:
    """``record`` with every offline check of :mod:`medresearcher.qa.checks` recorded."""
    checks = run_checks(
        record, names_by_id=chain_names(store, record.chain), sample=sample, min_hops=min_hops
    )
    return record.model_copy(update={"checks": {**record.checks, **checks}})


async def generate_qa(
    store: GraphStore,
    view: GraphView,
    anchors: Sequence[str],
    options: QABatchOptions,
    *,
    out: JsonlWriter,
    rejected: JsonlWriter | None = None,
    samples: JsonlWriter | None = None,
    gateway: LLMGateway | None = None,
    on_item: Callable[[], None] | None = None,
    write: WriteFn | None = None,
) -> QABatchCounts:
    """Write ``options.n`` checked questions into ``out`` (counting those already there).

    Near-duplicate questions are dropped (counted); writer rejections go to ``rejected``
    with their reason; every other record is written with its ``checks``, passing or not,
    so that ``qa stats`` can say why questions fail.

    ``write(sample, index)`` replaces the writer call of each sample (a QARecord, a
    rejection, or None for an unsupported paradigm): the Ray executor passes one that
    returns what shard tasks wrote (:mod:`medresearcher.executor.stage_qa`), while
    checks, near duplicates and the count stay here, in anchor order.
    """
    sampler = sampler_of(options.strategy)
    if options.writer == "llm" and gateway is None and write is None:
        raise InputError("the llm writer needs an LLM gateway and a configured endpoint")
    if not anchors:
        raise InputError("no anchors to sample from: import a graph (`kg import --demo`) first")
    existing = _rows(out)
    done_samples = {str(row.get("sample_id")) for row in existing.values()}
    # Rejected before: not asked again, and not counted toward n (the first run did not).
    rejected_samples = set(_rows(rejected)) - done_samples
    duplicates = NearDuplicateIndex(threshold=options.near_duplicate_threshold)
    for record_id, row in existing.items():
        duplicates.add(record_id, str(row.get("question", "")))

    counts = QABatchCounts()
    order = anchor_order(anchors, store, options)
    workers = max(1, options.workers)
    position = 0
    while counts.written + counts.already_done < options.n and position < len(order):
        chunk: list[tuple[int, Sample]] = []
        while len(chunk) < workers and position < len(order):
            want = options.n - counts.written - counts.already_done - len(chunk)
            if want <= 0:
                break
            index, anchor = position, order[position]
            position += 1
            sample = sampler(view, anchor, max_hops=options.max_hops, seed=options.seed + index)
            if sample is None or sample.hops < 1:
                counts.no_sample += 1
                continue
            if sample.id in done_samples:
                counts.already_done += 1
                continue
            if sample.id in rejected_samples:
                continue
            chunk.append((index, sample))
        results = await asyncio.gather(
            *(
                write(sample, index)
                if write is not None
                else _write(sample, store, options, gateway, index)
                for index, sample in chunk
            )
        )
        for (_, sample), result in zip(chunk, results, strict=True):
            if samples is not None and sample.id not in samples:
                samples.write(sample)
            if result is None:
                counts.unsupported_paradigm += 1
                continue
            if not isinstance(result, QARecord):
                counts.rejected += 1
                counts.rejection_reasons[str(getattr(result, "reason", result))[:80]] += 1
                if rejected is not None:
                    rejected.write(result)
                continue
            record = check_record(result, store, sample=sample, min_hops=options.min_hops)
            twin = duplicates.add(record.id, record.question)
            if twin is not None:
                counts.near_duplicates += 1
                logger.info("dropped %s: a near duplicate of %s", record.id, twin)
                continue
            record.checks["near_duplicate"] = CheckResult(passed=True)
            for name, check in record.checks.items():
                if not check.passed:
                    counts.failed_checks[name] += 1
            counts.passed += record.passed
            if out.write(record):
                counts.written += 1
            if on_item is not None:
                on_item()
    return counts


def anchor_order(anchors: Sequence[str], store: GraphStore, options: QABatchOptions) -> list[str]:
    """The order :func:`generate_qa` visits anchors in: a seeded permutation, specialties
    balanced at the front when asked; anchor ``i`` of it is sampled with seed ``seed + i``."""
    order = list(anchors)
    random.Random(options.seed).shuffle(order)
    if options.balance_specialties:
        order = balanced_by_specialty(order, store)
    return order


async def write_sample(
    sample: Sample,
    store: GraphStore,
    options: QABatchOptions,
    gateway: LLMGateway | None,
    index: int,
) -> Any:
    """What the writer of ``options`` makes of ``sample`` (anchor ``index`` of the order):
    a QARecord, a rejection (:class:`~medresearcher.qa.llm_writer.QARejection`), or None
    when the template writer has no question of the asked paradigm for it."""
    return await _write(sample, store, options, gateway, index)


async def _write(
    sample: Sample,
    store: GraphStore,
    options: QABatchOptions,
    gateway: LLMGateway | None,
    index: int,
) -> Any:
    if options.writer == "template":
        try:
            return write_template_question(
                sample,
                store,
                paradigm=options.paradigm,  # type: ignore[arg-type]
                level=options.level,
                language=options.language,
                seed=options.seed + index,
            )
        except UnsupportedParadigm as exc:
            logger.info("skipped: %s", exc)
            return None
    from medresearcher.qa.llm_writer import write_llm_question

    assert gateway is not None
    result = await write_llm_question(
        gateway,
        options.endpoint,
        sample,
        store,
        language=options.language,
        level=options.level,
        quantitative=options.quantitative,
        paradigm=options.paradigm or "identify",
    )
    if isinstance(result, QARecord) and not result.specialties:
        result = result.model_copy(update={"specialties": specialties_of(result.chain[::2], store)})
    return result


def _rows(writer: JsonlWriter | None) -> dict[str, dict[str, Any]]:
    """The records already in ``writer``'s file, by key (read once at the start)."""
    if writer is None or not writer.path.exists():
        return {}
    return {str(row.get(writer.key)): row for row in read_jsonl(writer.path)}


async def harder_question(
    record: QARecord,
    level: int,
    store: GraphStore,
    view: GraphView,
    *,
    gateway: LLMGateway | None = None,
    min_hops: int = 2,
) -> QARecord | None:
    """``record`` regenerated at complexity ``level`` (paper §3.1.3: complexity + 1).

    A longer chain from the same anchor (one hop more, same strategy and seed) written at a
    deeper obfuscation level by the same writer; None when the graph offers nothing harder
    that passes the checks.
    """
    sampler = sampler_of(record.strategy)
    sample = sampler(view, record.chain[0], max_hops=record.hops + 1, seed=level)
    if sample is None or sample.hops < record.hops:
        return None
    writer = str(record.provenance.get("writer", "template"))
    options = QABatchOptions(
        writer="llm" if writer.startswith("llm:") else "template",
        endpoint=str(record.provenance.get("endpoint", "writer")),
        language=record.language,
        paradigm=record.paradigm,
        level=level,
        min_hops=min_hops,
    )
    result = await _write(sample, store, options, gateway, level)
    if not isinstance(result, QARecord):
        return None
    result = check_record(result, store, sample=sample, min_hops=min_hops)
    return result if result.passed else None
