"""``document_read``: read one document toward a stated goal (paper §2.2, general tools).

The document is a corpus id (``ORPHA:558``, ``PMID:…``, or ``corpus://<id>`` as ``web_search``
returns offline), read from the workspace index, or an http(s) URL fetched through the
:class:`~medresearcher.tools.url_guard.UrlGuard` (SSRF checks, size and time caps). HTML is
reduced to its main text (trafilatura when installed, else a small stdlib extractor that
drops scripts, styles and navigation), PDF read with pypdf when installed; that extraction lives
in :mod:`medresearcher.tools.page_text` (``html_to_text`` is re-exported here).

What comes back depends on what is configured, and says which it was:

- with a model (``[tools] document_read_endpoint`` and a gateway): the model's extraction
  toward the goal (``prompts/document_read.yaml``): evidence quoted, then a short summary;
- without one: the passages that BM25 (the retriever's own tokenizer) ranks highest for the
  goal, in document order; a short document is returned whole.

Every observation names its source (doc id or final URL), so answers stay traceable.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from medresearcher.errors import MedResearcherError
from medresearcher.llm import LLMGateway
from medresearcher.prompts import render_prompt
from medresearcher.retrieval.lexical import LexicalIndex
from medresearcher.retrieval.tokenize import tokenize
from medresearcher.tokens import truncate_to_tokens
from medresearcher.tools.base import Observation, Tool
from medresearcher.tools.page_text import html_to_text, page_text, pdf_to_text
from medresearcher.tools.search_backends import CORPUS_SCHEME, WorkspaceIndex
from medresearcher.tools.url_guard import FetchError, UrlGuard, UrlRefused

__all__ = [
    "DocumentReadArguments",
    "DocumentReadTool",
    "Extraction",
    "html_to_text",
    "page_text",
    "pdf_to_text",
    "rank_passages",
    "split_passages",
]

log = logging.getLogger(__name__)

# Shorter documents are returned whole: about 1,500 tokens, inside the default observation
# budget of 2,048, so a definition page with its fields is read at once, as a person would.
WHOLE_DOCUMENT_CHARS = 6000
PASSAGE_CHARS = 700
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class DocumentReadArguments(BaseModel):
    """Arguments of ``document_read``."""

    model_config = ConfigDict(extra="forbid")

    url_or_id: str = Field(
        min_length=1,
        description="An http(s) URL, or a corpus document id / corpus:// URL from the search "
        "results (e.g. ORPHA:558, PMID:12345678).",
    )
    goal: str = Field(
        default="",
        description="What you want to learn from this document; the reader returns the parts "
        "that bear on it.",
    )


class Extraction(BaseModel):
    """The model's report on one document (``prompts/document_read.yaml``)."""

    relevant: bool = Field(description="Whether the document has information for the goal.")
    evidence: str = Field(default="", description="Sentences of the document, quoted exactly.")
    summary: str = Field(default="", description="What the evidence establishes, briefly.")


@dataclass
class _Source:
    """A document ready to read: its id or URL, a title, a label for the model, the text."""

    ref: str
    title: str
    label: str
    text: str
    sources: list[str]
    note: str = ""


