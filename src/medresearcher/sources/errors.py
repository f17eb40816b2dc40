"""Errors of the live-source connectors: one line that says which host, which URL, and why."""

from __future__ import annotations

from medresearcher.errors import MedResearcherError

__all__ = ["SourceError"]


class SourceError(MedResearcherError):
    """A request to a literature, trial or label API failed for good.

    Raised after the last retry, at once for a non-retryable status (a 4xx other than 429),
    or when a body cannot be parsed. The URL in the message is already redacted (no
    ``api_key`` value), so the message is safe to log and show, e.g.
    ``api.fda.gov (https://api.fda.gov/drug/label.json?...&api_key=***): HTTP 500 after
    5 attempts: upstream unavailable``.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str,
        url: str,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.host = host
        self.url = url
        self.status = status
        self.attempts = attempts
