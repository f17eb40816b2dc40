"""Mention counting for rare-entity mining: throughput, memory and exactness.

A seeded corpus of at least 200 MB is generated and streamed in chunks of documents (never
held whole): sentences of words drawn with their frequencies from the demo corpus's
vocabulary. A 50,000-term dictionary mixes multi-word names, hyphenated names, gene-like
symbols (matched case-sensitively) and single common words; 600 of its terms are planted
a known number of times, in varied case, next to traps that must not count (a gene symbol
in lower case, a name glued to a letter). Reported:

- MB/s of ``MentionMatcher.count`` in one process (one core); target ≥ 20 MB/s;
- RSS before and after streaming, and the peak: flat, whatever the corpus size;
- the baseline, in the same run: Python ``re`` with one big word-bounded alternation of a
  1,000-term subset on a 4 MB slice, and its time scaled to 50,000 terms (the cost of an
  alternation grows with its number of branches); the ratio of the two;
- whether every planted count was found exactly, and the throughput on the real demo
  corpus with the demo knowledge graph (denser in known names than PubMed).

    python benchmarks/bench_rarity.py [--mb 200]
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import time
from collections import Counter
from collections.abc import Iterator
from itertools import accumulate

from rich.console import Console
from rich.table import Table

from medresearcher.data import iter_documents, iter_entities
from medresearcher.kg.rarity import MentionMatcher
from medresearcher.schema import Entity

SEED = 20240611
TERMS = 50_000
PLANTED = 600
TARGET_MB_S = 20.0
DOC_WORDS = 220
CHUNK_DOCS = 2_000
BASELINE_TERMS = 1_000
BASELINE_SLICE_MB = 4

CONSONANTS = "bcdfghjklmnprstvwxz"
VOWELS = "aeiouy"
SUFFIXES = ("syndrome", "disease", "deficiency", "dysplasia", "type 2", "myopathy", "ataxia")


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def vocabulary() -> tuple[list[str], list[int]]:
    """Lower-case words of the demo corpus and their counts (the background's language)."""
    counts: Counter[str] = Counter()
    for doc in iter_documents("demo"):
        counts.update(re.findall(r"[a-z]+", f"{doc.title} {doc.text}".lower()))
    words = [w for w, _ in counts.most_common(30_000)]
    return words, [counts[w] for w in words]


def dictionary(rng: random.Random, words: list[str]) -> list[Entity]:
    """50,000 entities: pseudo-word names (each with its own pseudo-word, so that no name
    occurs by chance), hyphenated names, gene-like symbols and single real words."""
    known = set(words)
    pseudo: set[str] = set()
    while len(pseudo) < TERMS:
        word = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(3))
        if word not in known:
            pseudo.add(word)
    pool = sorted(pseudo)
    rng.shuffle(pool)
    symbols: set[str] = set()
    while len(symbols) < TERMS // 4:
        letters = "".join(rng.choice("ABCDEFGHIKLMNPRSTVWXZ") for _ in range(rng.randint(2, 5)))
        symbols.add(letters + str(rng.randint(1, 99)) + rng.choice(["", "", "A", "B"]))
    entities = []
    for i, symbol in enumerate(sorted(symbols)):
        entities.append(Entity(id=f"G:{i}", type="gene", name=symbol, source="bench"))
    commons = words[200:2_200]  # real, frequent words: many hits, many inside other words
    for i, word in enumerate(commons):
        entities.append(Entity(id=f"W:{i}", type="phenotype", name=word, source="bench"))
    i = 0
    while len(entities) < TERMS:
        p = pool[i]
        if i % 3 == 0:
            name = f"{p.capitalize()}-{rng.choice(words[:3000])} {rng.choice(SUFFIXES)}"
        elif i % 3 == 1:
            name = f"{rng.choice(words[:3000])} {p} {rng.choice(SUFFIXES)}"
        else:
            name = f"{p.capitalize()} {rng.choice(SUFFIXES)}"
        alias = [f"{p}-related {rng.choice(SUFFIXES)}"] if i % 5 == 0 else []
        entities.append(
            Entity(id=f"D:{i}", type="disease", name=name, aliases=alias, source="bench")
        )
        i += 1
    return entities


def variants(term: str, gene: bool, rng: random.Random) -> str:
    if gene:
        return term
    return rng.choice([term, term.lower(), term.upper(), term.title()])


def corpus(
    rng: random.Random,
    words: list[str],
    weights: list[int],
    target_bytes: int,
    plants: list[tuple[str, bool]],
) -> Iterator[list[str]]:
    """Chunks of documents until ``target_bytes``; the planted terms are spread over them."""
    cum = list(accumulate(weights))
    n_docs_estimate = target_bytes // (DOC_WORDS * 7)
    slots: dict[int, list[tuple[str, bool]]] = {}
    for plant in plants:
        slots.setdefault(rng.randrange(n_docs_estimate), []).append(plant)
    made = doc_no = 0
    while made < target_bytes or doc_no < n_docs_estimate:
        chunk = []
        for _ in range(CHUNK_DOCS):
            drawn = rng.choices(words, cum_weights=cum, k=DOC_WORDS)
            for k in range(0, DOC_WORDS, 20):
                drawn[k] = drawn[k].capitalize()
                drawn[k + 19] += "."
            planted = slots.pop(doc_no, [])
            for (term, gene), at in zip(
                planted, rng.sample(range(DOC_WORDS), len(planted)), strict=True
            ):
                drawn[at] = f"({variants(term, gene, rng)}),"
                if gene:  # traps: the symbol in lower case, glued to a letter
                    drawn[(at + 7) % DOC_WORDS] += f" {term.lower()} {term}x x{term}"
            text = " ".join(drawn)
            made += len(text)
            doc_no += 1
            chunk.append(text)
        yield chunk


