"""Retrieval quality, speed and scale of the PrivateMedicalRetriever, against baselines run here.

What is measured, and why:

1. **Known-item PubMedQA** — each of the 1,000 PubMedQA questions (not in the corpus) must
   find its own abstract: nDCG@10, R@1, R@10, MRR@10 for BM25, dense MiniLM, convex hybrids
   and RRF, at λ = 1 (pure relevance) and the default λ = 0.4 (how much authority moves
   things), plus a λ sweep of the default hybrid. A sanity check the project must not lose.
2. **Entity definitions from the KG** — ~300 seeded Orphanet disorders: the name, then two
   hallmark phenotypes (most frequent, HPO labels), must find the disorder's ``ORPHA:`` page;
   "twins" also counts a page linked to the disorder (a Disease Ontology twin).
3. **Speed** on 2 cores with every thread pool pinned to 1 thread: lexical build rate, query
   p50/p95, MiniLM encode rate; stock bm25s measured in the same run as the baseline.
4. **Scale** — a generated corpus (default 1,000,000 documents, Zipf-like medical-ish words)
   built and queried in child processes that report peak RSS against an 8 GB budget.

The corpus is embedded once: vectors go to ``/tmp/medresearcher-bench-index`` (the index's
embedding cache, keyed by model and text), so only the first run pays the ~9 minutes.
``--quick`` uses the "tiny" bundle and a 50,000-document scale run. Timings are printed as
figures and ratios, never asserted: the machine may be busy.
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
import timeit
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import bm25s
import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from medresearcher.config import RetrievalSettings
from medresearcher.data import iter_documents, iter_entities, iter_relations
from medresearcher.retrieval.dense import DenseIndex, HashingEmbedder, MiniLMEmbedder
from medresearcher.retrieval.lexical import LexicalIndex
from medresearcher.retrieval.retriever import EmbeddedRetriever, build_index, document_text
from medresearcher.schema import Document

SEED = 20261122
YEAR = 2026  # "now" for the recency part of authority
CACHE_DIR = Path("/tmp/medresearcher-bench-index")
PUBMEDQA = Path(__file__).resolve().parents[1] / "../shared/data/pubmedqa/ori_pqal.json.gz"
RSS_BUDGET_MB = 8 * 1024
LAMBDAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# name -> (RetrievalSettings overrides, use_dense); "default" is RetrievalSettings() itself.
METHODS: dict[str, tuple[dict, bool]] = {
    "BM25": ({}, False),
    "dense": ({"dense_weight": 1.0}, True),
    "hybrid convex 0.3": ({"fusion": "convex", "dense_weight": 0.3}, True),
    "hybrid convex 0.5": ({"fusion": "convex", "dense_weight": 0.5}, True),
    "hybrid RRF": ({"fusion": "rrf"}, True),
}
ENTITIES = "search_entities"  # the default retriever's entity-level search, where it exists
# docs/measurements.md, known-item MRR@10 on an 11,172-document corpus (λ = 1).
ANCHOR_MRR = {"BM25": 0.943, "dense": 0.972, "hybrid convex 0.3": 0.966, "hybrid RRF": 0.971}
# Word parts of the synthetic scale corpus: prefix + 0-2 syllables + suffix, after COMMON.
PREFIXES = """cardio neuro hepato nephro dermato myo osteo gastro pneumo hemato endo immuno onco
angio arthro encephalo lympho retino thyro adeno chondro cranio cysto entero fibro leuko myelo"""
SYLLABLES = "ba ce di fo gu la me ni po ru sa te vi zo tra ple cro sta gli phe"
SUFFIXES = """itis osis emia pathy oma algia ectomy plasia trophy genic uria penia megaly lysis
sclerosis cytosis ectasia dysplasia plegia rrhea"""
COMMON = """the of and in with patients was were disease treatment clinical study gene mutation
therapy syndrome results associated risk cells protein expression onset levels severe chronic"""


class MemoEmbedder:
    """Query vectors computed once in a batch, so quality runs do not re-encode per variant."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.memo: dict[str, np.ndarray] = {}

    def prefill(self, texts: Sequence[str]) -> None:
        todo = sorted(set(texts) - set(self.memo))
        self.memo.update(zip(todo, self.inner.encode(todo, batch_size=64), strict=True))

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False):
        self.prefill(texts)
        return np.stack([self.memo[t] for t in texts])


