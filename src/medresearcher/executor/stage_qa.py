"""``qa generate`` on an executor: the writer calls in shard tasks, the rest in order here.

QA generation is not a plain map: questions are accepted in anchor order until ``n`` are
written, and each is checked against the near duplicates accepted before it. So the work
is split where it can be — sampling and writing one anchor (the model call) depends only on
the anchor and its position — and shard tasks do that for rounds of anchor positions,
writing one *candidate* row per position (the sample id and the record, rejection or
nothing). :func:`~medresearcher.qa.batch.generate_qa` then runs in the driver exactly as in
a local run, with a ``write`` step that returns those candidates: same order, same checks,
same near-duplicate decisions, same files.

Resuming: candidates stay in ``<qa file>.shards/`` until the batch ends, so a driver killed
half-way finds the positions done before and continues where ``qa.jsonl`` stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medresearcher.config import Settings
from medresearcher.errors import MedResearcherError
from medresearcher.executor.base import Executor, OutputSpec, ShardJob, ShardReport, WorkItem
from medresearcher.executor.context import (
    open_graph,
    output_ids,
    pending_items,
    settings_context,
    settings_from,
)
from medresearcher.executor.shards import discard, shard_rows
from medresearcher.executor.stage_traj import shard_dir
from medresearcher.schema import QARecord, Sample
from medresearcher.workspace import JsonlWriter

if TYPE_CHECKING:
    from medresearcher.kg import GraphStore
    from medresearcher.qa.batch import QABatchCounts, QABatchOptions
    from medresearcher.sampling import GraphView

__all__ = ["ShardedWriter", "cached_view", "generate_qa_sharded", "qa_shard"]


def _item_id(index: int, anchor: str) -> str:
    return f"{index:08d}:{anchor}"  # sorts by position


class ShardedWriter:
    """The ``write`` step of :func:`~medresearcher.qa.batch.generate_qa`, served by shards.

    The first position without a candidate starts a round: the next ``round_size``
    positions of the anchor order go to the executor, and the candidates of every shard
    are read back.
    """

    def __init__(
        self,
        executor: Executor,
        job: ShardJob,
        order: Sequence[str],
        *,
        round_size: int,
        on_round: Callable[[ShardReport], None] | None = None,
    ) -> None:
        self.executor, self.job, self.order = executor, job, list(order)
        self.round_size = max(1, round_size)
        self.on_round = on_round
        self.candidates: dict[str, dict[str, Any]] = {
            str(row["id"]): row for row in shard_rows(job, "candidates")
        }
        self.rounds: list[ShardReport] = []
        self._lock = asyncio.Lock()

    async def __call__(self, sample: Sample, index: int) -> Any:
        key = _item_id(index, self.order[index])
        if key not in self.candidates:
            async with self._lock:
                if key not in self.candidates:
                    await asyncio.to_thread(self._round, index)
        row = self.candidates.get(key)
        if row is None or row.get("sample_id") != sample.id:
            raise MedResearcherError(
                f"{self.job.workdir}: the shard candidate of anchor {index} "
                f"({self.order[index]}) is not of sample {sample.id}; remove the folder and "
                "run again"
            )
        return _decode(row)

    def _round(self, start: int) -> None:
        stop = min(len(self.order), start + self.round_size)
        items = [
            WorkItem(_item_id(i, self.order[i]), {"index": i, "anchor": self.order[i]})
            for i in range(start, stop)
            if _item_id(i, self.order[i]) not in self.candidates
        ]
        report = self.executor.map(self.job, items)
        self.rounds.append(report)
        self.candidates = {str(row["id"]): row for row in shard_rows(self.job, "candidates")}
        if self.on_round is not None:
            self.on_round(report)


def _decode(row: Mapping[str, Any]) -> Any:
    from medresearcher.qa.llm_writer import QARejection

    kind, data = row.get("kind"), row.get("data")
    if kind == "record":
        return QARecord.model_validate(data)
    if kind == "rejection":
        return QARejection.model_validate(data)
    return None


async def generate_qa_sharded(
    executor: Executor,
    store: GraphStore,
    view: GraphView,
    anchors: Sequence[str],
    options: QABatchOptions,
    *,
    settings: Settings,
    out: JsonlWriter,
    rejected: JsonlWriter | None = None,
    samples: JsonlWriter | None = None,
    on_item: Callable[[], None] | None = None,
) -> tuple[QABatchCounts, list[ShardReport]]:
    """:func:`~medresearcher.qa.batch.generate_qa` with the writer calls on ``executor``.

    The outputs are those of a local run with the same options; the shard folder
    (``<out>.shards``) is removed when the batch ends.
    """
    from medresearcher.qa.batch import anchor_order, generate_qa

    done_samples = {str(row.get("sample_id")) for row in _rows(out.path)}
    skip = sorted(done_samples | (output_ids(rejected.path, rejected.key) if rejected else set()))
    context = {
        "settings": settings_context(settings),
        "options": asdict(options),
        "skip": skip,
    }
    job = ShardJob(
        stage="qa-generate",
        worker=f"{__name__}:qa_shard",
        context=context,
        outputs={"candidates": OutputSpec(shard_dir(out.path) / "candidates.jsonl")},
        workdir=shard_dir(out.path),
        identity={"settings": context["settings"], "options": context["options"]},
    )
    order = anchor_order(anchors, store, options)
    write = ShardedWriter(
        executor, job, order, round_size=max(options.n - len(out), executor.shard_size)
    )
    counts = await generate_qa(
        store,
        view,
        anchors,
        options,
        out=out,
        rejected=rejected,
        samples=samples,
        on_item=on_item,
        write=write,
    )
    discard(job)
    return counts, write.rounds


def _rows(path: Path) -> list[dict[str, Any]]:
    from medresearcher.workspace import read_jsonl

    return list(read_jsonl(path)) if Path(path).is_file() else []  # type: ignore[arg-type]


_VIEWS: dict[str, Any] = {}


def cached_view(settings: Settings, store: Any, view_type: Any) -> Any:
    """The graph's sampling view, kept per worker process: a Ray worker runs many shards,
    and loading the view is the slow part of a template-writer shard."""
    from medresearcher.workspace import Workspace

    path = Workspace(settings.workspace).kg_path
    stamp = path.stat().st_mtime_ns if path.is_file() else None
    key = f"{settings.graph.model_dump_json()}|{path}|{stamp}"
    if key not in _VIEWS:
        _VIEWS.clear()
        _VIEWS[key] = view_type.from_store(store)
    return _VIEWS[key]


async def qa_shard(
    context: Mapping[str, Any], items: list[WorkItem], outputs: dict[str, JsonlWriter]
) -> dict[str, int]:
    """Worker of :class:`ShardedWriter`: sample and write each anchor position of the shard."""
    from medresearcher.llm import LLMGateway
    from medresearcher.qa.batch import QABatchOptions, sampler_of, write_sample
    from medresearcher.sampling import GraphView

    settings = settings_from(context)
    options = QABatchOptions(**context["options"])
    skip = set(context["skip"])
    out = outputs["candidates"]
    todo = pending_items(items, out)
    counts = {"positions": 0, "written": 0}
    if not todo:
        return counts
    sampler = sampler_of(options.strategy)
    with open_graph(settings) as store:
        view = cached_view(settings, store, GraphView)
        async with LLMGateway(settings) as gateway:

            async def one(item: WorkItem) -> dict[str, Any]:
                index, anchor = int(item.payload["index"]), str(item.payload["anchor"])
                seed = options.seed + index
                sample = sampler(view, anchor, max_hops=options.max_hops, seed=seed)
                if sample is None or sample.hops < 1:
                    return {"id": item.id, "sample_id": None, "kind": "none"}
                if sample.id in skip:
                    return {"id": item.id, "sample_id": sample.id, "kind": "skipped"}
                result = await write_sample(
                    sample, store, options, gateway if options.writer == "llm" else None, index
                )
                kind = (
                    "unsupported"
                    if result is None
                    else "record"
                    if isinstance(result, QARecord)
                    else "rejection"
                )
                data = result.model_dump(mode="json") if result is not None else None
                return {"id": item.id, "sample_id": sample.id, "kind": kind, "data": data}

            step = max(1, options.workers)
            for start in range(0, len(todo), step):
                rows = await asyncio.gather(*(one(item) for item in todo[start : start + step]))
                for row in rows:
                    out.write(row)
                    counts["positions"] += 1
                    counts["written"] += row["kind"] == "record"
    return counts
