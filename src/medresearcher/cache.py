"""A response cache in one SQLite file, shared by the LLM gateway and the live sources.

Both cache the same kind of thing — the answer to a request, keyed by a hash of everything
that shapes it — and need the same modes:

- ``off``: never read or write;
- ``read-write``: reuse an earlier answer, store new ones;
- ``replay``: answer only from the cache (the caller fails on a miss), for runs that must
  be exactly repeatable or must not touch the network.

An entry is a JSON ``meta`` object plus an optional binary ``body`` (an HTTP payload).
WAL mode lets several processes read while one writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Literal

__all__ = ["CacheMode", "SqliteCache"]

CacheMode = Literal["off", "read-write", "replay"]


class SqliteCache:
    """Keyed entries (``meta`` JSON + ``body`` bytes) in one table of an SQLite file.

    Parameters
    ----------
    path:
        The SQLite file; created with its folder unless the mode is ``off``.
    table:
        The table, so that several caches can share one file.
    mode:
        ``off``, ``read-write`` or ``replay`` (see the module docstring).
    ttl_s:
        Entries older than this many seconds count as missing.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        table: str,
        mode: CacheMode = "read-write",
        ttl_s: float | None = None,
    ) -> None:
        if not table.isidentifier():
            raise ValueError(f"invalid table name {table!r}")
        self.path = Path(path)
        self.table = table
        self.mode = mode
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if mode != "off":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(key TEXT PRIMARY KEY, meta TEXT NOT NULL, body BLOB, created REAL NOT NULL)"
            )

    def get(self, key: str) -> tuple[dict[str, Any], bytes] | None:
        """``(meta, body)`` of a fresh entry, or None."""
        if self._db is None:
            return None
        with self._lock:
            row = self._db.execute(
                f"SELECT meta, body, created FROM {self.table} WHERE key = ?", (key,)
            ).fetchone()
        if row is None or (self.ttl_s is not None and time.time() - row[2] > self.ttl_s):
            return None
        return json.loads(row[0]), bytes(row[1] or b"")

    def put(self, key: str, meta: dict[str, Any], body: bytes = b"") -> None:
        """Store an entry; a no-op unless the mode is ``read-write``."""
        if self._db is None or self.mode != "read-write":
            return
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?, ?)",
                (key, json.dumps(meta, ensure_ascii=False), body, time.time()),
            )

    def put_many(self, entries: list[tuple[str, dict[str, Any], bytes]]) -> None:
        """Store many entries in one transaction (one disk sync instead of one each)."""
        if self._db is None or self.mode != "read-write" or not entries:
            return
        now = time.time()
        rows = [
            (key, json.dumps(meta, ensure_ascii=False), body, now) for key, meta, body in entries
        ]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?, ?)", rows
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
