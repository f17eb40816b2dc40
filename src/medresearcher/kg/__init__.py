"""The knowledge graph around rare medical entities (paper §3.1.1).

- :class:`GraphStore` (``kg.store``): entities, aliases, xrefs and 6-tuple relations with
  provenance in SQLite;
- ``kg.rarity``: rare seed entities by mention rate in a corpus;
- ``kg.expand``: growth by neighbour walks and by discovery through the retriever.
"""

from medresearcher.kg.store import GraphStore, normalise_name

__all__ = ["GraphStore", "normalise_name"]
