"""Descriptive rare-disease questions: "gene X, signs Y and Z: which disorder?"

The questions the agent really asks name a gene and two or three hallmark signs, never
the disease. For 300 seeded disorders of the demo knowledge graph, a query is one gene
symbol and three of its most frequent phenotypes (Obligate, Very frequent, Frequent),
none sharing a word with the disorder's name; the relevant answer is the disorder entity.
A second query set asks by name. Reported: R@1, R@10, MRR@10 at document level (the
entity of each returned document) and entity level (``search_entities``), for lexical,
dense and hybrid, against plain BM25 over the unenriched documents (body only), measured
in the same run. Goals (issue "Retriever quality"): entity-level hybrid MRR@10 at least
0.15 above that baseline, and R@10 ≥ 0.90.

    python benchmarks/bench_describe.py [--no-dense] [--n 300]

The first run embeds the demo corpus with MiniLM (minutes); the vectors are cached in
/tmp/medresearcher-bench-index/embeddings.sqlite (shared with bench_retrieval.py).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from medresearcher.config import RetrievalSettings
from medresearcher.data import iter_documents, iter_entities, iter_relations
from medresearcher.retrieval import EmbeddedRetriever, build_index, entity_of
from medresearcher.retrieval.tokenize import tokenize

SEED = 7
HALLMARK = {"Obligate (100%)": 0, "Very frequent (99-80%)": 1, "Frequent (79-30%)": 2}
EMBEDDING_CACHE = Path(tempfile.gettempdir()) / "medresearcher-bench-index" / "embeddings.sqlite"


def make_queries(n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(disorder, description) and (disorder, name) pairs, seeded."""
    entities = {e.id: e for e in iter_entities("demo")}
    signs: dict[str, list[tuple[int, str]]] = {}
    genes: dict[str, list[str]] = {}
    for r in iter_relations("demo"):
        if r.pred == "has_phenotype" and r.clinical.get("frequency") in HALLMARK:
            signs.setdefault(r.subj, []).append(
                (HALLMARK[r.clinical["frequency"]], entities[r.obj].name)
            )
        elif r.pred == "associated_gene":
            genes.setdefault(r.subj, []).append(entities[r.obj].name)
    rng = random.Random(SEED)
    candidates = sorted(c for c in genes if c in signs and entities[c].attrs.get("rare"))
    rng.shuffle(candidates)
    described, named = [], []
    for code in candidates:
        name_words = set(tokenize(entities[code].name))
        hallmarks = [s for _, s in sorted(signs[code]) if not set(tokenize(s)) & name_words]
        symbols = [g for g in genes[code] if not set(tokenize(g)) & name_words]
        if len(hallmarks) >= 3 and symbols:
            query = f"{rng.choice(symbols)} " + ", ".join(rng.sample(hallmarks[:6], 3))
            described.append((code, query))
            named.append((code, entities[code].name))
        if len(described) >= n:
            break
    return described, named