# ------------------------------------------------------------------------------ tasks
def known_items(doc_ids: set[str]) -> tuple[list[tuple[str, str]], str]:
    """(question, "PMID:<id>") for every PubMedQA question whose abstract is in the corpus."""
    if not PUBMEDQA.is_file():
        return [], f"{PUBMEDQA.resolve()} not found"
    with gzip.open(PUBMEDQA, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    items = [(v["QUESTION"], f"PMID:{k}") for k, v in data.items() if f"PMID:{k}" in doc_ids]
    return items, "" if items else "no PubMedQA abstract in this corpus"


def entity_tasks(bundle: str, doc_ids: set[str], n: int) -> dict[str, list[tuple[str, str]]]:
    """~n seeded rare Orphanet disorders: name → page, two hallmark phenotypes → page."""
    labels: dict[str, str] = {}
    names: dict[str, str] = {}
    for e in iter_entities(bundle):
        if e.id.startswith("HP:"):
            labels[e.id] = e.name
        elif e.id.startswith("ORPHA:") and e.attrs.get("rare") and e.id in doc_ids:
            names[e.id] = e.name
    phenotypes: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for r in iter_relations(bundle):
        if r.pred == "has_phenotype" and r.subj in names and r.obj in labels:
            phenotypes[r.subj].append((-float(r.clinical.get("freq_mid") or 0.0), r.obj))
    eligible = sorted(d for d in names if len(phenotypes[d]) >= 2)
    sample = random.Random(SEED).sample(eligible, min(n, len(eligible)))
    signs = [(", ".join(labels[p] for _, p in sorted(phenotypes[d])[:2]), d) for d in sample]
    return {"name": [(names[d], d) for d in sample], "phenotypes": signs}


def ranks(
    retriever: EmbeddedRetriever,
    items: list[tuple[str, str]],
    lam: float,
    use_dense: bool,
    entities: bool = False,
) -> tuple[list[int], list[int]]:
    """1-based rank of the target in the top 10 (0: missing), strict and counting twins.

    With ``entities``, ranks entity-level results (``search_entities``) by entity id."""
    strict, twins = [], []
    for query, target in items:
        if entities:
            found = retriever.search_entities(query, relevance_weight=lam, use_dense=use_dense)
            strict.append(next((i for i, h in enumerate(found, 1) if h.entity_id == target), 0))
            twins.append(strict[-1])
            continue
        hits = retriever.search(query, k=10, relevance_weight=lam, use_dense=use_dense)
        ids = [h.document.doc_id for h in hits]
        strict.append(ids.index(target) + 1 if target in ids else 0)
        linked = [i for i, h in enumerate(hits, 1) if target in h.document.entity_ids]
        twins.append(min(strict[-1] or 11, linked[0] if linked else 11) % 11)
    return strict, twins


def metrics(r: list[int]) -> dict[str, float]:
    n = max(len(r), 1)
    return {
        "nDCG@10": sum(1 / math.log2(x + 1) for x in r if x) / n,
        "R@1": sum(x == 1 for x in r) / n,
        "R@10": sum(x > 0 for x in r) / n,
        "MRR@10": sum(1 / x for x in r if x) / n,
    }


# ------------------------------------------------------------------------------ speed
def latencies(fn: Callable[[str], object], queries: Sequence[str], warmup: int = 10) -> np.ndarray:
    """Milliseconds per call, after ``warmup`` untimed calls."""
    for q in queries[:warmup]:
        fn(q)
    return np.asarray([timeit.timeit(lambda q=q: fn(q), number=1) * 1e3 for q in queries])


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def bm25s_stock(texts: list[str]) -> bm25s.BM25:
    index = bm25s.BM25(method="lucene")
    index.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    return index


# ------------------------------------------------------------------------------ scale
def vocabulary(seed: int, size: int = 40_000) -> list[str]:
    """Common words first (the top Zipf ranks), then prefix-syllables-suffix pseudo-terms."""
    prefixes, syllables, suffixes = PREFIXES.split(), SYLLABLES.split(), SUFFIXES.split()
    rng, common = random.Random(seed), COMMON.split()
    words = dict.fromkeys([*common, *(p + s for p in prefixes for s in suffixes)])
    while len(words) < size:
        middle = "".join(rng.choices(syllables, k=rng.randint(0, 2)))
        words[rng.choice(prefixes) + middle + rng.choice(suffixes)] = None
    head, tail = list(words)[: len(common)], list(words)[len(common) :]
    rng.shuffle(tail)
    return head + tail


def zipf_cdf(size: int) -> np.ndarray:
    weights = 1.0 / (np.arange(size) + 2.7) ** 1.05
    return np.cumsum(weights / weights.sum())


def synthetic_documents(n: int, seed: int = SEED) -> Iterator[Document]:
    """n documents of 100–150 Zipf-drawn words, generated 10,000 at a time."""
    words, rng = vocabulary(seed), np.random.default_rng(seed)
    cdf = zipf_cdf(len(words))
    for start in range(0, n, 10_000):
        lengths = rng.integers(100, 151, size=min(10_000, n - start))
        ids = np.searchsorted(cdf, rng.random(int(lengths.sum())))
        tokens = [words[i] for i in np.minimum(ids, len(words) - 1).tolist()]
        begin = 0
        for j, end in enumerate(np.cumsum(lengths).tolist()):
            yield Document(
                doc_id=f"SYN:{start + j}",
                title=" ".join(tokens[begin : begin + 8]).capitalize(),
                text=" ".join(tokens[begin + 8 : end]),
                source="synthetic",
                source_type="article",
                year=1990 + (start + j) % 36,
            )
            begin = end


def scale_queries(count: int = 100, seed: int = SEED) -> list[str]:
    """Queries of 2–5 mid-frequency words (Zipf ranks 30–3,000)."""
    words, rng = vocabulary(seed), random.Random(seed + 1)
    return [
        " ".join(words[rng.randrange(30, 3000)] for _ in range(rng.randint(2, 5)))
        for _ in range(count)
    ]


def rss_mb() -> float:
    """Peak RSS of this process. On Linux ``ru_maxrss`` survives exec, so a child spawned by
    a parent holding torch would report the parent's peak: read ``VmHWM`` there instead."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scale_child(mode: str, folder: Path, n: int) -> dict:
    """Runs in a child process; returns what the parent prints."""
    threadpool_limits(limits=1)
    if mode == "build":
        t = time.perf_counter()
        manifest = build_index(synthetic_documents(n), folder, source="synthetic")
        out = {"index_s": time.perf_counter() - t, "lexical_s": manifest["lexical"]["build_s"]}
        out["rss_index_mb"] = rss_mb()
        t, rng = time.perf_counter(), np.random.default_rng(SEED)
        vectors = np.empty((n, 384), dtype=np.float16)
        for start in range(0, n, 1 << 16):
            vectors[start : start + (1 << 16)] = rng.standard_normal(
                (min(1 << 16, n - start), 384), dtype=np.float32
            )
        DenseIndex.from_vectors(vectors, "random-float16-384").save(folder / "dense-random")
        return {**out, "dense_s": time.perf_counter() - t, "rss_mb": rss_mb()}
    t = time.perf_counter()
    # Random vectors sit far below the default cosine floor; -1 keeps every dense candidate.
    retriever = EmbeddedRetriever(
        folder, RetrievalSettings(min_dense_similarity=-1.0), current_year=YEAR
    )
    retriever.dense = DenseIndex.load(folder / "dense-random")
    retriever.embedder = HashingEmbedder(384)  # same dim as the random vectors
    out = {"load_s": time.perf_counter() - t}
    queries = scale_queries()
    out["lexical_ms"] = latencies(lambda q: retriever.search(q, use_dense=False), queries, 5)
    out["hybrid_ms"] = latencies(lambda q: retriever.search(q), queries, 3)
    out["rss_mb"] = rss_mb()
    retriever.dense.float32_cache_bytes = 1 << 40  # now keep a float32 copy of the matrix
    out["hybrid32_ms"] = latencies(lambda q: retriever.search(q), queries[:30], 1)
    out["rss32_mb"] = rss_mb()
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in out.items()}


def run_scale_child(mode: str, folder: Path, n: int) -> dict:
    cmd = [sys.executable, __file__, "--scale-child", mode, str(folder), "--scale", str(n)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"scale {mode} child failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ output
def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    out = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        out.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*row)
    return out


def p50_95(values: Sequence[float]) -> str:
    return "{:.2f} / {:.2f}".format(*np.percentile(np.asarray(values), [50, 95]))


Goals = list[tuple[str, str, bool]]


def quality(
    console: Console,
    retrievers: dict[str, EmbeddedRetriever],
    qa: list[tuple[str, str]],
    ent: dict[str, list[tuple[str, str]]],
    goals: Goals,
) -> None:
    """Tasks 1 and 2, and the λ sweep of the default retriever."""
    lam0 = RetrievalSettings().relevance_weight
    runs = [(n, lam) for n in METHODS if n in retrievers for lam in (1.0, lam0)]
    known: dict[tuple[str, float], dict[str, float]] = {}
    rows = []
    for name, lam in runs if qa else []:
        known[name, lam] = m = metrics(ranks(retrievers[name], qa, lam, METHODS[name][1])[0])
        anchor = ANCHOR_MRR.get(name) if lam == 1.0 else None
        rows.append([name, f"{lam:.1f}", *(f"{v:.3f}" for v in m.values()), f"{anchor or '':}"])
    cols = ["method", "λ", "nDCG@10", "R@1", "R@10", "MRR@10", "anchor MRR (λ 1)"]
    console.print(table(f"1. Known-item PubMedQA ({len(qa)} questions)", cols, rows))
    rows = []
    use_dense = "dense" in retrievers
    entity_runs = [(ENTITIES, lam) for lam in (1.0, lam0)] if ENTITIES in retrievers else []
    for name, lam in runs + entity_runs:
        for kind, items in ent.items():
            args = (
                (items, lam, use_dense, True)
                if name == ENTITIES
                else (items, lam, METHODS[name][1])
            )
            strict, twins = (metrics(r) for r in ranks(retrievers[name], *args))
            cells = [f"{strict[c]:.3f}" for c in ("R@1", "R@10", "MRR@10")]
            rows.append([name, f"{lam:.1f}", kind, *cells, f"{twins['MRR@10']:.3f}"])
    cols = ["method", "λ", "query", "R@1", "R@10", "MRR@10", "MRR@10 twins"]
    title = f"2. Orphanet page from the KG ({len(ent['name'])} disorders): query = its name, or "
    title += "two hallmark phenotypes; 'twins' also counts a page linked to it (DO twin); "
    title += f"'{ENTITIES}': entity-level results, entity field weights"
    console.print(table(title, cols, rows))
    rows = []
    for lam in LAMBDAS:
        cells = [f"{lam:.1f}"]
        if qa:
            m = metrics(ranks(retrievers["default"], qa, lam, use_dense)[0])
            cells += [f"{v:.3f}" for v in m.values()]
        for items in ent.values():
            mrr = metrics(ranks(retrievers["default"], items, lam, use_dense)[0])["MRR@10"]
            cells.append(f"{mrr:.3f}")
        rows.append(cells)
    cols = ["λ", *(["nDCG@10", "R@1", "R@10", "MRR@10"] if qa else []), "name MRR", "pheno MRR"]
    s = RetrievalSettings()
    what = f"{s.fusion}, dense weight {s.dense_weight}" if use_dense else "BM25 only"
    console.print(table(f"λ sweep of the default retriever ({what}); λ 1 = relevance", cols, rows))
    for lam in (1.0, lam0) if qa and use_dense else ():
        hyb = known["hybrid convex 0.3", lam]
        best = max(known["BM25", lam]["MRR@10"], known["dense", lam]["MRR@10"])
        r10, mrr = hyb["R@10"], hyb["MRR@10"]
        goals.append((f"hybrid 0.3 R@10 ≥ 0.95 known-item, λ {lam}", f"{r10:.3f}", r10 >= 0.95))
        goals.append(
            (f"hybrid 0.3 MRR@10 ≥ best single, λ {lam}", f"{mrr:.3f} vs {best:.3f}", mrr >= best)
        )


def speed(
    console: Console,
    folder: Path,
    docs: list[Document],
    pool: list[str],
    embedder: MiniLMEmbedder | None,
    goals: Goals,
) -> None:
    """Task 3: build rates and query latency on the bundle's corpus, 1 thread."""
    texts = [document_text(d) for d in docs]
    lex_s, stock_s = best_of(lambda: LexicalIndex.build(texts)), best_of(lambda: bm25s_stock(texts))
    lexical, stock = LexicalIndex.build(texts), bm25s_stock(texts)
    queries = random.Random(SEED).sample(pool, min(300, len(pool)))
    queries = (queries * math.ceil(200 / len(queries)))[: max(200, len(queries))]
    live = EmbeddedRetriever(folder, RetrievalSettings(), embedder=embedder, current_year=YEAR)
    tokens = lambda q: bm25s.tokenize([q], stopwords="en", return_ids=False, show_progress=False)  # noqa: E731
    timing = {
        "LexicalIndex.search, k=100": latencies(lambda q: lexical.search(q, 100), queries),
        "bm25s stock retrieve, k=100 (baseline)": latencies(
            lambda q: stock.retrieve(tokens(q), k=100, show_progress=False), queries
        ),
        "retriever, lexical (use_dense=False)": latencies(
            lambda q: live.search(q, use_dense=False), queries
        ),
    }
    if hasattr(live, ENTITIES):
        timing["retriever, search_entities, lexical"] = latencies(
            lambda q: live.search_entities(q, use_dense=False), queries
        )
    if embedder:
        timing["MiniLM query encode"] = latencies(lambda q: embedder.encode([q]), queries)
        timing["retriever, hybrid (default)"] = latencies(lambda q: live.search(q), queries)
    live.close()
    rows = [[k, p50_95(v)] for k, v in timing.items()]
    console.print(
        table(
            f"3a. Query latency ({len(queries)} queries, 1 thread)", ["path", "p50 / p95 ms"], rows
        )
    )
    rate = len(texts) / lex_s
    rows = [
        ["LexicalIndex.build (ours)", f"{rate:,.0f}", f"{stock_s / lex_s:.2f}×"],
        ["bm25s tokenize + index (baseline)", f"{len(texts) / stock_s:,.0f}", "1.00×"],
    ]
    if embedder:
        sample = texts[:: max(1, len(texts) // 128)][:128]
        enc_s = best_of(lambda: embedder.encode(sample, batch_size=32), 1)
        rows.append(["MiniLM encode, 1 thread, batch 32", f"{len(sample) / enc_s:,.1f}", ""])
    console.print(
        table(f"3b. Build rates ({len(texts):,} docs)", ["step", "docs/s", "vs baseline"], rows)
    )
    for name, limit in (("lexical", 20), ("hybrid", 50)):
        key = f"retriever, {name} (" + ("use_dense=False)" if name == "lexical" else "default)")
        if key in timing:
            p50 = float(np.median(timing[key]))
            goals.append((f"{name} query p50 ≤ {limit} ms", f"{p50:.1f} ms", p50 <= limit))
    goals.append(("lexical build ≥ 2,000 docs/s", f"{rate:,.0f} docs/s", rate >= 2000))


def scale(console: Console, n: int, goals: Goals) -> None:
    """Task 4: build and serve a generated corpus in child processes, peak RSS of each."""
    console.print(
        f"4. Scale: generating, indexing and querying {n:,} documents in child processes …"
    )
    with tempfile.TemporaryDirectory(prefix="bench_retrieval_scale_") as tmp:
        built = run_scale_child("build", Path(tmp) / "index", n)
        served = run_scale_child("serve", Path(tmp) / "index", n)
    b, s, mb = built, served, "{:,.0f}".format
    rows = [
        ["build_index: generate + docstore + BM25", f"{b['index_s']:.1f} s", mb(b["rss_index_mb"])],
        ["  of which BM25 (build_index manifest)", f"{b['lexical_s']:.1f} s", ""],
        ["dense: from_vectors + save", f"{b['dense_s']:.1f} s", mb(b["rss_mb"])],
        ["open retriever + dense (mmap)", f"{s['load_s']:.1f} s", ""],
        ["lexical query p50 / p95 ms (100)", p50_95(s["lexical_ms"]), ""],
        ["hybrid query p50 / p95 ms (100)", p50_95(s["hybrid_ms"]), mb(s["rss_mb"])],
        ["hybrid, float32 copy kept (30)", p50_95(s["hybrid32_ms"]), mb(s["rss32_mb"])],
    ]
    title = f"4. Scale: {n:,} synthetic documents. Dense part: random float16 384-d vectors "
    title += "(cost and memory of exact cosine, no semantics), HashingEmbedder queries"
    console.print(table(title, ["step", "time", "peak RSS MB"], rows))
    peak = max(built["rss_mb"], served["rss_mb"])
    label = "1M corpus under 8 GB" + ("" if n == 1_000_000 else f" (ran {n:,})")
    goals.append((label, f"{peak:,.0f} MB peak RSS", peak < RSS_BUDGET_MB))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help='"tiny" bundle, 50k scale run')
    parser.add_argument("--no-dense", action="store_true", help="BM25 only: no MiniLM")
    parser.add_argument("--scale", type=int, default=None, help="scale corpus size (1,000,000)")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale run")
    parser.add_argument("--scale-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_child:
        print(json.dumps(scale_child(args.scale_child[0], Path(args.scale_child[1]), args.scale)))
        return
    threadpool_limits(limits=1)
    console = Console(width=None if sys.stdout.isatty() else 120)
    started, goals = time.perf_counter(), []
    bundle = "tiny" if args.quick else "demo"
    docs = list(iter_documents(bundle))
    doc_ids = {d.doc_id for d in docs}
    qa, qa_skip = known_items(doc_ids)
    ent = entity_tasks(bundle, doc_ids, 300)
    console.print(
        f"[bold]bench_retrieval[/]: bundle {bundle!r} ({len(docs):,} docs), {len(qa)} known-item "
        f"questions, {len(ent['name'])} disorders; thread pools pinned to 1"
    )
    if qa_skip:
        console.print(f"[yellow]1. Known-item PubMedQA skipped: {qa_skip}[/]")
    embedder, kwargs = (None if args.no_dense else MiniLMEmbedder(threads=1)), {}
    if embedder and "embedding_cache" in inspect.signature(build_index).parameters:
        kwargs["embedding_cache"] = CACHE_DIR / "embeddings.sqlite"
        console.print(
            f"Dense: the first run embeds {len(docs):,} documents with MiniLM on 1 thread (~"
            f"{len(docs) / 24 / 60:.0f} min at 24 docs/s); the vectors are kept in {CACHE_DIR} "
            "and later runs reuse them."
        )
    with tempfile.TemporaryDirectory(prefix="bench_retrieval_") as tmp:
        folder = Path(tmp) / "index"
        dense = build_index(docs, folder, embedder=embedder, progress=True, **kwargs)["dense"]
        if dense:
            console.print(f"  dense: {dense.get('embedded', '?')} embedded, {dense['build_s']} s")
        memo = MemoEmbedder(embedder) if embedder else None
        retrievers = {
            name: EmbeddedRetriever(
                folder, RetrievalSettings(**over), embedder=memo, current_year=YEAR
            )
            for name, (over, use_dense) in METHODS.items()
            if embedder or not use_dense
        }
        retrievers["default"] = EmbeddedRetriever(folder, embedder=memo, current_year=YEAR)
        if hasattr(retrievers["default"], ENTITIES):
            retrievers[ENTITIES] = retrievers["default"]
        pool = [q for q, _ in qa] + [q for items in ent.values() for q, _ in items]
        if memo:
            t = time.perf_counter()
            memo.prefill(pool)
            console.print(
                f"  {len(memo.memo):,} queries encoded in {time.perf_counter() - t:.1f} s"
            )
        quality(console, retrievers, qa, ent, goals)
        for r in {id(r): r for r in retrievers.values()}.values():
            r.close()
        speed(console, folder, docs, pool, embedder, goals)
    if not args.no_scale:
        scale(console, args.scale or (50_000 if args.quick else 1_000_000), goals)
    rows = [[g, v, "met" if ok else "[red]NOT met[/]"] for g, v, ok in goals]
    console.print(table("Goals", ["goal", "measured", ""], rows))
    console.print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
