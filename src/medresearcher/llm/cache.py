"""The chat-response cache: keyed by everything that shapes the answer.

Modes (see :mod:`medresearcher.cache`): ``off``, ``read-write``, and ``replay``, which
fails on a miss: for runs that must be exactly repeatable, such as a published evaluation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from medresearcher.cache import CacheMode, SqliteCache

__all__ = ["CacheMode", "ResponseCache", "request_key"]


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


class ResponseCache(SqliteCache):
    """Chat responses, one row per request key (``cache/llm.sqlite``)."""

    def __init__(self, path: str | Path, mode: CacheMode = "read-write") -> None:
        super().__init__(path, table="chat_responses", mode=mode)

    def get_response(self, key: str) -> dict[str, Any] | None:
        entry = self.get(key)
        return entry[0] if entry else None

    def put_response(self, key: str, response: dict[str, Any]) -> None:
        self.put(key, response)
