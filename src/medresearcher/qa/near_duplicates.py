"""Near-duplicate questions by word shingles: MinHash signatures, LSH banding, exact check.

Template questions from neighbouring chains can differ by one word; training on many copies of
one question teaches the copy, not the search (issue 7 §4). Two questions are near duplicates
when the Jaccard similarity of their word ``shingle``-grams reaches ``threshold``.

Comparing every pair is quadratic. A MinHash signature per question (Broder 1997) is cut into
bands; questions that agree on a whole band become candidates (locality-sensitive hashing,
Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets* §3.4), and only candidates are
compared exactly, so 10⁵ questions stay fast and no false positive gets through. The number of
rows per band is chosen so that a pair at the threshold becomes a candidate with probability
≥ 99.5 %. Hashes are seeded and stable across processes (no Python ``hash``).
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import defaultdict

import numpy as np

__all__ = ["NearDuplicateIndex", "jaccard", "shingles"]

_MERSENNE = (1 << 61) - 1
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+")


def shingles(text: str, size: int = 3) -> frozenset[str]:
    """The word ``size``-grams of ``text`` (case-folded; each CJK character is a word).

    A text shorter than ``size`` words is one shingle of all its words.
    """
    words = _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())
    if len(words) < size:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


def _hashed(grams: frozenset[str]) -> frozenset[int]:
    """32-bit hashes of the shingles: CRC-32 is stable across processes, unlike ``hash``."""
    return frozenset(zlib.crc32(g.encode()) for g in grams)


def jaccard(a: frozenset, b: frozenset) -> float:
    """|a ∩ b| / |a ∪ b| (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def _rows_per_band(threshold: float, num_perm: int, recall: float = 0.995) -> int:
    """The most rows per band that still make a pair at ``threshold`` a candidate with
    probability ≥ ``recall``: 1 − (1 − t^r)^b, b = num_perm // r."""
    best = 1
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            best = rows
    return best


class NearDuplicateIndex:
    """An online index of questions that answers "is this a near copy of one I have?".

    Examples
    --------
    >>> index = NearDuplicateIndex(threshold=0.8)
    >>> index.add("q1", "Which gene is linked to the disorder with short stature and seizures?")
    >>> index.add("q2", "Which gene is linked to the disorder with short stature and seizures?")
    'q1'

    Parameters
    ----------
    threshold:
        Jaccard similarity at or above which a question is a copy
        (``settings.qa.near_duplicate_threshold``).
    shingle:
        Words per shingle.
    num_perm:
        MinHash functions per signature.
    seed:
        Seeds the hash functions.
    """

    def __init__(
        self, threshold: float = 0.8, shingle: int = 3, *, num_perm: int = 128, seed: int = 0
    ) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if shingle < 1:
            raise ValueError(f"shingle must be at least 1 word, got {shingle}")
        self.threshold = threshold
        self.shingle = shingle
        self.rows = _rows_per_band(threshold, num_perm)
        self.bands = num_perm // self.rows
        rng = np.random.default_rng(seed)
        # h(x) = (a·x + b) mod (2^61 − 1) with a < 2^31 and x < 2^32: no uint64 overflow.
        self._a = rng.integers(1, 1 << 31, size=(self.bands * self.rows, 1), dtype=np.uint64)
        self._b = rng.integers(0, _MERSENNE, size=(self.bands * self.rows, 1), dtype=np.uint64)
        # Mixes the rows of a band into one key (wrapping arithmetic is fine for a key).
        self._mix = rng.integers(1, 1 << 63, size=self.rows, dtype=np.uint64)
        self._buckets: list[dict[int, list[str]]] = [defaultdict(list) for _ in range(self.bands)]
        self._hashes: dict[str, frozenset[int]] = {}

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._hashes

    def _band_keys(self, hashes: frozenset[int]) -> list[int]:
        x = np.fromiter(hashes, dtype=np.uint64, count=len(hashes))
        signature = ((self._a * x + self._b) % np.uint64(_MERSENNE)).min(axis=1)
        with np.errstate(over="ignore"):
            keys = (signature.reshape(self.bands, self.rows) * self._mix).sum(axis=1)
        return keys.tolist()

    def find(self, text: str) -> tuple[str, float] | None:
        """The most similar indexed question at or above the threshold, with its similarity."""
        hashes = _hashed(shingles(text, self.shingle))
        return self._find(hashes, self._band_keys(hashes)) if hashes else None

    def _find(self, hashes: frozenset[int], keys: list[int]) -> tuple[str, float] | None:
        candidates: dict[str, None] = {}
        for bucket, key in zip(self._buckets, keys, strict=True):
            for other in bucket.get(key, ()):
                candidates[other] = None
        best: tuple[str, float] | None = None
        for other in candidates:
            score = jaccard(hashes, self._hashes[other])
            if score >= self.threshold and (best is None or score > best[1]):
                best = (other, score)
        return best

    def add(self, item_id: str, text: str) -> str | None:
        """Index ``text`` under ``item_id`` unless it nearly copies an indexed question; then
        return that question's id (the most similar one) and index nothing.

        An empty text is indexed as nobody's copy.
        """
        hashes = _hashed(shingles(text, self.shingle))
        if not hashes:
            self._hashes[item_id] = hashes
            return None
        keys = self._band_keys(hashes)
        twin = self._find(hashes, keys)
        if twin is not None:
            return twin[0]
        self._hashes[item_id] = hashes
        for bucket, key in zip(self._buckets, keys, strict=True):
            bucket[key].append(item_id)
        return None
