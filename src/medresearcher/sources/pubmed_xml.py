"""PubMed XML (EFetch responses and the annual baseline/update files) to :class:`Document`.

EFetch offers no JSON for PubMed (medical-data.md §1.1), and the baseline files are the only way
to hold a local copy of the literature, so both paths end here. A baseline file holds ~30k
articles (~150 MB of XML), so the reader streams with :func:`xml.etree.ElementTree.iterparse` and
drops each article once it is converted: memory stays flat whatever the file size.

Public names:

- :func:`parse_pubmed_xml` — a whole EFetch response (bytes) to a list;
- :func:`iter_pubmed_xml` — stream a ``.xml`` / ``.xml.gz`` file (gzip found by magic bytes);
- :func:`document_from_article` — one ``<PubmedArticle>`` element to a :class:`Document`;
- :func:`ingest_pubmed_baseline` — stream a file into a resumable JSONL;
- :class:`ParseCounts` — what a pass skipped (deletions, empty articles, books).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.parsers import expat

from medresearcher.errors import InputError
from medresearcher.schema import Document
from medresearcher.sources.evidence import source_type_from_publication_types
from medresearcher.workspace import JsonlWriter, progress_bar

__all__ = [
    "ParseCounts",
    "document_from_article",
    "ingest_pubmed_baseline",
    "iter_pubmed_xml",
    "parse_pubmed_xml",
]

log = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_YEAR = re.compile(r"\d{4}")
_URL = "https://pubmed.ncbi.nlm.nih.gov/{}/"


@dataclass
class ParseCounts:
    """What one pass over a file saw besides the documents it yielded.

    ``deleted_ids`` lists the PMIDs of ``<DeleteCitation>`` blocks (update files use them to
    withdraw records), so a caller can drop them from an index built earlier.
    """

    documents: int = 0
    empty: int = 0
    books: int = 0
    deleted_ids: list[str] = field(default_factory=list)

    @property
    def deleted(self) -> int:
        return len(self.deleted_ids)


def _flat(elem: ET.Element | None) -> str:
    """The text of ``elem`` with inline markup (<i>, <sub>, <sup>, <b>) dropped, spaces folded."""
    if elem is None:
        return ""
    return " ".join("".join(elem.itertext()).split())


def _year(pub_date: ET.Element | None) -> int | None:
    """PubDate/Year, else the first 4-digit year of a MedlineDate such as "1998 Dec-1999 Jan"."""
    if pub_date is None:
        return None
    year = pub_date.findtext("Year")
    if year and year.strip().isdigit():
        return int(year)
    match = _YEAR.search(pub_date.findtext("MedlineDate") or "")
    return int(match.group()) if match else None


def _mesh(citation: ET.Element) -> list[dict[str, Any]]:
    """MeSH headings; ``major`` is true when the descriptor or any qualifier is starred, which is
    what PubMed's ``[majr]`` search means."""
    headings = []
    for heading in citation.iterfind("MeshHeadingList/MeshHeading"):
        descriptor = heading.find("DescriptorName")
        if descriptor is None:
            continue
        qualifiers = heading.findall("QualifierName")
        major = descriptor.get("MajorTopicYN") == "Y" or any(
            q.get("MajorTopicYN") == "Y" for q in qualifiers
        )
        headings.append(
            {
                "ui": descriptor.get("UI"),
                "term": _flat(descriptor),
                "major": major,
                "qualifiers": [_flat(q) for q in qualifiers],
            }
        )
    return headings


