"""Writing documents into the workspace corpus: resumable ingestion and merging.

Every connector yields :class:`Document` records; these functions put them into an
append-only JSONL keyed by ``doc_id`` (:class:`JsonlWriter`), so a run that stops half-way
— a crash, a 429 storm, a malformed page — keeps what it wrote and finishes on a re-run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from medresearcher.schema import Document
from medresearcher.workspace import JsonlWriter, read_jsonl

__all__ = ["IngestCounts", "ingest_documents", "merge_corpora"]

log = logging.getLogger(__name__)


@dataclass
class IngestCounts:
    """What an ingestion or merge did; ``written`` + ``skipped_existing`` = ``read``."""

    read: int = 0
    written: int = 0
    skipped_existing: int = 0

    def add(self, written: bool) -> None:
        """Count one document read; ``written`` is what :meth:`JsonlWriter.write` said."""
        self.read += 1
        if written:
            self.written += 1
        else:
            self.skipped_existing += 1

    def to_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "written": self.written,
            "skipped_existing": self.skipped_existing,
        }


async def ingest_documents(
    documents: AsyncIterator[Document],
    out_path: str | os.PathLike[str],
    *,
    counts: IngestCounts | None = None,
    progress: Progress | None = None,
    description: str = "ingesting",
    total: int | None = None,
) -> IngestCounts:
    """Append every document not yet in ``out_path``; returns the counts.

    Pass ``counts`` to see how far a run got when the source raises: the documents
    written before the error stay written.
    """
    counts = counts if counts is not None else IngestCounts()
    task = progress.add_task(description, total=total) if progress is not None else None
    with JsonlWriter(out_path, key="doc_id") as out:
        async for document in documents:
            counts.add(out.write(document))
            if progress is not None and task is not None:
                progress.advance(task)
    return counts


def merge_corpora(
    inputs: Iterable[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    *,
    extra: Iterable[Document] = (),
) -> IngestCounts:
    """Merge corpus JSONL files (and ``extra`` documents) into ``out_path``, by ``doc_id``.

    The first record of an id wins, in the order given; every record is validated, and a
    bad one stops the merge with its file, line and field (what was merged stays).
    """
    counts = IngestCounts()
    out_path = Path(out_path)
    sources = [Path(p) for p in inputs]
    if out_path.resolve() in {p.resolve() for p in sources}:
        raise ValueError(f"{out_path}: the output is also an input")
    with JsonlWriter(out_path, key="doc_id", fsync=False) as out:
        for document in _chain(sources, extra):
            counts.add(out.write(document))
    log.info(
        "merged %d documents into %s (%d duplicates)",
        counts.written,
        out_path,
        counts.skipped_existing,
    )
    return counts


def _chain(sources: list[Path], extra: Iterable[Document]) -> Iterable[Document]:
    for path in sources:
        yield from read_jsonl(path, Document)
    yield from extra
