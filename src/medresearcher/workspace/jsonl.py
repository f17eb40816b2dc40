"""Append-only JSONL files keyed by record id, safe against crashes and re-runs.

Every stage writes its records through :class:`JsonlWriter`: a line is written, flushed
and fsynced before the next one, so a crash can cut at most the last line. On the next
open that cut line is dropped with a warning (never parsed as a record) and the ids
already written are skipped, so re-running a stage finishes the job without duplicates.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

from medresearcher.errors import InputError

__all__ = ["JsonlWriter", "read_jsonl"]

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


class JsonlWriter:
    """A resumable, append-only writer of JSON records keyed by ``key``.

    Use as a context manager::

        with JsonlWriter(ws.qa_path) as out:
            for item in items:
                if item.id in out:
                    continue          # done in an earlier run
                out.write(make_record(item))

    Parameters
    ----------
    path:
        The JSONL file; created with its folder when missing.
    key:
        The field that identifies a record.
    fsync:
        Force every line to disk. Leave it on for anything that costs model calls; turn it
        off for bulk conversions, where the file is forced to disk once, on close, and a
        crash costs only the unsynced tail that a re-run writes again.

    A second process opening the same file gets an error at once (an advisory lock), not
    interleaved lines.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, key: str = "id", fsync: bool = True
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.fsync = fsync
        self.ids: set[str] = set()
        self.written = 0
        self._file: IO[str] | None = None

    def __enter__(self) -> JsonlWriter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __contains__(self, record_id: object) -> bool:
        return str(record_id) in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open on purpose
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise InputError(f"{self.path}: another process is writing this file") from None
        self._recover(handle)
        self._file = handle

    def close(self) -> None:
        if self._file is not None:
            if not self.fsync:
                self._file.flush()
                os.fsync(self._file.fileno())
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def write(self, record: BaseModel | dict[str, Any]) -> bool:
        """Append ``record`` unless its id was written before; returns whether it was."""
        if self._file is None:
            raise RuntimeError("JsonlWriter is not open")
        data = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
        if self.key not in data:
            raise ValueError(f"record has no {self.key!r} field: {sorted(data)}")
        record_id = str(data[self.key])
        if record_id in self.ids:
            return False
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
        self._file.write(line)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self.ids.add(record_id)
        self.written += 1
        return True

    def _recover(self, handle: IO[str]) -> None:
        """Collect the ids on disk and cut off a last line that a crash left incomplete."""
        handle.seek(0)
        offset = 0
        for number, line in enumerate(handle, start=1):
            end = offset + len(line.encode("utf-8"))
            complete = line.endswith("\n")
            try:
                data = json.loads(line) if line.strip() else None
            except json.JSONDecodeError as exc:
                data = None
                if complete:
                    raise InputError(
                        f"{self.path}:{number}:{exc.colno}: not valid JSON: {exc.msg} (a "
                        "complete line, so not a crash: fix or remove it)"
                    ) from None
            if not complete:
                log.warning("%s:%d: dropping a line cut by an earlier crash", self.path, number)
                handle.truncate(offset)
                break
            if isinstance(data, dict) and self.key in data:
                self.ids.add(str(data[self.key]))
            elif data is not None:
                raise InputError(f"{self.path}:{number}: record has no {self.key!r} field")
            offset = end
        handle.seek(0, os.SEEK_END)


def read_jsonl(
    path: str | os.PathLike[str], model: type[M] | None = None
) -> Iterator[M] | Iterator[dict[str, Any]]:
    """Yield the records of a JSONL file, validated against ``model`` when given.

    Gzipped files (``.gz``) are read transparently. A last line without its newline (cut
    by a crash) is skipped with a warning. Any other bad line raises :class:`InputError`
    naming the file, the line and the field.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                if not line.endswith("\n"):
                    log.warning("%s:%d: skipping a line cut by a crash", path, number)
                    return
                raise InputError(
                    f"{path}:{number}:{exc.colno}: not valid JSON: {exc.msg}"
                ) from None
            if model is None:
                yield data
                continue
            try:
                yield model.model_validate(data)
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(str(p) for p in first["loc"]) or "(record)"
                raise InputError(f"{path}:{number}: {field}: {first['msg']}") from None
