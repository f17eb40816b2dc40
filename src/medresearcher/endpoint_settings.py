"""One named model endpoint (``[llm.<name>]``): where it is, how hard to push it, what it costs.

Kept apart from :mod:`medresearcher.config` as its own concept: the server (or pool of
replicas) the gateway calls for one role (agent, judge, rewriter, ...). Re-exported from
:mod:`medresearcher.config`, so ``from medresearcher.config import EndpointSettings`` keeps
working. The API key itself never lives here: ``api_key_env`` names the environment
variable that holds it, so a config file or a run manifest can be shared safely.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medresearcher.errors import ConfigError

__all__ = ["EndpointSettings"]


class EndpointSettings(BaseModel):
    """One named OpenAI-compatible endpoint (``[llm.<name>]``).

    ``base_url`` may list several servers of one model (``base_url = ["http://a:8000/v1",
    "http://b:8000/v1"]``): a pool of replicas (see :mod:`medresearcher.llm.replicas`).
    ``base_url`` is then the first one, the endpoint's identity in cache keys and manifests,
    and ``base_urls`` holds them all.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        description="OpenAI-compatible base URL, usually ending in /v1; a list of several "
        "is a pool of replicas serving the same model."
    )
    base_urls: list[str] = Field(
        default_factory=list,
        exclude_if=lambda urls: not urls,
        description="Every replica, base_url first (filled from a base_url list); empty "
        "for one server.",
    )
    model: str = Field(description="Model name the server knows.")
    api_key_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the API key; "
        "unset for local servers (vLLM, SGLang, Ollama), which get the dummy key 'EMPTY'.",
    )
    max_concurrency: int = Field(
        default=8, ge=1, description="Requests in flight at most, per replica."
    )
    qps: float | None = Field(
        default=None, gt=0, description="Requests started per second, per replica."
    )
    timeout_s: float = Field(default=120.0, gt=0, description="Per-attempt timeout.")
    max_retries: int = Field(default=4, ge=0, description="Retries after the first attempt.")
    retry_backoff_s: float = Field(
        default=1.0, ge=0, description="First backoff; doubles per retry, with jitter."
    )
    retry_max_wait_s: float = Field(
        default=60.0, ge=0, description="Longest wait between attempts, Retry-After included."
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    cache: Literal["off", "read-write", "replay"] | None = Field(
        default=None,
        description="This endpoint's response cache; unset: [cache] mode. A judge set to "
        "read-write grades an identical answer once, across runs.",
    )
    tool_dialect: Literal["native", "hermes"] = Field(
        default="native",
        description="native: OpenAI tools/tool_calls; hermes: <tool_call> tags in the text.",
    )
    price_per_mtok_in: float | None = Field(
        default=None, ge=0, description="USD per 1M input tokens."
    )
    price_per_mtok_out: float | None = Field(
        default=None, ge=0, description="USD per 1M output tokens."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Server-specific request fields (top_k, chat_template_kwargs, ...).",
    )
    replica_failure_threshold: int = Field(
        default=3,
        ge=1,
        description="With several base URLs: failures in a row (timeout, 5xx, dropped "
        "connection) that take a replica out; a refused connection takes it out at once.",
    )
    replica_cooldown_s: float = Field(
        default=30.0, gt=0, description="How long a replica stays out before a probe request."
    )

    @model_validator(mode="before")
    @classmethod
    def _replica_list(cls, data: Any) -> Any:
        """``base_url = [a, b]`` becomes base_url ``a`` and base_urls ``[a, b]``."""
        if not isinstance(data, dict):
            return data
        urls, listed = data.get("base_url"), data.get("base_urls")
        if urls is None and isinstance(listed, list) and listed:
            urls = listed
        if not isinstance(urls, list):
            return data
        if not urls:
            raise ValueError("base_url is an empty list: give one URL or several")
        if listed and list(listed) != urls:
            raise ValueError("base_url and base_urls list different replicas: give one list")
        return {**data, "base_url": urls[0], "base_urls": urls if len(urls) > 1 else []}

    @model_validator(mode="after")
    def _check_replicas(self) -> EndpointSettings:
        if self.base_urls:
            if self.base_urls[0] != self.base_url:
                raise ValueError("base_url must be the first of base_urls")
            seen = [url.rstrip("/") for url in self.base_urls]
            twice = next((url for url in seen if seen.count(url) > 1), None)
            if twice:
                raise ValueError(f"base_url lists {twice} twice")
        return self

    def replica_urls(self) -> list[str]:
        """Every replica's base URL, the first being ``base_url``; one for a single server."""
        if self.base_urls and self.base_urls[0] == self.base_url:
            return list(self.base_urls)
        return [self.base_url]

    def api_key(self) -> str:
        """The key from the environment; ``EMPTY`` for servers that need none."""
        if not self.api_key_env:
            return "EMPTY"
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"environment variable {self.api_key_env} is not set "
                f"(named by api_key_env for model {self.model!r})"
            )
        return key
