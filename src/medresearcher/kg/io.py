"""Loading the graph from bundles or JSONL, and exporting it for other tools.

Formats: JSONL (``entities.jsonl`` + ``relations.jsonl``, the bundle layout, so an export
can be imported again), GraphML (Gephi, Cytoscape, networkx; nested attributes as JSON
strings, since GraphML holds scalars only), and the D3 node-link JSON the web view draws.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Literal

import networkx as nx

from medresearcher.errors import InputError
from medresearcher.kg.store import GraphStore
from medresearcher.schema import Entity, Relation
from medresearcher.workspace import read_jsonl

__all__ = ["ExportFormat", "export_graph", "import_records"]

ExportFormat = Literal["jsonl", "graphml", "d3"]


def _records_file(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.jsonl.gz", f"{stem}.jsonl"):
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"{folder}: no {stem}.jsonl or {stem}.jsonl.gz")


def import_records(store: GraphStore, folder: str | Path) -> dict[str, int]:
    """Load ``entities`` then ``relations`` JSONL (gzipped or not) from ``folder``.

    Importing the same records again changes nothing. A bad record raises
    :class:`InputError` naming the file, the record (line) and the field; the whole
    relation batch is rolled back, so a failed import leaves no half-written relations.
    """
    folder = Path(folder)
    entities_path = _records_file(folder, "entities")
    relations_path = _records_file(folder, "relations")
    n_entities = store.add_entities(read_jsonl(entities_path, Entity))
    try:
        n_relations = store.add_relations(read_jsonl(relations_path, Relation))
    except InputError as exc:
        message = str(exc)
        if message.startswith("relation "):  # the store numbers records from 1, as lines
            message = f"{relations_path}:{message.removeprefix('relation ')}"
        raise InputError(message) from None
    return {"entities": n_entities, "relations": n_relations}


def export_graph(store: GraphStore, out: str | Path, fmt: ExportFormat) -> Path:
    """Write the whole graph to ``out`` (a folder for jsonl, a file otherwise)."""
    out = Path(out)
    if fmt == "jsonl":
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "entities.jsonl", "w", encoding="utf-8") as handle:
            for entity in store.iter_entities():
                handle.write(entity.model_dump_json() + "\n")
        with open(out / "relations.jsonl", "w", encoding="utf-8") as handle:
            for relation in store.iter_relations():
                handle.write(relation.model_dump_json() + "\n")
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "graphml":
        graph = store.to_networkx()
        for _, data in graph.nodes(data=True):
            _flatten(data)
        for _, _, data in graph.edges(data=True):
            _flatten(data)
        nx.write_graphml(graph, out)
        return out
    if fmt == "d3":
        nodes = [
            {"id": e.id, "name": e.name, "type": e.type, "rare": bool(e.attrs.get("rare"))}
            for e in store.iter_entities()
        ]
        links = [
            {
                "source": r.subj,
                "target": r.obj,
                "predicate": r.pred,
                "frequency": r.clinical.get("frequency"),
                "provenance": r.source,
            }
            for r in store.iter_relations()
        ]
        opener = gzip.open if out.suffix == ".gz" else open
        with opener(out, "wt", encoding="utf-8") as handle:
            json.dump({"nodes": nodes, "links": links}, handle, ensure_ascii=False)
        return out
    raise ValueError(f"unknown export format {fmt!r}: jsonl, graphml or d3")


def _flatten(data: dict) -> None:
    """GraphML holds scalars: nested values become JSON strings, None is dropped."""
    for key in list(data):
        value = data[key]
        if value is None:
            del data[key]
        elif isinstance(value, (dict, list)):
            data[key] = json.dumps(value, ensure_ascii=False, sort_keys=True)