def baseline(entities: list[Entity], sample: str) -> tuple[float, float]:
    """MB/s of one big ``re`` alternation over 1,000 terms, and scaled to 50,000 terms."""
    subset = [e.name for e in entities[:: len(entities) // BASELINE_TERMS]][:BASELINE_TERMS]
    pattern = re.compile(
        r"(?<!\w)(?:"
        + "|".join(map(re.escape, sorted(subset, key=len, reverse=True)))
        + r")(?!\w)",
        re.IGNORECASE,
    )
    started = time.perf_counter()
    for _ in pattern.finditer(sample):
        pass
    seconds = time.perf_counter() - started
    mb_s = len(sample.encode()) / 1e6 / seconds
    return mb_s, mb_s * BASELINE_TERMS / len(entities)


def demo_throughput() -> tuple[float, float]:
    entities = list(iter_entities("demo"))
    matcher = MentionMatcher(entities)
    texts = [f"{d.title}\n{d.text}" for d in iter_documents("demo")]
    started = time.perf_counter()
    for text in texts:
        matcher.count(text)
    seconds = time.perf_counter() - started
    mb = sum(len(t.encode()) for t in texts) / 1e6
    return mb, mb / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="corpus size in MB")
    args = parser.parse_args()
    console = Console()
    rng = random.Random(SEED)
    words, weights = vocabulary()
    entities = dictionary(rng, words)
    started = time.perf_counter()
    matcher = MentionMatcher(entities)
    build_s = time.perf_counter() - started

    plantable = [e for e in entities if not e.id.startswith("W:")]
    chosen = rng.sample(plantable, PLANTED)
    expected: Counter[str] = Counter()
    plants: list[tuple[str, bool]] = []
    for e in chosen:
        times = rng.randint(1, 40)
        terms = [e.name, *e.aliases]
        for _ in range(times):
            plants.append((rng.choice(terms), e.type == "gene"))
        expected[e.id] = times
    rng.shuffle(plants)

    rss_before, peak_before = rss_mb(), peak_rss_mb()
    counts: Counter[str] = Counter()
    total_bytes = 0
    seconds = 0.0
    sample = ""
    for chunk in corpus(rng, words, weights, args.mb * 1_000_000, plants):
        chunk_bytes = sum(len(t.encode()) for t in chunk)
        if not sample:
            sample = "\n".join(chunk)[: BASELINE_SLICE_MB * 1_000_000]
        started = time.perf_counter()
        for text in chunk:
            counts.update(matcher.count(text))
        seconds += time.perf_counter() - started
        total_bytes += chunk_bytes
    rss_after, peak_after = rss_mb(), peak_rss_mb()
    mb_s = total_bytes / 1e6 / seconds

    wrong = {
        e.id: (expected.get(e.id, 0), counts.get(e.id, 0))
        for e in plantable
        if expected.get(e.id, 0) != counts.get(e.id, 0)
    }
    re_mb_s, re_scaled = baseline(entities, sample)
    demo_mb, demo_mb_s = demo_throughput()

    title = f"MentionMatcher.count: {len(entities):,} entities, {len(matcher):,} names, one core"
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("corpus streamed", f"{total_bytes / 1e6:,.0f} MB")
    table.add_row("automaton build", f"{build_s:.1f} s")
    table.add_row("count time", f"{seconds:.1f} s")
    table.add_row("throughput", f"{mb_s:.1f} MB/s (target ≥ {TARGET_MB_S:.0f})")
    table.add_row("RSS before → after streaming", f"{rss_before:.0f} → {rss_after:.0f} MB")
    table.add_row("peak RSS before → after streaming", f"{peak_before:.0f} → {peak_after:.0f} MB")
    table.add_row(f"baseline: re alternation, {BASELINE_TERMS:,} terms", f"{re_mb_s:.2f} MB/s")
    table.add_row(f"baseline scaled to {len(entities):,} terms", f"{re_scaled:.3f} MB/s")
    table.add_row("ratio vs scaled baseline", f"{mb_s / re_scaled:,.0f}×")
    table.add_row("ratio vs 1,000-term baseline", f"{mb_s / re_mb_s:,.1f}×")
    planted = f"{len(expected) - len(wrong)}/{len(expected)} exact"
    table.add_row("planted entities", f"{planted}, {sum(expected.values()):,} mentions")
    table.add_row("demo corpus + demo KG (real text)", f"{demo_mb:.1f} MB at {demo_mb_s:.1f} MB/s")
    console.print(table)
    if wrong:
        console.print(f"[red]wrong counts (expected, got): {dict(list(wrong.items())[:10])}")
        raise SystemExit(1)
    verdict = "met" if mb_s >= TARGET_MB_S else "NOT met"
    console.print(f"throughput target {verdict}: {mb_s:.1f} MB/s per core")


if __name__ == "__main__":
    main()
