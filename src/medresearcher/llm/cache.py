"""An SQLite cache of chat responses, keyed by everything that shapes the answer.

Modes: ``off`` (never read or write), ``read-write`` (reuse an identical request's
answer), ``replay`` (answer only from the cache, fail on a miss: runs that must be
exactly repeatable, such as a published evaluation).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Literal

__all__ = ["CacheMode", "ResponseCache", "request_key"]

CacheMode = Literal["off", "read-write", "replay"]


def request_key(
    base_url: str,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    params: dict[str, Any],
) -> str:
    """SHA-256 of the canonical JSON of (base_url, model, messages, tools, sampling params)."""
    payload = {
        "base_url": base_url.rstrip("/"),
        "model": model,
        "messages": messages,
        "tools": tools or [],
        "params": params,
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """Cached responses in one SQLite file (WAL mode, safe for several readers)."""

    def __init__(self, path: str | Path, mode: CacheMode = "read-write") -> None:
        self.path = Path(path)
        self.mode = mode
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if mode != "off":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                "key TEXT PRIMARY KEY, endpoint TEXT, model TEXT, response TEXT, created REAL)"
            )

    def get(self, key: str) -> dict[str, Any] | None:
        if self._db is None:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT response FROM responses WHERE key = ?", (key,)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, endpoint: str, model: str, response: dict[str, Any]) -> None:
        if self._db is None or self.mode != "read-write":
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                (key, endpoint, model, json.dumps(response, ensure_ascii=False), time.time()),
            )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
