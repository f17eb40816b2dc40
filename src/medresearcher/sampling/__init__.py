"""Subgraph sampling for QA synthesis (MedResearcher-R1 §3.1.2).

Build a :class:`GraphView` once, then draw seeded samples from rare anchors::

    view = GraphView.from_records(iter_entities("demo"), iter_relations("demo"))
    sample = max_chain(view, "ORPHA:324", max_hops=5, seed=0)
"""

from medresearcher.sampling.graph import GraphView, rarity_score
from medresearcher.sampling.search import longest_path
from medresearcher.sampling.store_view import StoreGraphView
from medresearcher.sampling.strategies import (
    STRATEGIES,
    augmented_chain,
    community_core_path,
    dual_core_bridge,
    max_chain,
    mixed,
    sample_id,
)
from medresearcher.sampling.validity import (
    DEFAULT_PREDICATES,
    ChainRules,
    competing_ends,
    is_medically_valid,
    parse_chain,
)

__all__ = [
    "DEFAULT_PREDICATES",
    "STRATEGIES",
    "ChainRules",
    "GraphView",
    "StoreGraphView",
    "augmented_chain",
    "community_core_path",
    "competing_ends",
    "dual_core_bridge",
    "is_medically_valid",
    "longest_path",
    "max_chain",
    "mixed",
    "parse_chain",
    "rarity_score",
    "sample_id",
]
