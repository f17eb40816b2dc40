"""Milvus (Lite) against the embedded index on the demo corpus: quality, latency, ingest rate.

The tasks are bench_retrieval.py's own (imported, not copied): PubMedQA known items (each
question must find its abstract) and ~300 seeded rare Orphanet disorders found by name and
by two hallmark phenotypes, at document level (counting twins) and at entity level
(``search_entities``). Both backends answer the same queries with the same settings; the
table gives each metric per backend and the share of queries whose top 10 is identical.

Also measured: query latency p50/p95 (one thread, the machine may be busy: figures, never
asserted), the ingest rate (Milvus inserts in batches of ``[retrieval.milvus] batch_size``
against the embedded build), and a build resumed half-way: Milvus Lite keeps BM25
statistics per segment, so a collection ingested in two runs may rank slightly differently.

Usage: ``python benchmarks/bench_milvus.py [--quick] [--dense hashing] [--n 300]``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_retrieval import (
    YEAR,
    entity_tasks,
    known_items,
    latencies,
    metrics,
    p50_95,
    ranks,
    table,
)

from medresearcher.config import RetrievalSettings
from medresearcher.data import iter_documents
from medresearcher.retrieval import build_index, open_index
from medresearcher.retrieval.dense import HashingEmbedder
from medresearcher.retrieval.milvus_ingest import ingest_documents
from medresearcher.retrieval.open import milvus_uri

BACKENDS = ("embedded", "milvus")


def build(backend: str, docs: list, folder: Path, embedder, resume_at: int | None = None) -> dict:
    """Index ``docs`` on ``backend`` in ``folder``; Milvus optionally in two runs."""
    if backend == "embedded":
        started = time.perf_counter()
        build_index(docs, folder, embedder=embedder, source="bench")
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "docs_per_s": len(docs) / seconds}
    settings = RetrievalSettings(backend="milvus")
    uri = milvus_uri(settings, folder)
    started = time.perf_counter()
    if resume_at:
        ingest_documents(docs[:resume_at], uri, settings, embedder=embedder)
    ingest_documents(docs, uri, settings, embedder=embedder)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "docs_per_s": len(docs) / seconds}


def top10(retriever, items, lam: float, entities: bool) -> list[list[str]]:
    out = []
    for query, _ in items:
        if entities:
            found = retriever.search_entities(query, relevance_weight=lam)
            out.append([e.entity_id for e in found])
        else:
            hits = retriever.search(query, k=10, relevance_weight=lam)
            out.append([h.document.doc_id for h in hits])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the tiny bundle")
    parser.add_argument("--n", type=int, default=300, help="items per task")
    parser.add_argument("--dense", choices=["none", "hashing"], default="none")
    parser.add_argument("--no-resume", action="store_true", help="skip the two-run build")
    args = parser.parse_args()
    console = Console()
    threadpool_limits(1)
    bundle = "tiny" if args.quick else "demo"
    docs = list(iter_documents(bundle))
    doc_ids = {d.doc_id for d in docs}
    embedder = HashingEmbedder() if args.dense == "hashing" else None
    root = Path(tempfile.mkdtemp(prefix="bench-milvus-"))
    builds = {b: build(b, docs, root / b, embedder) for b in BACKENDS}
    retrievers = {
        b: open_index(RetrievalSettings(backend=b), root / b, current_year=YEAR) for b in BACKENDS
    }
    if not args.no_resume:
        half = len(docs) // 2
        builds["milvus (2 runs)"] = build("milvus", docs, root / "resumed", embedder, half)
        retrievers["milvus (2 runs)"] = open_index(
            RetrievalSettings(backend="milvus"), root / "resumed", current_year=YEAR
        )
    console.print(
        table(
            f"build: {len(docs):,} documents ({bundle}), dense {args.dense}",
            ["backend", "seconds", "docs/s"],
            [[b, f"{v['seconds']:.1f}", f"{v['docs_per_s']:,.0f}"] for b, v in builds.items()],
        )
    )
    pubmedqa, why = known_items(doc_ids)
    rng = random.Random(20261122)
    tasks = {"PubMedQA known item": rng.sample(pubmedqa, min(args.n, len(pubmedqa)))}
    if why:
        console.print(f"[yellow]PubMedQA skipped: {why}[/]")
        tasks = {}
    for name, items in entity_tasks(bundle, doc_ids, args.n).items():
        tasks[f"entity by {name}"] = items
    rows = []
    for task, items in tasks.items():
        for lam in (1.0, 0.4):
            for entities in (False, True):
                if entities and task.startswith("PubMedQA"):
                    continue
                level = "entities" if entities else "documents"
                base = top10(retrievers["embedded"], items, lam, entities)
                for backend, retriever in retrievers.items():
                    strict, twins = ranks(retriever, items, lam, args.dense != "none", entities)
                    m = metrics(twins if not entities else strict)
                    same = top10(retriever, items, lam, entities) if backend != "embedded" else base
                    agree = sum(a == b for a, b in zip(base, same, strict=True)) / len(items)
                    rows.append(
                        [
                            task,
                            level,
                            f"{lam:g}",
                            backend,
                            str(len(items)),
                            f"{m['MRR@10']:.3f}",
                            f"{m['R@1']:.3f}",
                            f"{m['R@10']:.3f}",
                            f"{agree:.3f}",
                        ]
                    )
    console.print(
        table(
            "quality (documents count twins); 'same top 10' = identical to the embedded list",
            ["task", "level", "λ", "backend", "n", "MRR@10", "R@1", "R@10", "same top 10"],
            rows,
        )
    )
    queries = [q for items in tasks.values() for q, _ in items][:200]
    lat_rows = []
    for backend, retriever in retrievers.items():
        doc_ms = latencies(lambda q, r=retriever: r.search(q, k=10), queries)
        ent_ms = latencies(lambda q, r=retriever: r.search_entities(q, k=10), queries)
        lat_rows.append([backend, p50_95(doc_ms), p50_95(ent_ms)])
    console.print(
        table(
            f"latency over {len(queries)} queries, ms p50 / p95 (1 thread)",
            ["backend", "search k=10", "search_entities k=10"],
            lat_rows,
        )
    )
    for retriever in retrievers.values():
        retriever.close()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
