"""Keeping API keys out of everything we write or show.

Keys are read from the environment variables that endpoints name (``api_key_env``). Every
log handler the project installs carries a :class:`RedactingFilter`, and every manifest
is written from :func:`redacted_settings`, so a key cannot reach the workspace, a log
file or the terminal, even through a third-party library's debug logging.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from medresearcher.config import Settings

__all__ = ["RedactingFilter", "redact", "redact_url", "redacted_settings", "secret_values"]

MASK = "***"
# Environment variables that hold secrets by convention, whether or not config names them.
_SECRET_ENV_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)
_SECRET_FIELD = re.compile(r"(api_?key|token|secret|password)$", re.IGNORECASE)
_MIN_SECRET_LEN = 6  # shorter values would mask ordinary words


def secret_values(
    settings: Settings | None = None, environ: Mapping[str, str] | None = None
) -> set[str]:
    """Values never to be written: keys that endpoints name, and secret-looking env vars."""
    env = os.environ if environ is None else environ
    names = {name for name in env if _SECRET_ENV_NAME.search(name)}
    if settings is not None:
        names.update(ep.api_key_env for ep in settings.llm.values() if ep.api_key_env)
    return {env[name] for name in names if len(env.get(name, "")) >= _MIN_SECRET_LEN}


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***``, longest first."""
    for value in sorted(secrets, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_url(url: str) -> str:
    """The URL with any ``user:password@`` part masked."""
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, parts.fragment))


def redacted_settings(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, safe to write to a manifest or print."""
    secrets = secret_values(settings)

    def clean(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: clean(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v, key) for v in value]  # base_urls: each replica's URL
        if isinstance(value, str):
            if key != "api_key_env" and _SECRET_FIELD.search(key):
                return MASK
            url = key in ("base_url", "base_urls")
            return redact(redact_url(value) if url else value, secrets)
        return value

    return clean(settings.model_dump(mode="json"))


class RedactingFilter(logging.Filter):
    """A logging filter that masks secret values in the final message and traceback text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = frozenset(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, masked, so handlers never see the raw text.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, self.secrets)
            record.exc_info = None
        return True
