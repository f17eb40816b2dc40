"""PubMed XML reader: field mapping, gzip, flat-memory streaming, errors, resumable ingest."""

from __future__ import annotations

import gzip
import io
import json
import logging
import tracemalloc
from pathlib import Path

import pytest

from medresearcher.errors import InputError
from medresearcher.sources.pubmed_xml import (
    ParseCounts,
    ingest_pubmed_baseline,
    iter_pubmed_xml,
    parse_pubmed_xml,
)

FIXTURE = Path(__file__).parent / "fixtures" / "pubmed_xml" / "baseline_sample.xml"


def _docs(source: Path | io.BytesIO, counts: ParseCounts | None = None) -> dict:
    return {d.doc_id: d for d in iter_pubmed_xml(source, counts=counts)}


def _write_articles(path: Path, n: int, *, start: int = 1) -> None:
    """Write ``n`` small articles to a gzip file, one at a time (never the whole text)."""
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
        out.write('<?xml version="1.0" ?>\n<PubmedArticleSet>\n')
        for pmid in range(start, start + n):
            out.write(
                f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><Journal>"
                f"<JournalIssue><PubDate><Year>2020</Year></PubDate></JournalIssue>"
                f"<Title>J</Title></Journal><ArticleTitle>Article {pmid} on <i>gene</i> "
                f"therapy</ArticleTitle><Abstract><AbstractText Label='RESULTS'>Result "
                f"{pmid} {'word ' * 40}</AbstractText></Abstract><PublicationTypeList>"
                f"<PublicationType>Review</PublicationType></PublicationTypeList></Article>"
                f"</MedlineCitation></PubmedArticle>\n"
            )
        out.write("</PubmedArticleSet>\n")


def test_fixture_fields_are_mapped() -> None:
    counts = ParseCounts()
    docs = _docs(FIXTURE, counts)
    assert list(docs) == ["PMID:36512345", "PMID:9876501", "PMID:35000002"]

    rct = docs["PMID:36512345"]
    assert rct.title == (
        "Pegunigalsidase alfa versus agalsidase beta in Fabry disease: a randomized trial."
    )
    assert rct.text.split("\n") == [
        "BACKGROUND: Fabry disease is caused by deficient α-galactosidase A activity.",
        "METHODS: We randomly assigned 77 adults; plasma Gb3 and eGFR (mL/min/1.73 m2) were "
        "measured.",
        "RESULTS: The eGFR slope was noninferior at 24 months.",
    ]
    assert (rct.source, rct.source_type, rct.year) == ("pubmed", "rct", 2023)
    assert rct.url == "https://pubmed.ncbi.nlm.nih.gov/36512345/"
    assert rct.entity_ids == []
    meta = rct.metadata
    assert meta["journal"] == "The New England journal of medicine"
    assert meta["issn"] == "1533-4406"
    # PubmedData's own ids, not those of the cited references.
    assert (meta["doi"], meta["pmcid"]) == ("10.1056/NEJMoa2212345", "PMC9876543")
    assert meta["publication_types"] == ["Journal Article", "Randomized Controlled Trial"]
    assert meta["language"] == "eng"
    assert meta["mesh"] == [
        {
            "ui": "D000795",
            "term": "Fabry Disease",
            "major": True,  # starred through its "drug therapy" qualifier
            "qualifiers": ["drug therapy", "genetics"],
        },
        {"ui": "D006801", "term": "Humans", "major": False, "qualifiers": []},
        {
            "ui": "D000519",
            "term": "alpha-Galactosidase",
            "major": True,
            "qualifiers": ["therapeutic use"],
        },
    ]

    retracted = docs["PMID:9876501"]
    assert retracted.year == 1998  # from MedlineDate "1998 Dec-1999 Jan"
    assert retracted.source_type == "retracted"
    assert retracted.metadata["retracted_in"] == ["11250001"]
    assert retracted.text == "We describe twelve patients with raised transaminases."
    assert retracted.metadata["doi"] is None and retracted.metadata["pmcid"] is None

    title_only = docs["PMID:35000002"]
    assert title_only.text == "" and title_only.source_type == "meta_analysis"

    assert counts.documents == 3
    assert counts.empty == 1  # PMID 31000001: no title, no abstract
    assert counts.books == 1
    assert counts.deleted_ids == ["12345678", "12345679"]


def test_retraction_notice_alone_marks_retracted() -> None:
    data = FIXTURE.read_bytes().replace(
        b'<PublicationType UI="D016441">Retracted Publication</PublicationType>', b""
    )
    doc = {d.doc_id: d for d in parse_pubmed_xml(data)}["PMID:9876501"]
    assert doc.metadata["publication_types"] == ["Journal Article", "Case Reports"]
    assert doc.source_type == "retracted"


