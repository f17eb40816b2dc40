"""Report tables: cells that name their metrics.json entry, and their Markdown / HTML forms.

A run report (:mod:`.report`) and a comparison of runs (:mod:`.compare`) are both lists of
:class:`Section` tables whose number cells carry the metrics.json path they show (the HTML's
``data-metric`` / ``data-value`` attributes), so a reader or a test can check every shown
number against the file. Both render them the same way, which is why the model of a table
and its rendering live here: Markdown with escaped text, and one self-contained HTML page
(inline CSS, images as data URIs, no script, every piece of text escaped: predictions are
model output).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Cell",
    "Section",
    "fmt_value",
    "html_cell",
    "html_image",
    "html_page",
    "html_table",
    "lookup",
    "metric_cell",
    "render_markdown",
    "text_cell",
]

_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ddd}table{border-collapse:collapse;
margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 8px;vertical-align:top;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.text{max-width:420px;white-space:pre-wrap;word-break:break-word}img{max-width:100%}
tr.incorrect td:nth-child(3){color:#b00}tr.correct td:nth-child(3){color:#070}
tr.unjudgeable td:nth-child(3){color:#a60}td.best{font-weight:bold}.note{color:#666}"""


def fmt_value(value: Any, kind: str) -> str:
    """A metric as people read it: ``pct`` (share → %), ``ci``, ``int``, ``float``, ``usd``,
    ``s`` (seconds) or ``text``; ``–`` for a missing value."""
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f} %"
    if kind == "ci":
        return f"[{100 * value[0]:.1f}, {100 * value[1]:.1f}] %"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "float":
        return f"{value:,.2f}"
    if kind == "usd":
        return f"${value:,.4f}"
    if kind == "s":
        return f"{value:,.2f} s"
    return str(value)


def lookup(data: Any, path: Sequence[str]) -> Any:
    """The value at ``path`` in nested mappings; ``None`` where a step is missing."""
    for part in path:
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


@dataclass
class Cell:
    """One table cell; ``path`` names the metrics.json entry it shows, when it shows one."""

    text: str
    path: tuple[str, ...] | None = None
    value: Any = None
    numeric: bool = False


@dataclass
class Section:
    """One table of a report: headers, rows of cells, and the plots and note shown below it."""

    title: str
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    note: str = ""
    row_classes: list[str] = field(default_factory=list)


def metric_cell(metrics: Mapping[str, Any], path: Sequence[str], kind: str) -> Cell:
    """A cell showing the metrics.json entry at ``path``, formatted as ``kind``."""
    value = lookup(metrics, path)
    return Cell(fmt_value(value, kind), tuple(path), value, numeric=kind != "text")


def text_cell(text: Any) -> Cell:
    """A plain text cell, with no metric behind it."""
    return Cell(str(text))


def _md_text(text: str) -> str:
    return html.escape(text).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def render_markdown(title: str, sections: list[Section], plots: Mapping[str, bytes]) -> str:
    """The sections as Markdown tables (text escaped); plots linked by their file names."""
    lines = [f"# {_md_text(title)}", ""]
    for section in sections:
        lines += [f"## {_md_text(section.title)}", ""]
        lines.append("| " + " | ".join(_md_text(h) for h in section.headers) + " |")
        lines.append("|" + "---|" * len(section.headers))
        lines += ["| " + " | ".join(_md_text(c.text) for c in row) + " |" for row in section.rows]
        lines.append("")
        if section.note:
            lines += [f"_{_md_text(section.note)}_", ""]
        lines += [f"![{name}]({name})" for name in section.plots if name in plots]
        lines.append("")
    return "\n".join(lines)


def html_cell(cell: Cell, extra_class: str = "") -> str:
    """A ``<td>``; a metric cell carries its path and value as ``data-*`` attributes."""
    attrs = ""
    if cell.path is not None:
        path, value = json.dumps(list(cell.path)), json.dumps(cell.value)
        attrs = f' data-metric="{html.escape(path)}" data-value="{html.escape(value)}"'
    classes = " ".join(c for c in ("num" if cell.numeric else "text", extra_class) if c)
    return f'<td class="{classes}"{attrs}>{html.escape(cell.text)}</td>'


def html_table(section: Section, best: Sequence[int | None] = ()) -> str:
    """A section as an HTML table; ``best[i]`` marks the best run's cell of row ``i``."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in section.headers)
    body = []
    for i, row in enumerate(section.rows):
        css = section.row_classes[i] if i < len(section.row_classes) else ""
        mark = best[i] if i < len(best) else None
        cells = "".join(
            html_cell(c, "best" if mark is not None and j == mark + 1 else "")
            for j, c in enumerate(row)
        )
        body.append(f'<tr class="{html.escape(css)}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_page(title: str, body: list[str]) -> str:
    """A self-contained HTML page (inline CSS, no script) around ``body``."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>" + "\n".join(body) + "</body></html>\n"
    )


def html_image(name: str, png: bytes) -> str:
    """A PNG as an inline ``data:`` image, so the page needs no other file."""
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img alt="{html.escape(name)}" src="data:image/png;base64,{data}"></p>'