def document_from_article(article_elem: ET.Element) -> Document | None:
    """Convert one ``<PubmedArticle>`` element; ``None`` when it has neither title nor abstract
    (or no PMID), since such a record gives retrieval nothing to match."""
    citation = article_elem.find("MedlineCitation")
    if citation is None:
        return None
    pmid = (citation.findtext("PMID") or "").strip()
    article = citation.find("Article")
    if not pmid or article is None:
        return None
    title = _flat(article.find("ArticleTitle")) or _flat(article.find("VernacularTitle"))
    sections = []
    for part in article.iterfind("Abstract/AbstractText"):
        text = _flat(part)
        label = (part.get("Label") or "").strip()
        if text:
            sections.append(f"{label}: {text}" if label else text)
    if not title and not sections:
        return None

    journal = article.find("Journal")
    pub_types = [_flat(p) for p in article.iterfind("PublicationTypeList/PublicationType")]
    retracted_in = [
        c.findtext("PMID") or c.findtext("RefSource") or ""
        for c in citation.iterfind("CommentsCorrectionsList/CommentsCorrections")
        if c.get("RefType") == "RetractionIn"
    ]
    # Only PubmedData's own list: ReferenceList entries carry ArticleIdLists of cited papers.
    ids = {
        a.get("IdType"): (a.text or "").strip()
        for a in article_elem.iterfind("PubmedData/ArticleIdList/ArticleId")
    }
    doi = ids.get("doi") or next(
        (
            (e.text or "").strip()
            for e in article.iterfind("ELocationID")
            if e.get("EIdType") == "doi"
        ),
        None,
    )
    issn = None
    if journal is not None:
        issn = journal.findtext("ISSN")
    issn = issn or citation.findtext("MedlineJournalInfo/ISSNLinking")
    metadata: dict[str, Any] = {
        "journal": _flat(journal.find("Title")) if journal is not None else None,
        "issn": issn,
        "doi": doi or None,
        "pmcid": ids.get("pmc") or None,
        "publication_types": pub_types,
        "mesh": _mesh(citation),
        "language": article.findtext("Language"),
    }
    source_type = source_type_from_publication_types(pub_types)
    if retracted_in:
        source_type = "retracted"
        metadata["retracted_in"] = retracted_in
    return Document(
        doc_id=f"PMID:{pmid}",
        title=title,
        text="\n".join(sections),
        source="pubmed",
        source_type=source_type,
        year=_year(journal.find("JournalIssue/PubDate") if journal is not None else None),
        url=_URL.format(pmid),
        entity_ids=[],
        metadata=metadata,
    )


