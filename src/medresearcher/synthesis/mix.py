"""The guided/exploration mix (paper §3.2): D_train = α·D_guided + (1−α)·D_exploration.

A share α of the (question, rollout) items is generated with the Masked Trajectory Guidance
scaffold, the rest explore without it (α = 0.7 in the paper). The assignment is a pure,
seeded function of the batch:

- every item gets a rank key, a hash of ``(seed, qa_id, rollout)``, that does not depend on
  the other items, the order they come in, or the machine;
- the ``round(α·n)`` items with the smallest keys are guided, so the share is exact over the
  batch (not only in expectation), and the same batch with the same seed always splits the
  same way — which is what lets ``traj generate`` resume without changing its mind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from medresearcher.errors import InputError

__all__ = ["DEFAULT_ALPHA", "guided_count", "guided_items", "mix_key"]

#: The paper's share of guided trajectories (§3.2).
DEFAULT_ALPHA = 0.7

Item = tuple[str, int]


def mix_key(qa_id: str, rollout: int, seed: int) -> int:
    """The rank of one item in the draw: a stable 64-bit hash of (seed, qa id, rollout)."""
    blob = "\x1f".join(["mtg-mix", str(seed), qa_id, str(rollout)]).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def guided_count(n: int, alpha: float) -> int:
    """``round(α·n)``, half up (``round`` in Python rounds halves to even)."""
    _check_alpha(alpha)
    return int(alpha * n + 0.5)


def guided_items(items: Iterable[Item], alpha: float, seed: int) -> set[Item]:
    """The items of the batch that get the MTG scaffold.

    Parameters
    ----------
    items:
        ``(qa_id, rollout)`` pairs; duplicates count once.
    alpha:
        Share of guided items, in [0, 1].
    seed:
        Another seed, another split.

    Returns
    -------
    set
        Exactly :func:`guided_count` ``(len(unique items), alpha)`` of the items.

    Examples
    --------
    >>> items = [(f"Q:{i}", r) for i in range(10) for r in range(2)]
    >>> len(guided_items(items, 0.7, seed=0))
    14
    """
    unique = list(dict.fromkeys(items))
    k = guided_count(len(unique), alpha)
    ranked = sorted(unique, key=lambda item: (mix_key(item[0], item[1], seed), item))
    return set(ranked[:k])


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha (the guided share) must be between 0 and 1, got {alpha}")
