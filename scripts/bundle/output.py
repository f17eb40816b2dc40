"""Deterministic output: the same records give byte-identical files."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel


def _gzip_bytes(text: str) -> bytes:
    buffer = io.BytesIO()
    # mtime=0 and no file name in the header: the archive depends on the content only.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    return buffer.getvalue()


def write_jsonl_gz(path: Path, records: Iterable[BaseModel]) -> int:
    lines = [
        json.dumps(r.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))
        for r in records
    ]
    path.write_bytes(_gzip_bytes("".join(line + "\n" for line in lines)))
    return len(lines)


def write_tsv_gz(path: Path, header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> int:
    rows = list(rows)
    for row in rows:
        if any("\t" in cell or "\n" in cell for cell in row):
            raise ValueError(f"{path.name}: a cell holds a tab or newline: {row}")
    text = "\t".join(header) + "\n" + "".join("\t".join(row) + "\n" for row in rows)
    path.write_bytes(_gzip_bytes(text))
    return len(rows)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_json(path: Path, data: object) -> None:
    path.write_text(
        json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
    )