class _Prefixed(io.RawIOBase):
    """A stream with bytes already read put back in front (for unseekable sources)."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _maybe_gunzip(stream: IO[bytes]) -> IO[bytes]:
    """Wrap ``stream`` in a gzip reader when it starts with the gzip magic bytes.

    The suffix is not trusted: NCBI mirrors and browsers sometimes store ``.xml.gz`` files
    already inflated, or compressed files without the suffix.
    """
    if hasattr(stream, "peek"):
        head = stream.peek(2)[:2]
    elif stream.seekable():
        position = stream.tell()
        head = stream.read(2)
        stream.seek(position)
    else:
        head = stream.read(2)
        stream = io.BufferedReader(_Prefixed(head, stream))
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=stream, mode="rb")
    return stream


def _events(stream: IO[bytes], name: str) -> Iterator[tuple[str, ET.Element]]:
    """Direct children of the root, one at a time, turning parse and gzip errors into
    :class:`InputError` at the point they are met (earlier children stay yielded)."""
    try:
        context = ET.iterparse(stream, events=("start", "end"))
        depth = 0
        root: ET.Element | None = None
        efetch_error = "no records"
        for event, elem in context:
            if event == "start":
                if root is None:
                    root = elem
                depth += 1
                continue
            depth -= 1
            if depth == 1 and root is not None:
                if elem.tag == "ERROR":
                    efetch_error = _flat(elem)
                yield elem.tag, elem
                # Flat memory: drop the finished child and every sibling before it.
                elem.clear()
                root.clear()
        if root is not None and root.tag == "eFetchResult":
            raise InputError(f"{name}: EFetch error: {efetch_error}")
    except ET.ParseError as exc:
        line, column = exc.position
        reason = expat.ErrorString(exc.code) if isinstance(exc.code, int) else str(exc)
        raise InputError(f"{name}:{line}:{column + 1}: malformed XML: {reason}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"{name}: truncated or corrupt gzip: {exc}") from None


def _iter_stream(stream: IO[bytes], name: str, counts: ParseCounts | None) -> Iterator[Document]:
    counts = counts if counts is not None else ParseCounts()
    for tag, elem in _events(_maybe_gunzip(stream), name):
        if tag == "PubmedArticle":
            document = document_from_article(elem)
            if document is None:
                counts.empty += 1
                continue
            counts.documents += 1
            yield document
        elif tag == "DeleteCitation":
            counts.deleted_ids.extend((p.text or "").strip() for p in elem.iterfind("PMID"))
        elif tag == "PubmedBookArticle":
            counts.books += 1
    if counts.deleted_ids:
        log.info("%s: %d citations deleted (DeleteCitation)", name, counts.deleted)
    if counts.empty or counts.books:
        log.info(
            "%s: skipped %d articles without title or abstract and %d book articles",
            name,
            counts.empty,
            counts.books,
        )


def parse_pubmed_xml(data: bytes, *, source_name: str = "<efetch>") -> list[Document]:
    """Parse a whole EFetch ``retmode=xml`` response.

    Raises
    ------
    InputError
        Malformed XML (the message reads ``<source_name>:<line>:<col>: malformed XML: ...``)
        or an EFetch ``<ERROR>`` reply.
    """
    return list(_iter_stream(io.BytesIO(data), source_name, None))


def iter_pubmed_xml(
    path_or_file: str | os.PathLike[str] | IO[bytes],
    *,
    source_name: str | None = None,
    counts: ParseCounts | None = None,
) -> Iterator[Document]:
    """Stream the documents of a PubMed baseline/update file (``.xml`` or gzip) at flat memory.

    ``PubmedBookArticle`` and ``DeleteCitation`` blocks are skipped; pass ``counts`` to learn how
    many (and which PMIDs were deleted). A malformed file raises :class:`InputError` when the
    bad spot is reached, after the documents before it were yielded.

    Example::

        for doc in iter_pubmed_xml("pubmed25n0001.xml.gz"):
            index.add(doc)
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        name = source_name or str(path_or_file)
        try:
            handle = open(path_or_file, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise InputError(f"{name}: cannot open: {exc.strerror}") from None
        with handle:
            yield from _iter_stream(handle, name, counts)
    else:
        name = source_name or str(getattr(path_or_file, "name", "<stream>"))
        yield from _iter_stream(path_or_file, name, counts)


def ingest_pubmed_baseline(
    path: str | os.PathLike[str], out_path: str | os.PathLike[str], *, progress: bool = True
) -> dict[str, int]:
    """Stream a baseline/update file into a resumable JSONL of :class:`Document` records.

    Ids already in ``out_path`` are skipped, so an interrupted run is finished by running it
    again. Lines are written with per-line fsync off (the writer syncs once, on close): a
    baseline file holds ~30k articles and per-line fsync would be the bottleneck, while a crash
    loses at most the unsynced tail (a cut last line is dropped by :class:`JsonlWriter`), which
    resume redoes.

    Returns
    -------
    dict
        ``{"read", "written", "skipped_existing", "deleted", "empty"}`` counts.
    """
    counts = ParseCounts()
    stats = {"read": 0, "written": 0, "skipped_existing": 0}
    with JsonlWriter(out_path, key="doc_id", fsync=False) as writer:
        bar = progress_bar() if progress else None
        task = bar.add_task(f"ingesting {Path(path).name}", total=None) if bar else None
        if bar is not None:
            bar.start()
        try:
            for document in iter_pubmed_xml(path, counts=counts):
                stats["read"] += 1
                if document.doc_id in writer:
                    stats["skipped_existing"] += 1
                elif writer.write(document):
                    stats["written"] += 1
                if bar is not None and task is not None:
                    bar.advance(task)
        finally:
            if bar is not None:
                bar.stop()
    result = {**stats, "deleted": counts.deleted, "empty": counts.empty}
    log.info("%s: ingested into %s: %s", path, out_path, result)
    return result
