"""Errors of model calls. A failed call raises; it never returns an empty string."""

from __future__ import annotations

from medresearcher.errors import MedResearcherError

__all__ = ["CacheMissError", "LLMCallError", "LLMError", "StructuredOutputError"]


class LLMError(MedResearcherError):
    """Base class of every model-call error."""


class LLMCallError(LLMError):
    """A call that failed for good: after its last attempt, or at once when not retryable.

    The message is one line naming the endpoint, the URL, the status and the cause, e.g.
    ``endpoint 'agent' (http://localhost:8000/v1): HTTP 500 after 5 attempts: overloaded``.
    """

    def __init__(
        self, endpoint: str, url: str, cause: str, *, status: int | None = None, attempts: int = 1
    ) -> None:
        self.endpoint = endpoint
        self.url = url
        self.cause = cause
        self.status = status
        self.attempts = attempts
        what = f"HTTP {status}" if status is not None else "failed"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"endpoint {endpoint!r} ({url}): {what}{tries}: {cause}")


class CacheMissError(LLMError):
    """Replay mode found no cached response for a request."""


class StructuredOutputError(LLMError):
    """The model's answer did not validate against the requested schema, even after repair."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw
