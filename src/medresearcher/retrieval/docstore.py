"""The documents of an index on disk: JSONL plus byte offsets, read on demand.

Search needs a few numbers per document (source type, year, journal impact, linked
entities) for every document, but the full record only for the hits. So the build writes
the records once and keeps compact columns in memory; a million-document index loads in
seconds and only the returned documents are ever parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from medresearcher.retrieval.authority import document_journal
from medresearcher.schema import SOURCE_TYPES, Document

__all__ = ["DocStore", "write_docstore"]

DOCS = "docs.jsonl"
OFFSETS = "docs.offsets.npy"
COLUMNS = "docs.columns.npz"
ENTITIES = "docs.entities.json"
JOURNALS = "docs.journals.json"
IDS = "docs.ids.json"


def write_docstore(folder: Path, documents: Iterable[Document]) -> int:
    """Write records, offsets and columns; returns the number of documents."""
    folder.mkdir(parents=True, exist_ok=True)
    offsets: list[int] = []
    types: list[int] = []
    years: list[int] = []
    journals: list[str] = []
    ids: list[str] = []
    entities: dict[str, list[int]] = {}
    type_code = {name: code for code, name in enumerate(SOURCE_TYPES)}
    position = 0
    with open(folder / DOCS, "wb") as out:
        for index, doc in enumerate(documents):
            line = (doc.model_dump_json() + "\n").encode("utf-8")
            offsets.append(position)
            out.write(line)
            position += len(line)
            ids.append(doc.doc_id)
            types.append(type_code[doc.source_type])
            years.append(doc.year or 0)
            journals.append(document_journal(doc))
            for entity in doc.entity_ids:
                entities.setdefault(entity, []).append(index)
    offsets.append(position)
    np.save(folder / OFFSETS, np.asarray(offsets, dtype=np.int64))
    np.savez(
        folder / COLUMNS,
        source_type=np.asarray(types, dtype=np.int8),
        year=np.asarray(years, dtype=np.int16),
    )
    (folder / ENTITIES).write_text(json.dumps(entities), encoding="utf-8")
    (folder / JOURNALS).write_text(json.dumps(journals), encoding="utf-8")
    (folder / IDS).write_text(json.dumps(ids), encoding="utf-8")
    return len(types)


class DocStore:
    """Random access to an index's documents, with the columns that filters need."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.offsets = np.load(folder / OFFSETS)
        columns = np.load(folder / COLUMNS)
        self.source_type_codes = columns["source_type"]
        self.years = columns["year"]
        self.entities: dict[str, list[int]] = json.loads((folder / ENTITIES).read_text("utf-8"))
        self.journals: list[str] = json.loads((folder / JOURNALS).read_text("utf-8"))
        self._file = open(folder / DOCS, "rb")  # noqa: SIM115 - closed by close()
        self.ids: list[str] = json.loads((folder / IDS).read_text("utf-8"))
        self._positions: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def source_types(self) -> list[str]:
        return [SOURCE_TYPES[code] for code in self.source_type_codes]

    def get(self, index: int) -> Document:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        self._file.seek(start)
        return Document.model_validate_json(self._file.read(end - start))

    def index_of(self, doc_id: str) -> int | None:
        """The position of ``doc_id`` (the lookup table is built on first use)."""
        if self._positions is None:
            self._positions = {doc_id: index for index, doc_id in enumerate(self.ids)}
        return self._positions.get(doc_id)

    def mask(
        self,
        *,
        source_types: frozenset[str],
        year_from: int | None,
        year_to: int | None,
        entity_ids: frozenset[str],
    ) -> np.ndarray:
        """A boolean mask of the documents that pass every filter."""
        allowed = np.ones(len(self), dtype=bool)
        if source_types:
            codes = [SOURCE_TYPES.index(t) for t in source_types if t in SOURCE_TYPES]
            allowed &= np.isin(self.source_type_codes, codes)
        if year_from is not None:
            allowed &= self.years >= year_from
        if year_to is not None:
            allowed &= (self.years <= year_to) & (self.years > 0)
        if entity_ids:
            linked = np.zeros(len(self), dtype=bool)
            for entity in entity_ids:
                linked[self.entities.get(entity, [])] = True
            allowed &= linked
        return allowed

    def close(self) -> None:
        self._file.close()