def evaluate(
    retriever: EmbeddedRetriever,
    queries: list[tuple[str, str]],
    *,
    entity: bool,
    use_dense: bool,
    field_weights: dict[str, float] | None = None,
) -> tuple:
    reciprocal, at1, at10 = 0.0, 0, 0
    for code, query in queries:
        if entity:
            got = [e.entity_id for e in retriever.search_entities(query, k=10, use_dense=use_dense)]
        else:
            hits = retriever.search(query, k=10, use_dense=use_dense, field_weights=field_weights)
            got = list(dict.fromkeys(entity_of(h.document) for h in hits))
        if code in got:
            rank = got.index(code) + 1
            reciprocal += 1 / rank
            at10 += 1
            at1 += rank == 1
    n = len(queries)
    return at1 / n, at10 / n, reciprocal / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-dense", action="store_true", help="lexical only (no MiniLM)")
    parser.add_argument("--n", type=int, default=300, help="number of disorders")
    args = parser.parse_args()
    console = Console()
    described, named = make_queries(args.n)
    console.print(f"{len(described)} disorders; e.g. {described[0][1]!r} → {described[0][0]}")

    embedder = None
    if not args.no_dense:
        from medresearcher.retrieval.dense import MiniLMEmbedder

        embedder = MiniLMEmbedder(threads=1)
        EMBEDDING_CACHE.parent.mkdir(parents=True, exist_ok=True)
        console.print("building the demo index (the first run embeds the corpus: minutes) …")
    folder = Path(tempfile.mkdtemp()) / "index"
    started = time.perf_counter()
    build_index(
        iter_documents("demo"),
        folder,
        embedder=embedder,
        embedding_cache=EMBEDDING_CACHE if embedder else None,
    )
    console.print(f"index built in {time.perf_counter() - started:.1f} s")

    settings = RetrievalSettings()
    hybrid = EmbeddedRetriever(folder, settings)
    dense_only = EmbeddedRetriever(folder, settings.model_copy(update={"dense_weight": 1.0}))
    plain = {"body": 1.0}
    rows = [
        (
            "plain BM25, unenriched (baseline)",
            "document",
            evaluate(hybrid, described, entity=False, use_dense=False, field_weights=plain),
        )
    ]
    rows.append(
        (
            "BM25 + fields",
            "document",
            evaluate(
                hybrid,
                described,
                entity=False,
                use_dense=False,
                field_weights=settings.entity_field_weights,
            ),
        )
    )
    rows.append(
        ("BM25 + fields", "entity", evaluate(hybrid, described, entity=True, use_dense=False))
    )
    if embedder is not None:
        rows.append(
            (
                "dense (MiniLM)",
                "document",
                evaluate(dense_only, described, entity=False, use_dense=True),
            )
        )
        rows.append(
            (
                "hybrid (default)",
                "document",
                evaluate(
                    hybrid,
                    described,
                    entity=False,
                    use_dense=True,
                    field_weights=settings.entity_field_weights,
                ),
            )
        )
        rows.append(
            ("hybrid (default)", "entity", evaluate(hybrid, described, entity=True, use_dense=True))
        )
    rows.append(
        (
            "entity search, by name",
            "entity",
            evaluate(hybrid, named, entity=True, use_dense=embedder is not None),
        )
    )

    table = Table(
        title="describe: gene + three hallmark signs → disorder (λ 0.4)", title_justify="left"
    )
    for column in ("method", "level", "R@1", "R@10", "MRR@10"):
        table.add_column(column, justify="left" if column in {"method", "level"} else "right")
    for method, level, (r1, r10, mrr) in rows:
        table.add_row(method, level, f"{r1:.3f}", f"{r10:.3f}", f"{mrr:.3f}")
    console.print(table)
    baseline = rows[0][2][2]
    best = [r for r in rows if r[1] == "entity" and "name" not in r[0]][-1]
    gain = best[2][2] - baseline
    if embedder is not None:
        for state, figures in latency_under_load(hybrid, [q for _, q in described[:200]]).items():
            goal = "" if state == "idle" else " (goal p50 ≤ 25 ms)"
            console.print(f"hybrid query p50 / p95 ms, {state}: {figures}{goal}")
    console.print(
        f"{best[0]}, entity level: MRR@10 {best[2][2]:.3f} vs plain BM25 "
        f"{baseline:.3f} (+{gain:.3f}; goal +0.15 — {'met' if gain >= 0.15 else 'NOT met'}); "
        f"R@10 {best[2][1]:.3f} (goal ≥ 0.90 — {'met' if best[2][1] >= 0.9 else 'NOT met'})"
    )


def latency_under_load(retriever: EmbeddedRetriever, queries: list[str]) -> dict[str, str]:
    """Hybrid query p50 / p95 idle and with another process spinning on one core.

    On a 2-core machine, unpinned torch/BLAS thread pools make a query ~35× slower when
    another process is busy (measurements.md); the embedder pins them.
    """
    for query in queries[:10]:
        retriever.search(query)

    def run() -> str:
        times = []
        for query in queries:
            started = time.perf_counter()
            retriever.search(query)
            times.append((time.perf_counter() - started) * 1000)
        return f"{np.percentile(times, 50):.1f} / {np.percentile(times, 95):.1f}"

    result = {"idle": run()}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        result["one core busy"] = run()
    finally:
        busy.kill()
    return result


if __name__ == "__main__":
    main()