class DocumentReadTool(Tool):
    """Read a document (corpus id or URL) toward a goal; see the module docstring."""

    name = "document_read"
    description = (
        "Read one document and return what it says about your goal: a URL from web_search, "
        "or a corpus id / corpus:// URL from web_search or medical_retriever. Give the goal "
        "as a question or the facts you need."
    )
    Arguments = DocumentReadArguments

    def __init__(
        self,
        index: WorkspaceIndex | None,
        guard: UrlGuard,
        *,
        gateway: LLMGateway | None = None,
        endpoint: str | None = None,
        language: str = "en",
        max_passages: int = 5,
        whole_document_chars: int = WHOLE_DOCUMENT_CHARS,
        max_input_tokens: int = 12_000,
        timeout_s: float = 60.0,
    ) -> None:
        self.index = index
        self.guard = guard
        self.gateway = gateway if endpoint else None
        self.endpoint = endpoint if gateway is not None else None
        self.language = language
        self.max_passages = max_passages
        self.whole_document_chars = whole_document_chars
        self.max_input_tokens = max_input_tokens
        self.timeout_s = timeout_s

    async def run(self, arguments: DocumentReadArguments) -> Observation:
        target = arguments.url_or_id.strip()
        try:
            if "://" in target and not target.startswith(CORPUS_SCHEME):
                source = await self._fetch(target)
            else:
                source = await self._corpus(target.removeprefix(CORPUS_SCHEME))
        except (UrlRefused, FetchError) as exc:
            return Observation(text=f"Error: {exc}", error=True, sources=[target])
        if source is None:
            hint = (
                " (a web address needs its https:// prefix)"
                if re.match(r"^(www\.)?[\w-]+(\.[\w-]+)+/", target)
                else ""
            )
            return Observation(
                text=f"Error: no document {target!r} in the workspace corpus{hint}. Use an id "
                "or URL from web_search or medical_retriever results.",
                error=True,
            )
        if not source.text.strip():
            return Observation(
                text=f"Source: {source.label}\nThe document has no readable text.{source.note}",
                sources=source.sources,
                payload={"source": source.ref, "title": source.title, "method": "empty"},
            )
        if self.gateway is not None and self.endpoint is not None:
            try:
                return await self._extract(source, arguments.goal)
            except MedResearcherError as exc:
                log.warning("document_read: model extraction failed: %s", exc)
                source.note += f"\n(The model's extraction failed: {exc}; passages follow.)"
        return self._passages(source, arguments.goal)

    async def aclose(self) -> None:
        await self.guard.aclose()

    # -------------------------------------------------------------------- sources
    async def _corpus(self, doc_id: str) -> _Source | None:
        if self.index is None:
            raise FetchError("no workspace index is configured for corpus documents")
        doc = await self.index.run(lambda retriever: retriever.document(doc_id))
        if doc is None:
            return None
        where = f" {doc.url}" if doc.url else ""
        # Named fields (genes, signs, classification groups, ...) are part of the record a
        # reader sees, as on the source's own page.
        fields = [
            f"{name.replace('_', ' ').capitalize()}: {value}"
            for name, value in doc.fields.items()
            if name != "names" and value
        ]
        if doc.metadata.get("disorder_type"):
            fields.append(f"Disorder type: {doc.metadata['disorder_type']}")
        return _Source(
            ref=doc.doc_id,
            title=doc.title,
            label=f"{doc.title} — {doc.doc_id} ({doc.source_type}, {doc.year or 'n.d.'}){where}",
            text="\n".join([doc.text, *fields]),
            sources=[doc.doc_id],
        )

    async def _fetch(self, url: str) -> _Source:
        page = await self.guard.fetch(url)
        title, text = page_text(page)
        sources = [page.url] if page.url == url else [page.url, url]
        note = ""
        if page.truncated:
            note = f"\n(The download was cut at {self.guard.max_bytes:,} bytes.)"
        return _Source(
            ref=page.url,
            title=title or page.url,
            label=f"{title} — {page.url}" if title else page.url,
            text=text,
            sources=sources,
            note=note,
        )

    # -------------------------------------------------------------------- reading
    async def _extract(self, source: _Source, goal: str) -> Observation:
        assert self.gateway is not None and self.endpoint is not None
        text, cut = truncate_to_tokens(source.text, self.max_input_tokens)
        messages = [
            {"role": "system", "content": render_prompt("document_read", "system", self.language)},
            {
                "role": "user",
                "content": render_prompt(
                    "document_read",
                    "user",
                    self.language,
                    goal=goal,
                    title=source.title,
                    source=source.ref,
                    text=text,
                    cut=cut,
                ),
            },
        ]
        report = await self.gateway.structured(self.endpoint, messages, Extraction)
        lines = [f"Source: {source.label}"]
        if goal:
            lines.append(f"Goal: {goal}")
        lines.append(f"Relevant: {'yes' if report.relevant else 'no'} (extracted by a model)")
        if report.evidence.strip():
            lines.append(f"Evidence: {report.evidence.strip()}")
        if report.summary.strip():
            lines.append(f"Summary: {report.summary.strip()}")
        return Observation(
            text="\n".join(lines) + source.note,
            sources=source.sources,
            payload={
                "source": source.ref,
                "title": source.title,
                "method": "model",
                "endpoint": self.endpoint,
                "input_cut": cut,
                **report.model_dump(),
            },
        )

    def _passages(self, source: _Source, goal: str) -> Observation:
        passages = split_passages(source.text)
        header = [f"Source: {source.label}"]
        if goal:
            header.append(f"Goal: {goal}")
        scores: dict[int, float] = {}
        if len(source.text) <= self.whole_document_chars:
            chosen = list(range(len(passages)))
            method, how = "full", "Full text:"
        else:
            ranked = rank_passages(passages, goal)
            scores = dict(ranked)
            if ranked:
                chosen = sorted(i for i, _ in ranked[: self.max_passages])
                method = "retrieval"
                how = (
                    f"Passages {', '.join(str(i + 1) for i in chosen)} of {len(passages)}, "
                    "ranked by retrieval against the goal (no reading model configured):"
                )
            else:
                chosen = list(range(min(self.max_passages, len(passages))))
                method = "beginning"
                why = "No passage matches the goal" if goal.strip() else "No goal was given"
                how = f"{why}; the first {len(chosen)} of {len(passages)} passages:"
        # A whole document keeps its own lines: a long list stays one line under its label.
        body = [f"[§{i + 1}] {passages[i]}" for i in chosen] if method != "full" else [source.text]
        return Observation(
            text="\n".join([*header, how, *body]) + source.note,
            sources=source.sources,
            payload={
                "source": source.ref,
                "title": source.title,
                "method": method,
                "n_passages": len(passages),
                "passages": [
                    {"index": i, "text": passages[i], "score": round(scores.get(i, 0.0), 4)}
                    for i in chosen
                ],
            },
        )


