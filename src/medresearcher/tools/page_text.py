"""Text of a fetched web page: HTML reduced to its main text, PDF read page by page.

``document_read`` (paper §2.2) reads what the :class:`~medresearcher.tools.url_guard.UrlGuard`
fetched; turning bytes of some content type into ``(title, text)`` is a concept of its own, with
optional dependencies (trafilatura for HTML, pypdf for PDF) and a stdlib fallback extractor that
drops scripts, styles and navigation. Kept apart from the tool so the tool module holds only
what it does with text (model extraction or ranked passages).
"""

from __future__ import annotations

import io
from html.parser import HTMLParser
from typing import Any

from medresearcher.tools.url_guard import FetchedPage, FetchError

__all__ = ["html_to_text", "page_text", "pdf_to_text"]

_SKIP_TAGS = frozenset(
    {"script", "style", "nav", "header", "footer", "aside", "noscript", "template", "svg"}
    | {"form", "button", "iframe", "select", "menu"}
)
_BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "main", "li", "ul", "ol", "table", "tr", "td", "th"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "dd", "dt", "figcaption"}
    | {"br", "hr", "caption", "summary", "details"}
)
_VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "source", "wbr", "area"})


def page_text(page: FetchedPage) -> tuple[str, str]:
    """``(title, text)`` of a fetched page by its content type (sniffed when missing)."""
    media, body = page.content_type, page.content
    head = body.lstrip()[:200].lower()
    if media == "application/pdf" or body.startswith(b"%PDF-"):
        return pdf_to_text(body, truncated=page.truncated)
    if media in ("text/html", "application/xhtml+xml") or (
        not media and head.startswith((b"<!doctype html", b"<html"))
    ):
        return html_to_text(page.text)
    if (
        media.startswith("text/")
        or media in ("application/json", "application/xml", "")
        or media.endswith(("+xml", "+json"))
    ):
        return "", page.text
    raise FetchError(f"{page.url}: cannot read content of type {media}")


def pdf_to_text(body: bytes, *, truncated: bool = False) -> tuple[str, str]:
    """``(title, text)`` of a PDF with pypdf (an optional dependency)."""
    try:
        import pypdf
    except ImportError:
        raise FetchError("reading PDF needs the pypdf package (pip install pypdf)") from None
    try:
        reader = pypdf.PdfReader(io.BytesIO(body))
        title = str((reader.metadata or {}).get("/Title") or "")
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many types for broken files
        cut = " (the download was cut at the size limit)" if truncated else ""
        raise FetchError(f"cannot read the PDF{cut}: {exc}") from None
    return title, "\n\n".join(p.strip() for p in pages if p.strip())


def html_to_text(html: str) -> tuple[str, str]:
    """``(title, main text)`` of an HTML page: trafilatura when installed, else a stdlib
    extractor (scripts, styles, navigation, headers and footers dropped; ``<main>`` or
    ``<article>`` preferred when it holds the text)."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    title = " ".join("".join(parser.title).split())
    try:
        import trafilatura
    except ImportError:
        trafilatura = None
    if trafilatura is not None:
        extracted = trafilatura.extract(html, include_comments=False, include_tables=True)
        if extracted:
            return title, extracted
    main = _tidy(parser.main_parts)
    return title, main if len(main) >= 200 else _tidy(parser.parts)


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.main_parts: list[str] = []
        self.title: list[str] = []
        self._skipping: list[str] = []
        self._in_title = False
        self._main_depth = 0

    def _newline(self) -> None:
        self.parts.append("\n")
        if self._main_depth:
            self.main_parts.append("\n")

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in _VOID_TAGS:
            if tag in _BLOCK_TAGS and not self._skipping:
                self._newline()
            return
        if tag in _SKIP_TAGS:
            self._skipping.append(tag)
        elif tag == "title":
            self._in_title = True
        elif not self._skipping:
            if tag in ("main", "article"):
                self._main_depth += 1
            if tag in _BLOCK_TAGS:
                self._newline()

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag in self._skipping:  # close the innermost open one, tolerating bad nesting
                while self._skipping and self._skipping.pop() != tag:
                    pass
            return
        if tag == "title":
            self._in_title = False
        elif tag in ("main", "article"):
            self._main_depth = max(0, self._main_depth - 1)
        if tag in _BLOCK_TAGS:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skipping:
            self.parts.append(data)
            if self._main_depth:
                self.main_parts.append(data)


def _tidy(parts: list[str]) -> str:
    lines = (" ".join(line.split()) for line in "".join(parts).split("\n"))
    return "\n".join(line for line in lines if line)
