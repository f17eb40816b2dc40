"""Embeddings computed once per (model, text) and kept in the workspace cache.

Embedding is the slow step of building a dense index (MiniLM: ~25–50 documents/s per
core; the demo corpus takes minutes), and most of a corpus is unchanged between builds.
:class:`CachedEmbedder` wraps any :class:`Embedder` and stores each vector, as float16,
under a hash of the model name and the text, so a rebuild only embeds new or changed
documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medresearcher.cache import SqliteCache
from medresearcher.retrieval.dense import Embedder

__all__ = ["CachedEmbedder"]


class CachedEmbedder:
    """An :class:`Embedder` that answers from ``cache_path`` and embeds only the misses.

    ``encoded`` counts the texts the wrapped embedder really encoded, so callers and
    tests can see what the cache saved.
    """

    def __init__(self, embedder: Embedder, cache_path: str | Path) -> None:
        self.embedder = embedder
        self.name = embedder.name
        self.dim = embedder.dim
        self.cache = SqliteCache(cache_path, table="embeddings", mode="read-write")
        self.encoded = 0

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.name}\0{text}".encode()).hexdigest()

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        keys = [self._key(text) for text in texts]
        missing = []
        for row, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is None:
                missing.append(row)
            else:
                vectors[row] = np.frombuffer(hit[1], dtype=np.float16)
        if missing:
            fresh = self.embedder.encode(
                [texts[row] for row in missing], batch_size=batch_size, progress=progress
            )
            self.encoded += len(missing)
            entries = []
            for row, vector in zip(missing, fresh, strict=True):
                vectors[row] = vector
                entries.append((keys[row], {}, vector.astype(np.float16).tobytes()))
            self.cache.put_many(entries)
        return vectors

    def close(self) -> None:
        self.cache.close()