def split_passages(text: str, max_chars: int = PASSAGE_CHARS) -> list[str]:
    """``text`` cut into passages of at most ``max_chars`` characters: lines (paragraphs) are
    packed together while they fit, and a longer paragraph is cut at sentence ends.

    Passages of similar length make BM25 scores comparable between them; packing keeps a
    heading with the paragraph after it.
    """
    pieces: list[tuple[str, str]] = []  # (joiner to the previous piece, text)
    for line in re.split(r"\n+", text):
        line = " ".join(line.split())
        joiner = "\n"
        for sentence in _SENTENCE_END.split(line) if len(line) > max_chars else [line]:
            while len(sentence) > max_chars:  # a "sentence" without stops (a table, a list)
                pieces.append((joiner, sentence[:max_chars]))
                sentence, joiner = sentence[max_chars:], " "
            if sentence:
                pieces.append((joiner, sentence))
                joiner = " "
    passages: list[str] = []
    for joiner, piece in pieces:
        if passages and len(passages[-1]) + 1 + len(piece) <= max_chars:
            passages[-1] += joiner + piece
        else:
            passages.append(piece)
    return passages


def rank_passages(passages: list[str], goal: str) -> list[tuple[int, float]]:
    """``(passage index, BM25 score)`` of the passages matching ``goal``, best first.

    BM25 (Lucene variant) over the passages with the retriever's tokenizer: the same
    notion of a matching word as the corpus index, so gene symbols and bands stay whole.
    """
    if not passages or not tokenize(goal):
        return []
    scores = LexicalIndex.build(passages).scores(goal)
    order = sorted(range(len(passages)), key=lambda i: (-float(scores[i]), i))
    return [(i, float(scores[i])) for i in order if scores[i] > 0]
