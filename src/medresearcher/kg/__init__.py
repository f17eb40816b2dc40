"""The knowledge graph around rare medical entities (paper §3.1.1).

- :class:`GraphStore` (``kg.store``): entities, aliases, xrefs and 6-tuple relations with
  provenance in SQLite; :class:`~medresearcher.kg.postgres_store.PostgresGraphStore` the
  same on PostgreSQL; :func:`open_graph_store` opens the one ``[graph]`` names;
- ``kg.rarity``: rare seed entities by mention rate in a corpus;
- ``kg.expand``: growth by neighbour walks and by discovery through the retriever.
"""

from medresearcher.kg.open import graph_exists, graph_location, open_graph_store
from medresearcher.kg.store import GraphStore, normalise_name

__all__ = [
    "GraphStore",
    "graph_exists",
    "graph_location",
    "normalise_name",
    "open_graph_store",
]
