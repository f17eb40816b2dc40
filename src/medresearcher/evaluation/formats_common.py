"""What every benchmark file format shares: field overrides, (line, item) lists, ids, errors.

The format readers (:mod:`.formats_csv`, :mod:`.formats_json`) each turn one file into
``(line, BenchmarkItem)`` pairs; :mod:`.loaders` dispatches among them and checks ids. The
pieces all of them use live here so that neither reader module depends on the other: text
files opened the same way (``.gz`` or plain, BOM stripped), content-hash ids where a benchmark
has none (ARCHITECTURE §3: ids are never list positions) and item errors named at file:line.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from medresearcher.errors import InputError
from medresearcher.evaluation.items import BenchmarkItem

__all__ = ["Fields", "Loaded", "content_id", "entry", "open_text"]


@dataclass(frozen=True)
class Fields:
    """Column or field names overriding a format's defaults (``--question-field`` and friends)."""

    question: str | None = None
    answer: str | None = None
    id: str | None = None


Loaded = list[tuple[int, BenchmarkItem]]  # (line, item): lines for duplicate-id messages


def open_text(path: Path) -> IO[str]:
    """``path`` as UTF-8 text (a leading BOM dropped), gunzipped when it ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def content_id(prefix: str, question: str, gold: str) -> str:
    """A stable id from question and gold, for benchmarks whose items have none."""
    digest = hashlib.sha256(f"{question}\x1f{gold}".encode()).hexdigest()
    return f"{prefix}-{digest[:12]}"


def entry(path: Path, line: int, **fields: Any) -> tuple[int, BenchmarkItem]:
    """(line, item); a field the item rejects is reported at file:line:field."""
    try:
        return line, BenchmarkItem(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(item)"
        raise InputError(f"{path}:{line}: {where}: {first['msg']}") from None
