"""PubMed baseline ingestion: throughput and peak memory of the streaming reader.

A synthetic 50,000-article baseline-style ``.xml.gz`` (seeded, written to a temp folder one
article at a time) is ingested into JSONL by ``ingest_pubmed_baseline`` in a child process that
reports its own peak RSS; the target is under 300 MB whatever the file size. The baseline,
measured in the same run, is the naive approach: ``ElementTree.parse`` of the whole file, then
the same conversion and the same JSONL writer, in another child process. Each child measures
its own time after its imports, so interpreter start-up is not counted.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ARTICLES = 50_000
SEED = 20250101
TARGET_RSS_MB = 300
LABELS = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")
PUB_TYPES = (
    ("D016428", "Journal Article"),
    ("D016449", "Randomized Controlled Trial"),
    ("D016454", "Review"),
    ("D017418", "Meta-Analysis"),
    ("D002363", "Case Reports"),
    ("D064888", "Observational Study"),
    ("D013485", "Research Support, Non-U.S. Gov't"),
)
QUALIFIERS = ("drug therapy", "genetics", "diagnosis", "epidemiology", "therapeutic use")

# The child runs with a file path, an output path and a mode; it prints one JSON line.
CHILD = r"""
import gzip, json, resource, sys, time
import xml.etree.ElementTree as ET
from medresearcher.sources.pubmed_xml import document_from_article, ingest_pubmed_baseline
from medresearcher.workspace import JsonlWriter
mode, path, out = sys.argv[1:4]
start = time.perf_counter()
if mode == "streaming":
    docs = ingest_pubmed_baseline(path, out, progress=False)["written"]
else:
    with gzip.open(path, "rb") as handle:
        root = ET.parse(handle).getroot()
    docs = 0
    with JsonlWriter(out, key="doc_id", fsync=False) as writer:
        for article in root.iterfind("PubmedArticle"):
            doc = document_from_article(article)
            if doc is not None:
                docs += writer.write(doc)
