"""The CSV benchmark formats: MedBrowseComp and xbench-DeepSearch (paper §5).

MedBrowseComp's CSV comes plain (``prompt``, ``gold``, task column) or in its published
per-cell encoding (``final50_cell_combo_shift3_b64.csv``…), detected from the header; its
prompts are wrapped in double quotes and carry a literal ``\\n``, both undone here so the agent
reads the question as its authors meant it. xbench-DeepSearch is read *as decrypted by the
user* (question = ``prompt``, gold = ``answer``; ``reference_steps`` is the solution and is
never read). Both share the CSV reading below: rows start at their first file line, so errors
name file:line:column. :func:`~medresearcher.evaluation.loaders.load_benchmark` calls these.
"""

from __future__ import annotations

import base64
import binascii
import csv
import re
from pathlib import Path
from typing import Any

from medresearcher.errors import InputError
from medresearcher.evaluation.formats_common import Fields, Loaded, content_id, entry, open_text
from medresearcher.grading.normalise import is_na

__all__ = ["decode_shifted_base64", "load_medbrowsecomp", "load_xbench"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the (first line, cells) of each non-blank row."""
    rows: list[tuple[int, list[str]]] = []
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise InputError(f"{path}:1: empty file, expected a CSV header")
        start = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):
                if len(cells) != len(header):
                    raise InputError(
                        f"{path}:{start}: {len(cells)} cells, the header has {len(header)}"
                    )
                rows.append((start, cells))
            start = reader.line_num + 1
    return [cell.strip() for cell in header], rows


def _find_column(header: list[str], wanted: str | None, candidates: tuple[str, ...]) -> int | None:
    """Index of column ``wanted`` (else the first of ``candidates`` present), case-insensitive."""
    lowered = [name.casefold() for name in header]
    for name in (wanted,) if wanted else candidates:
        if name.casefold() in lowered:
            return lowered.index(name.casefold())
    return None


def _column(header: list[str], wanted: str | None, candidates: tuple[str, ...], path: Path) -> int:
    """Like :func:`_find_column`, but a missing column is an InputError naming the columns."""
    index = _find_column(header, wanted, candidates)
    if index is None:
        names = " or ".join((wanted,) if wanted else candidates)
        raise InputError(f"{path}:1: no column {names}; the columns are {header}")
    return index


def _language(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


# -- MedBrowseComp ---------------------------------------------------------------------------


def decode_shifted_base64(cell: str, shift: int = 3) -> str:
    """One cell of MedBrowseComp's published CSVs in plain text.

    Each cell (header included) is the base64 of the UTF-8 text after every character's code
    point was raised by ``shift``; this undoes both. Raises ``ValueError`` on a cell that is not
    such an encoding.
    """
    try:
        raw = base64.b64decode(cell.strip(), validate=True).decode("utf-8")
        return "".join(chr(ord(char) - shift) for char in raw)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a shifted base64 cell ({exc})") from None


# Hop of each task, in the order the questions chain (docs/benchmarks-and-grading.md §1.2).
_MBC_HOPS = (
    ("ingredient", 1),
    ("applicant", 2),
    ("patent", 3),
    ("exclusivity", 4),
    ("open_on_approval", 5),
    ("close_on_approval", 5),
)


def _mbc_prompt(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text.replace("\\n", "\n")


def _mbc_task(task: str) -> dict[str, Any]:
    task = re.sub(r"_prompt$", "", task.strip())
    hops = next((h for key, h in _MBC_HOPS if task.casefold().startswith(key)), None)
    return {"task": task, "hops": hops} if hops else {"task": task} if task else {}


def load_medbrowsecomp(path: Path, fields: Fields) -> Loaded:
    """MedBrowseComp items (plain or encoded CSV), with task, hops and ``na_gold`` metadata."""
    header, rows = _read_csv(path)
    wanted = {(fields.question or "prompt").casefold(), (fields.answer or "gold").casefold()}
    encoded = not wanted <= {name.casefold() for name in header}
    if encoded:
        try:
            header = [decode_shifted_base64(cell).strip() for cell in header]
        except ValueError:
            raise InputError(
                f"{path}:1: columns {header} are neither plain (prompt, gold, task) nor "
                "MedBrowseComp's encoded form"
            ) from None
    q_col = _column(header, fields.question, ("prompt",), path)
    a_col = _column(header, fields.answer, ("gold",), path)
    t_col = _find_column(header, None, ("task", "task_name"))
    if t_col is None and len(header) == 3:  # the 50 set names its task column after a task
        t_col = 2
    id_col = _column(header, fields.id, (), path) if fields.id else None
    loaded: Loaded = []
    for line, cells in rows:
        if encoded:
            try:
                cells = [decode_shifted_base64(cell) if cell else "" for cell in cells]
            except ValueError as exc:
                raise InputError(f"{path}:{line}: a cell is not encoded: {exc}") from None
        question, gold = _mbc_prompt(cells[q_col]), cells[a_col].strip()
        metadata = {"na_gold": is_na(gold), **_mbc_task(cells[t_col] if t_col is not None else "")}
        item_id = cells[id_col].strip() if id_col is not None else ""
        loaded.append(
            entry(
                path,
                line,
                item_id=item_id or content_id("mbc", question, gold),
                question=question,
                gold=gold,
                metadata=metadata,
            )
        )
    return loaded


# -- xbench-DeepSearch -----------------------------------------------------------------------


def load_xbench(path: Path, fields: Fields) -> Loaded:
    """xbench-DeepSearch items; a file still encrypted is an InputError saying so."""
    header, rows = _read_csv(path)
    q_col = _column(header, fields.question, ("prompt", "question", "问题"), path)
    a_col = _column(header, fields.answer, ("answer", "gold", "答案"), path)
    id_col = (
        _column(header, fields.id, (), path) if fields.id else _find_column(header, None, ("id",))
    )
    if rows and all(_BASE64.match(c[q_col].strip()) and len(c[q_col]) >= 16 for _, c in rows):
        raise InputError(
            f"{path}:{rows[0][0]}: {header[q_col]}: the questions look encrypted (base64, no "
            "plain text); decrypt the file with xbench's own script first"
        )
    loaded: Loaded = []
    for line, cells in rows:
        question, gold = cells[q_col].strip(), cells[a_col].strip()
        item_id = cells[id_col].strip() if id_col is not None else ""
        loaded.append(
            entry(
                path,
                line,
                item_id=item_id or content_id("xbench", question, gold),
                question=question,
                gold=gold,
                metadata={"language": _language(question)},
            )
        )
    return loaded
