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
    if k < scores.size:
        # argpartition picks arbitrarily among scores tied at the k-th place; keep the
        # lowest indices of that tie so every engine (embedded, Milvus) cuts the same way.
        threshold = scores[np.argpartition(-scores, k - 1)[k - 1]]
        above = np.flatnonzero(scores > threshold)
        part = np.concatenate([above, np.flatnonzero(scores == threshold)[: k - above.size]])
    else:
        part = np.arange(scores.size)
    order = part[np.lexsort((part, -scores[part]))]
    return order[np.isfinite(scores[order])].astype(np.int64)
