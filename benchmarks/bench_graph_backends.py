"""PostgreSQL against SQLite for the knowledge graph (issue 14): import rate, neighbour
query p50 and sampling p50, on the demo graph and on a generated graph.

The generated graph has ``--edges`` relations (5,000,000 for the issue's figure; the
default 200,000 runs in a few minutes on 2 cores) among ``edges / 5`` entities of six
types, with preferential attachment (a few hubs, a long tail) and random predicates.
Both stores import the same records through ``add_entities`` / ``add_relations`` (COPY
batches on PostgreSQL). Sampling uses ``max_chain`` through the batched store view
(:class:`~medresearcher.sampling.StoreGraphView`), the way a graph larger than memory is
sampled, and, on the demo graph, through the in-memory view as well.

    source scripts/start_test_postgres.sh   # or set MEDRESEARCHER_TEST_POSTGRES_DSN
    python benchmarks/bench_graph_backends.py [--edges 5000000] [--queries 300] [--samples 50]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from medresearcher.data import iter_entities, iter_relations
from medresearcher.kg import GraphStore
from medresearcher.kg.postgres_store import PostgresGraphStore
from medresearcher.sampling import GraphView, max_chain
from medresearcher.schema import Entity, Relation

SEED = 20261122
TYPES = ["disease", "phenotype", "gene", "drug", "anatomy", "category"]
PREDICATES = ["has_phenotype", "associated_gene", "treats", "located_in", "subclass_of"]


def generated_entities(n_nodes: int) -> Iterator[Entity]:
    rng = random.Random(SEED)
    for i in range(n_nodes):
        rare = i % 7 == 0
        yield Entity(
            id=f"GEN:{i}",
            type="disease" if rare else rng.choice(TYPES),
            name=f"entity {i}",
            attrs={"rare": True} if rare else {},
            source="bench",
        )


def generated_relations(n_nodes: int, n_edges: int) -> Iterator[Relation]:
    """Preferential attachment: the object is drawn from earlier endpoints half the time."""
    rng = random.Random(SEED + 1)
    ends: list[int] = []
    for i in range(n_edges):
        subj = rng.randrange(n_nodes)
        obj = rng.choice(ends) if ends and rng.random() < 0.5 else rng.randrange(n_nodes)
        if len(ends) < 2_000_000:
            ends.append(obj)
        else:
            ends[i % len(ends)] = obj
        yield Relation(
            subj=f"GEN:{subj}",
            pred=PREDICATES[(subj + obj) % len(PREDICATES)],
            obj=f"GEN:{obj}",
            clinical={"frequency": "frequent"} if i % 3 == 0 else {},
            source="bench",
        )


def p50_ms(fn: Callable[[Any], Any], items: list[Any]) -> float:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(
    name: str,
    store: Any,
    entities: Callable[[], Iterator[Entity]],
    relations: Callable[[], Iterator[Relation]],
    args: argparse.Namespace,
    rows: list[tuple[str, ...]],
    *,
    in_memory_too: bool,
) -> None:
    start = time.perf_counter()
    n_entities = store.add_entities(entities())
    n_relations = store.add_relations(relations())
    seconds = time.perf_counter() - start
    rng = random.Random(SEED)
    ids = sorted(i for i, _, _, _ in store.iter_node_facts())
    queried = rng.sample(ids, min(args.queries, len(ids)))
    neighbour = p50_ms(store.neighbours, queried)
    rare = [i for i, _, attrs, _ in store.iter_node_facts() if attrs.get("rare")]
    anchors = rng.sample(rare, min(args.samples, len(rare)))
    lazy = GraphView.from_store(store, in_memory=False)
    sampling = p50_ms(lambda a: max_chain(lazy, a, max_hops=4, seed=0), anchors)
    memory = ""
    if in_memory_too:
        start = time.perf_counter()
        view = GraphView.from_store(store, in_memory=True)
        load_s = time.perf_counter() - start
        memory = f"{p50_ms(lambda a: max_chain(view, a, max_hops=4, seed=0), anchors):.2f}"
        memory += f" (view load {load_s:.1f} s)"
    rows.append(
        (
            name,
            f"{n_entities:,} / {n_relations:,}",
            f"{seconds:.1f}",
            f"{n_relations / seconds:,.0f}",
            f"{neighbour:.2f}",
            f"{sampling:.2f}",
            memory or "-",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edges", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--dsn", default=os.environ.get("MEDRESEARCHER_TEST_POSTGRES_DSN"))
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    console = Console()
    if not args.dsn:
        console.print("[red]no PostgreSQL: source scripts/start_test_postgres.sh or pass --dsn[/]")
        raise SystemExit(2)
    n_nodes = max(10, args.edges // 5)
    graphs: list[tuple[str, Callable[[], Iterator[Entity]], Callable[[], Iterator[Relation]]]]
    graphs = []
    if not args.skip_demo:
        graphs.append(("demo", lambda: iter_entities("demo"), lambda: iter_relations("demo")))
    graphs.append(
        (
            f"generated {args.edges:,}",
            lambda: generated_entities(n_nodes),
            lambda: generated_relations(n_nodes, args.edges),
        )
    )
    rows: list[tuple[str, ...]] = []
    schemas: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        for label, entities, relations in graphs:
            in_memory_too = label == "demo"
            with GraphStore(Path(folder) / f"{len(rows)}.sqlite") as lite:
                measure(f"{label} · SQLite", lite, entities, relations, args, rows,
                        in_memory_too=in_memory_too)  # fmt: skip
            schemas.append(f"bench_{uuid.uuid4().hex[:8]}")
            with PostgresGraphStore(args.dsn, schema=schemas[-1]) as pg:
                measure(f"{label} · PostgreSQL", pg, entities, relations, args, rows,
                        in_memory_too=in_memory_too)  # fmt: skip
                for schema in schemas:
                    pg.conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    table = Table(title="graph store backends (import through add_entities/add_relations)")
    for column in (
        "graph · backend",
        "entities / relations",
        "import s",
        "relations/s",
        "neighbours p50 ms",
        "max_chain p50 ms (store view)",
        "max_chain p50 ms (in memory)",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