def test_deletions_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="medresearcher.sources.pubmed_xml"):
        list(iter_pubmed_xml(FIXTURE))
    assert any("2 citations deleted" in r.getMessage() for r in caplog.records)


def test_gzip_is_detected_by_magic_bytes(tmp_path: Path) -> None:
    plain = _docs(FIXTURE)
    unsuffixed = tmp_path / "pubmed25n0001.bin"
    unsuffixed.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    assert _docs(unsuffixed) == plain
    mislabelled = tmp_path / "inflated.xml.gz"  # suffix says gzip, content is plain
    mislabelled.write_bytes(FIXTURE.read_bytes())
    assert _docs(mislabelled) == plain
    assert _docs(io.BytesIO(gzip.compress(FIXTURE.read_bytes()))) == plain
    assert {d.doc_id for d in parse_pubmed_xml(gzip.compress(FIXTURE.read_bytes()))} == set(plain)


@pytest.mark.slow
def test_streaming_memory_stays_flat(tmp_path: Path) -> None:
    path = tmp_path / "big.xml.gz"
    _write_articles(path, 20_000)
    tracemalloc.start()
    try:
        seen = 0
        last = ""
        for doc in iter_pubmed_xml(path):
            seen += 1
            last = doc.doc_id
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (seen, last) == (20_000, "PMID:20000")
    # The uncompressed file is ~9 MB and its tree would take far more; streaming stays small.
    assert peak < 5 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"


def test_malformed_xml_names_file_line_and_column(tmp_path: Path) -> None:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines(keepends=True)
    # Break the third article (PMID 31000001): documents before it are still yielded.
    number = next(i for i, line in enumerate(lines, 1) if "<ArticleTitle></ArticleTitle>" in line)
    lines[number - 1] = "            <ArticleTitle></Title>\n"
    bad = tmp_path / "bad.xml"
    bad.write_text("".join(lines), encoding="utf-8")

    got = []
    with pytest.raises(InputError) as info:
        for doc in iter_pubmed_xml(bad):
            got.append(doc.doc_id)
    assert got == ["PMID:36512345", "PMID:9876501"]
    assert str(info.value) == f"{bad}:{number}:29: malformed XML: mismatched tag"

    with pytest.raises(InputError, match=r"^efetch-42:1:\d+: malformed XML: "):
        parse_pubmed_xml(b"<PubmedArticleSet><PubmedArticle>", source_name="efetch-42")


def test_truncated_gzip_raises_input_error(tmp_path: Path) -> None:
    data = gzip.compress(FIXTURE.read_bytes())
    cut = tmp_path / "cut.xml.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.xml\.gz: truncated or corrupt gzip"):
        list(iter_pubmed_xml(cut))


def test_efetch_error_reply_is_an_input_error() -> None:
    reply = b"<eFetchResult><ERROR>UID=0: cannot get document summary</ERROR></eFetchResult>"
    with pytest.raises(InputError, match="EFetch error: UID=0"):
        parse_pubmed_xml(reply)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        list(iter_pubmed_xml(tmp_path / "nope.xml.gz"))


def test_ingest_is_resumable(tmp_path: Path) -> None:
    out = tmp_path / "corpus" / "pubmed.jsonl"
    first = ingest_pubmed_baseline(FIXTURE, out, progress=False)
    assert first == {"read": 3, "written": 3, "skipped_existing": 0, "deleted": 2, "empty": 1}
    second = ingest_pubmed_baseline(FIXTURE, out, progress=False)
    assert second == {"read": 3, "written": 0, "skipped_existing": 3, "deleted": 2, "empty": 1}
    ids = [json.loads(line)["doc_id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(ids) == ["PMID:35000002", "PMID:36512345", "PMID:9876501"]


def test_ingest_resumes_after_a_partial_run(tmp_path: Path) -> None:
    first_half = tmp_path / "part.xml.gz"
    whole = tmp_path / "whole.xml.gz"
    _write_articles(first_half, 50)
    _write_articles(whole, 120)
    out = tmp_path / "pubmed.jsonl"
    assert ingest_pubmed_baseline(first_half, out, progress=False)["written"] == 50
    stats = ingest_pubmed_baseline(whole, out, progress=True)
    assert (stats["read"], stats["written"], stats["skipped_existing"]) == (120, 70, 50)
    ids = [json.loads(line)["doc_id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(ids) == len(set(ids)) == 120