seconds = time.perf_counter() - start
rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"docs": docs, "seconds": seconds, "rss_mb": rss_kib / 1024}))
"""


def make_vocabulary(rng: random.Random, size: int = 5000) -> list[str]:
    """Pseudo-words of 2–12 letters, plus a few medical ones, so text has realistic length."""
    letters = "abcdefghiklmnoprstuvy"
    words = [
        "".join(rng.choices(letters, k=rng.choice((2, 3, 4, 5, 6, 7, 8, 9, 10, 12))))
        for _ in range(size)
    ]
    return [*words, "patients", "disease", "treatment", "gene", "mutation", "therapy"]


def article_xml(rng: random.Random, words: list[str], pmid: int) -> str:
    """One ``<PubmedArticle>`` in the baseline shape with realistic field sizes."""
    title = " ".join(rng.choices(words, k=rng.randint(9, 15))).capitalize()
    n_sections = rng.randint(3, 5)
    per_section = 200 // n_sections
    sections = "".join(
        f'<AbstractText Label="{label}" NlmCategory="{label}">'
        f"{' '.join(rng.choices(words, k=rng.randint(per_section - 8, per_section + 8)))}."
        "</AbstractText>\n"
        for label in LABELS[:n_sections]
    )
    authors = "".join(
        f'<Author ValidYN="Y"><LastName>{rng.choice(words).title()}</LastName>'
        f"<ForeName>{rng.choice(words).title()}</ForeName><Initials>X</Initials>"
        f"<AffiliationInfo><Affiliation>Department of {rng.choice(words).title()}, "
        f"University of {rng.choice(words).title()}.</Affiliation></AffiliationInfo></Author>\n"
        for _ in range(rng.randint(2, 8))
    )
    types = [PUB_TYPES[0], *rng.sample(PUB_TYPES[1:], k=rng.randint(0, 2))]
    pub_types = "".join(f'<PublicationType UI="{ui}">{t}</PublicationType>' for ui, t in types)
    mesh = "".join(
        f'<MeshHeading><DescriptorName UI="D{rng.randint(1, 99999):06d}" '
        f'MajorTopicYN="{rng.choice("NNY")}">{" ".join(rng.choices(words, k=2)).title()}'
        "</DescriptorName>"
        + "".join(
            f'<QualifierName UI="Q000{rng.randint(100, 999)}" MajorTopicYN="N">{q}</QualifierName>'
            for q in rng.sample(QUALIFIERS, k=rng.randint(0, 2))
        )
        + "</MeshHeading>\n"
        for _ in range(rng.randint(5, 12))
    )
    year = rng.randint(1980, 2024)
    return (
        f'<PubmedArticle>\n<MedlineCitation Status="MEDLINE" Owner="NLM">\n'
        f'<PMID Version="1">{pmid}</PMID>\n<Article PubModel="Print">\n<Journal>'
        f'<ISSN IssnType="Print">{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}</ISSN>'
        f'<JournalIssue CitedMedium="Print"><Volume>{rng.randint(1, 300)}</Volume>'
        f"<PubDate><Year>{year}</Year><Month>Jan</Month></PubDate></JournalIssue>"
        f"<Title>Journal of {rng.choice(words).title()}</Title></Journal>\n"
        f"<ArticleTitle>{title}.</ArticleTitle>\n<Abstract>\n{sections}</Abstract>\n"
        f'<AuthorList CompleteYN="Y">\n{authors}</AuthorList>\n<Language>eng</Language>\n'
        f"<PublicationTypeList>{pub_types}</PublicationTypeList>\n</Article>\n"
        f"<MeshHeadingList>\n{mesh}</MeshHeadingList>\n</MedlineCitation>\n<PubmedData>"
        f"<PublicationStatus>ppublish</PublicationStatus><ArticleIdList>"
        f'<ArticleId IdType="pubmed">{pmid}</ArticleId>'
        f'<ArticleId IdType="doi">10.{rng.randint(1000, 9999)}/j.{year}.{pmid}</ArticleId>'
        f"</ArticleIdList></PubmedData>\n</PubmedArticle>\n"
    )


def generate(path: Path, articles: int, seed: int) -> int:
    """Write the file one article at a time, so generating never holds it in memory; returns
    the uncompressed size in bytes."""
    rng = random.Random(seed)
    words = make_vocabulary(rng)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as out:
        size = out.write('<?xml version="1.0" ?>\n<PubmedArticleSet>\n')
        for pmid in range(10_000_001, 10_000_001 + articles):
            size += out.write(article_xml(rng, words, pmid))
        size += out.write("<DeleteCitation><PMID Version='1'>1</PMID></DeleteCitation>\n")
        size += out.write("</PubmedArticleSet>\n")
    return size  # characters; the text is ASCII, so also bytes


def run_child(mode: str, path: Path, out: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{mode} child failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        path = Path(tmp) / "pubmed_synthetic.xml.gz"
        started = time.perf_counter()
        console.print(f"generating {ARTICLES:,} articles (seed {SEED}) …")
        xml_mb = generate(path, ARTICLES, SEED) / 1e6
        size_mb = path.stat().st_size / 1e6
        console.print(
            f"  {size_mb:.1f} MB gzip ({xml_mb:.0f} MB of XML) in "
            f"{time.perf_counter() - started:.1f} s"
        )
        results = {}
        for mode, label in (("streaming", "streaming ingest"), ("tree", "whole-tree parse")):
            console.print(f"running {label} in a child process …")
            results[label] = run_child(mode, path, Path(tmp) / f"{mode}.jsonl")

    table = Table(
        title=f"PubMed ingestion: {ARTICLES:,} articles, {size_mb:.1f} MB .xml.gz "
        f"({xml_mb:.0f} MB of XML)",
        title_justify="left",
    )
    for column in ("reader", "documents", "seconds", "docs/s", "peak RSS MB"):
        table.add_column(column, justify="right")
    for label, r in results.items():
        table.add_row(
            label,
            f"{int(r['docs']):,}",
            f"{r['seconds']:.1f}",
            f"{r['docs'] / r['seconds']:,.0f}",
            f"{r['rss_mb']:.0f}",
        )
    console.print(table)
    s, t = results["streaming ingest"], results["whole-tree parse"]
    met = s["rss_mb"] < TARGET_RSS_MB
    console.print(
        f"streaming: {s['docs'] / s['seconds']:,.0f} docs/s, peak RSS {s['rss_mb']:.0f} MB "
        f"(target < {TARGET_RSS_MB} MB — {'met' if met else 'NOT met'}); "
        f"whole-tree parse: {t['docs'] / t['seconds']:,.0f} docs/s, peak RSS "
        f"{t['rss_mb']:.0f} MB; RSS ratio {t['rss_mb'] / s['rss_mb']:.1f}× in favour of "
        f"streaming, speed ratio {(s['docs'] / s['seconds']) / (t['docs'] / t['seconds']):.2f}×"
    )


if __name__ == "__main__":
    main()
