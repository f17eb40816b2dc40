"""Settings of the later pipeline stages (``[qa]``, ``[tools]``, ``[agent]``).

Kept apart from :mod:`medresearcher.config`, which holds the loading logic and the settings of
the foundation (endpoints, cache, sources, retrieval); :class:`~medresearcher.config.Settings`
includes these sections.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AgentSettings", "QASettings", "ToolSettings"]


class QASettings(BaseModel):
    """QA synthesis (``[qa]``, paper §3.1.2–3.1.3)."""

    model_config = ConfigDict(extra="forbid")

    min_hops: int = Field(default=2, ge=1, description="Shorter chains fail the hops check.")
    near_duplicate_threshold: float = Field(
        default=0.8, gt=0, le=1, description="Shingle Jaccard above which a question is a copy."
    )
    closed_book_k: int = Field(default=4, ge=1, description="Answers asked per model.")
    too_easy_above: float = Field(
        default=0.5, ge=0, le=1, description="Closed-book accuracy that marks a question easy."
    )
    calibration_panel: list[str] = Field(
        default_factory=list, description="Names of [llm.*] endpoints used as reference models."
    )
    max_level: int = Field(default=4, ge=1, description="Highest complexity level tried.")


class ToolSettings(BaseModel):
    """The agent's tools (``[tools]``, paper §2.2)."""

    model_config = ConfigDict(extra="forbid")

    web_search_backend: Literal["local", "serper", "tavily", "brave", "searxng"] = Field(
        default="local",
        description="local: the retriever over the workspace corpus (offline); the others "
        "call the named web search API with the key in the environment variable below.",
    )
    web_search_api_key_env: str | None = Field(
        default=None,
        description="Environment variable holding the search API key (default: "
        "SERPER_API_KEY, TAVILY_API_KEY or BRAVE_API_KEY by backend).",
    )
    searxng_url: str | None = Field(default=None, description="Base URL of a SearXNG instance.")
    web_search_results: int = Field(default=5, ge=1, le=20, description="Results per query.")
    document_read_endpoint: str | None = Field(
        default=None,
        description="[llm.*] endpoint that extracts toward the reader's goal; without one the "
        "reader returns the passages that retrieval finds relevant.",
    )
    allow_private_addresses: bool = Field(
        default=False,
        description="Let document_read fetch loopback, private and link-local addresses "
        "(off: a model-chosen URL must not reach the host's own network).",
    )
    max_download_bytes: int = Field(default=5_000_000, gt=0)
    fetch_timeout_s: float = Field(default=20.0, gt=0)
    retriever_field_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "body": 1.0,
            "names": 1.0,
            "genes": 2.0,
            "phenotypes": 1.0,
            "other_phenotypes": 0.5,
            "groups": 1.0,
        },
        description="BM25 weight per document field in medical_retriever. An agent asks "
        "about entities by their genes, signs and groups, which sit in the fields of enriched "
        "records, not in the body ([retrieval] field_weights is for plain document search).",
    )
    live_sources: bool = Field(
        default=False,
        description="medical_retriever also asks PubMed, ClinicalTrials.gov and openFDA.",
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Per-call limit of any tool.")
    max_observation_tokens: int = Field(
        default=2048, ge=64, description="Tool output is cut to this many tokens."
    )


class AgentSettings(BaseModel):
    """The ReAct loop (``[agent]``, paper §2.2)."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(default=12, ge=1, description="Model turns before a forced answer.")
    max_tokens: int = Field(
        default=32768, ge=256, description="Conversation tokens (Qwen2.5) before a forced answer."
    )
    timeout_s: float = Field(default=600.0, gt=0, description="Wall-clock limit of one run.")
    language: Literal["en", "zh"] = "en"
