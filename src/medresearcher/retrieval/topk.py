"""Top-k selection over a score vector, shared by every index."""

from __future__ import annotations

import numpy as np

__all__ = ["top_k"]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest finite scores, best first (ties: lower index first).

    ``np.argpartition`` finds them in O(n); only those k are then sorted, which matters
    when the vector holds a million documents. ``-inf`` marks excluded documents.
    """
    k = min(k, scores.size)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    order = part[np.lexsort((part, -scores[part]))]
    return order[np.isfinite(scores[order])].astype(np.int64)
