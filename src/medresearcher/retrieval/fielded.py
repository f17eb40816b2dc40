"""Field-aware BM25: one index per field, scores combined by weight (a simple BM25F).

A rare-disease question names genes and hallmark signs ("GLA, angiokeratoma,
acroparesthesia: which disorder?"). When those words sit in their own fields of an
enriched document (``Document.fields``), they can count for more than the same words
scattered through a long abstract, and a short gene field is not drowned by the body's
length normalisation. Weights live in ``[retrieval] field_weights``.

References
----------
Robertson, S., Zaragoza, H. & Taylor, M. (2004). Simple BM25 extension to multiple
weighted fields. CIKM '04.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from medresearcher.retrieval.lexical import LexicalIndex
from medresearcher.retrieval.topk import top_k

__all__ = ["BODY", "FieldedLexicalIndex"]

BODY = "body"  # title + text: every document has it
FIELDS_FILE = "fields.json"


class FieldedLexicalIndex:
    """A :class:`LexicalIndex` per field; ``body`` always, others where documents have them."""

    def __init__(self, indexes: Mapping[str, LexicalIndex]) -> None:
        if BODY not in indexes:
            raise ValueError("a fielded index needs the body field")
        self.indexes = dict(indexes)

    @property
    def n_docs(self) -> int:
        return self.indexes[BODY].n_docs

    @property
    def fields(self) -> list[str]:
        return list(self.indexes)

    @classmethod
    def build(
        cls, bodies: Sequence[str], fields: Sequence[Mapping[str, str]], *, progress: bool = False
    ) -> FieldedLexicalIndex:
        """Index ``bodies`` and every field name that any document's ``fields`` holds."""
        names = sorted({name for doc_fields in fields for name in doc_fields} - {BODY})
        indexes = {BODY: LexicalIndex.build(bodies, progress=progress)}
        for name in names:
            indexes[name] = LexicalIndex.build([f.get(name, "") for f in fields])
        return cls(indexes)

    def scores(self, query: str, weights: Mapping[str, float]) -> np.ndarray:
        """Σ weight × BM25 over the fields that have a weight (body defaults to 1)."""
        total = np.zeros(self.n_docs, dtype=np.float32)
        for name, index in self.indexes.items():
            weight = weights.get(name, 1.0 if name == BODY else 0.0)
            if weight:
                total += weight * index.scores(query)
        return total

    def search(
        self,
        query: str,
        k: int,
        *,
        weights: Mapping[str, float],
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(doc indices, combined scores), best first, only documents that match at all."""
        active = [n for n in self.indexes if weights.get(n, 1.0 if n == BODY else 0.0)]
        if active == [BODY] and weights.get(BODY, 1.0) == 1.0:
            return self.indexes[BODY].search(query, k, allowed=allowed)  # the fast path
        scores = self.scores(query, weights)
        usable = scores > 0
        if allowed is not None:
            usable &= allowed
        ids = top_k(np.where(usable, scores, -np.inf), k)
        return ids, scores[ids]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, index in self.indexes.items():
            index.save(folder / name)
        (folder / FIELDS_FILE).write_text(json.dumps(self.fields), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> FieldedLexicalIndex:
        names = json.loads((folder / FIELDS_FILE).read_text(encoding="utf-8"))
        return cls({name: LexicalIndex.load(folder / name) for name in names})
