"""Rare-entity mining over PubMed baseline files, one file per work item (paper §3.1.1).

The paper counts mentions over 30 M abstracts: NLM's ~1,300 annual baseline files. Counting
is additive, so each file is a work item: a task counts the mentions of every graph entity in
one file and writes one row ``{"file", "documents", "tokens", "counts"}`` to
``<out>.mentions.jsonl``; the driver sums the rows and selects the candidates with
:func:`~medresearcher.kg.rarity.select_rare` — the same candidates one pass over the whole
corpus gives. The rows are kept, keyed by file name: adding next year's update files
counts only the new ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medresearcher.config import Settings
from medresearcher.errors import InputError
from medresearcher.executor.base import OutputSpec, ShardJob, WorkItem
from medresearcher.executor.context import (
    open_graph,
    output_ids,
    pending_items,
    settings_context,
    settings_from,
)
from medresearcher.executor.stage_traj import shard_dir
from medresearcher.workspace import JsonlWriter, read_jsonl

if TYPE_CHECKING:
    from medresearcher.kg.mentions import MentionMatcher
    from medresearcher.kg.rarity import RarityReport
    from medresearcher.schema import Entity

__all__ = [
    "KEY",
    "count_file",
    "count_files",
    "mentions_job",
    "mentions_shard",
    "report_from_counts",
]

KEY = "file"
"""Rows of the mentions file are keyed by the baseline file's name."""


def _items(files: Sequence[Path], counts_path: Path) -> list[WorkItem]:
    names: dict[str, Path] = {}
    for path in files:
        if path.name in names:
            raise InputError(
                f"two baseline files are called {path.name}: {names[path.name]}, {path}"
            )
        names[path.name] = Path(path).resolve()
    done = output_ids(counts_path, KEY)
    return [WorkItem(name, {"path": str(p)}) for name, p in names.items() if name not in done]


def count_file(path: Path, entities: Sequence[Entity], matcher: MentionMatcher) -> dict[str, Any]:
    """The mention counts of one baseline file (``.xml`` or ``.xml.gz``), as one row."""
    from medresearcher.kg.rarity import mine_rare_entities
    from medresearcher.sources.pubmed_xml import iter_pubmed_xml

    report = mine_rare_entities(iter_pubmed_xml(path), entities, matcher=matcher)
    counts = {entity_id: n for entity_id, n in sorted(report.counts.items()) if n}
    return {
        KEY: Path(path).name,
        "documents": report.documents,
        "tokens": report.tokens,
        "counts": counts,
    }


def count_files(
    files: Sequence[Path],
    entities: Sequence[Entity],
    counts_path: Path,
    *,
    on_file: Callable[[str], None] | None = None,
) -> int:
    """Count every file ``counts_path`` lacks, in this process (``--executor local``)."""
    from medresearcher.kg.mentions import MentionMatcher

    items = _items(files, counts_path)
    if not items:
        return 0
    matcher = MentionMatcher(entities)
    with JsonlWriter(counts_path, key=KEY, fsync=False) as out:
        for item in items:
            out.write(count_file(Path(item.payload["path"]), entities, matcher))
            if on_file is not None:
                on_file(item.id)
        return out.written


def mentions_job(
    files: Sequence[Path], *, settings: Settings, counts_path: Path
) -> tuple[ShardJob, list[WorkItem]]:
    """The baseline files ``counts_path`` has no row for, as a job (``--executor ray``)."""
    job = ShardJob(
        stage="kg-mine-rare",
        worker=f"{__name__}:mentions_shard",
        context={"settings": settings_context(settings)},
        outputs={"counts": OutputSpec(counts_path, KEY)},
        workdir=shard_dir(counts_path),
    )
    return job, _items(files, counts_path)


async def mentions_shard(
    context: Mapping[str, Any], items: list[WorkItem], outputs: dict[str, JsonlWriter]
) -> dict[str, int]:
    """Worker of :func:`mentions_job`: the graph's entities once, then each file."""
    from medresearcher.kg.mentions import MentionMatcher

    todo = pending_items(items, outputs["counts"])
    if not todo:
        return {"files": 0}
    with open_graph(settings_from(context)) as store:
        entities = list(store.iter_entities())
    matcher = MentionMatcher(entities)
    for item in todo:
        outputs["counts"].write(count_file(Path(item.payload["path"]), entities, matcher))
    return {"files": len(todo)}


def report_from_counts(
    counts_path: Path,
    files: Iterable[Path],
    entities: Sequence[Entity],
    *,
    tau: float,
    min_mentions: int = 1,
) -> RarityReport:
    """Sum the rows of ``files`` in ``counts_path`` and select the rare candidates."""
    from medresearcher.kg.rarity import select_rare

    wanted = {Path(f).name for f in files}
    total: Counter[str] = Counter()
    tokens = documents = 0
    for row in read_jsonl(counts_path):
        if row[KEY] in wanted:  # type: ignore[index]
            total.update(row["counts"])  # type: ignore[index]
            tokens += int(row["tokens"])  # type: ignore[index]
            documents += int(row["documents"])  # type: ignore[index]
    return select_rare(
        total, entities, tokens=tokens, documents=documents, tau=tau, min_mentions=min_mentions
    )
