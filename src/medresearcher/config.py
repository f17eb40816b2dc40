"""Settings: ``medresearcher.toml`` overridden by ``MEDRESEARCHER_*`` environment variables.

Precedence, lowest first: built-in defaults, the TOML file (``--config`` or
``./medresearcher.toml``), then environment variables. Nested keys use a double
underscore: ``MEDRESEARCHER_LLM__AGENT__BASE_URL`` sets ``[llm.agent] base_url``.

API keys never live in the config: an endpoint names the environment variable that holds
its key (``api_key_env``), so a config file or a run manifest can be shared safely.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medresearcher.errors import ConfigError
from medresearcher.scale_settings import ExecutorSettings, GraphSettings, MilvusSettings
from medresearcher.stage_settings import AgentSettings, QASettings, ToolSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "AuthoritySettings",
    "CacheSettings",
    "EndpointSettings",
    "RetrievalSettings",
    "Settings",
    "SourcesSettings",
    "load_settings",
]

ENV_PREFIX = "MEDRESEARCHER_"
DEFAULT_CONFIG_NAME = "medresearcher.toml"
# Environment variables with the prefix that are not settings.
_NON_SETTING_ENV = {"MEDRESEARCHER_CONFIG"}


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


class CacheSettings(BaseModel):
    """The LLM response cache (``[cache]``)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["off", "read-write", "replay"] = Field(
        default="off",
        description="off: always call the model; read-write: reuse identical requests; "
        "replay: answer only from the cache and fail on a miss (exactly repeatable runs).",
    )


class SourcesSettings(BaseModel):
    """The live literature, trial and label APIs (``[sources]``)."""

    model_config = ConfigDict(extra="forbid")

    max_retries: int = Field(default=4, ge=0, description="Retries after the first attempt.")
    retry_backoff_s: float = Field(default=1.0, ge=0, description="First backoff; doubles.")
    timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    cache: Literal["off", "read-write", "replay"] = Field(
        default="read-write",
        description="HTTP cache in <workspace>/cache/http.sqlite; replay never touches the "
        "network.",
    )
    ncbi_email: str | None = Field(
        default=None, description="Sent to NCBI with each request, as it asks of tools."
    )


# Authority prior by source type (ARCHITECTURE §3, medical-data.md §1.10): how much a
# clinician would trust a statement for its kind of source alone.
DEFAULT_TYPE_PRIOR: dict[str, float] = {
    "guideline": 1.0,
    "fda_label": 0.95,
    "meta_analysis": 0.9,
    "systematic_review": 0.9,
    "rct": 0.8,
    "reference": 0.75,
    "clinical_trial": 0.7,
    "trial_registry": 0.6,
    "drug_catalog": 0.6,
    "observational": 0.6,
    "review": 0.55,
    "article": 0.5,
    "case_report": 0.35,
    "editorial": 0.25,
    "preprint": 0.2,
    "web": 0.1,
    "retracted": 0.0,
}


class AuthoritySettings(BaseModel):
    """Auth(d) ∈ [0, 1] of the retriever (``[retrieval.authority]``).

    Auth is the weighted mean of the components a document has: the prior of its source
    type (always), its journal's impact (when ``impact_table`` names the journal or ISSN),
    and recency (when its year is known).
    """

    model_config = ConfigDict(extra="forbid")

    type_prior: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_TYPE_PRIOR),
        description="Source type → prior in [0, 1]; types not listed get 'article'.",
    )
    weight_type: float = Field(default=0.6, ge=0)
    weight_impact: float = Field(default=0.2, ge=0)
    weight_recency: float = Field(default=0.2, ge=0)
    recency_half_life_years: float = Field(
        default=10.0, gt=0, description="Age at which the recency component halves."
    )
    impact_table: Path | None = Field(
        default=None,
        description="CSV/TSV with columns journal or issn, and impact_factor (yours to supply).",
    )
    impact_cap: float = Field(
        default=50.0, gt=0, description="Impact factor that maps to 1 (log-scaled)."
    )


class RetrievalSettings(BaseModel):
    """PrivateMedicalRetriever: Score = λ·Rel + (1−λ)·Auth (``[retrieval]``, paper §2.2)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["embedded", "milvus"] = Field(
        default="embedded",
        description="embedded: bm25s + numpy in this process; milvus: Milvus (Lite or a "
        "server, see [retrieval.milvus]) with its BM25 function, dense vectors and hybrid search.",
    )
    relevance_weight: float = Field(
        default=0.4, ge=0, le=1, description="λ: the weight of relevance against authority."
    )
    dense_weight: float = Field(
        default=0.3, ge=0, le=1, description="Share of the dense score in Rel (convex fusion)."
    )
    fusion: Literal["convex", "rrf"] = "convex"
    field_weights: dict[str, float] = Field(
        default_factory=lambda: {"body": 1.0},
        description="BM25 weight per document field for document searches (body = title + "
        "text; Document.fields hold names, genes, phenotypes, ...). Fields not listed count 0.",
    )
    entity_field_weights: dict[str, float] = Field(
        default_factory=lambda: {"body": 0.5, "names": 1.0, "genes": 3.0, "phenotypes": 1.5},
        description="The same for entity questions ('gene X, signs Y and Z: which "
        "disorder?'): genes and hallmark signs count most, names keep name questions right. "
        "Chosen on benchmarks/bench_describe.py (MRR@10 .83 on descriptions, .85 on names); "
        "on document searches these fields would crowd out abstracts.",
    )
    candidates: int = Field(default=100, ge=1, description="Top-N taken from each index.")
    rerank_depth: int = Field(default=50, ge=1, description="How many authority re-ranks.")
    relevance_floor: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Authority re-ranks only documents with Rel ≥ floor × the best Rel, so "
        "it never lifts an irrelevant authoritative document (0.5 cost known-item recall: "
        "PubMedQA R@10 0.975 → 0.919 at λ = 0.4; 0.8 keeps 0.973).",
    )
    min_dense_similarity: float = Field(
        default=0.3, ge=-1, le=1, description="Dense matches below this cosine are ignored."
    )
    authority: AuthoritySettings = Field(default_factory=AuthoritySettings)
    milvus: MilvusSettings = Field(default_factory=MilvusSettings)


class Settings(BaseModel):
    """The resolved configuration of one invocation."""

    model_config = ConfigDict(extra="forbid")

    workspace: Path = Field(default=Path("workspace"), description="Where every artefact lives.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    cache: CacheSettings = Field(default_factory=CacheSettings)
    llm: dict[str, EndpointSettings] = Field(default_factory=dict)
    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    qa: QASettings = Field(default_factory=QASettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)

    # Where the values came from, for messages; not a setting.
    source: str | None = Field(default=None, exclude=True)

    def endpoint(self, name: str) -> EndpointSettings:
        """The endpoint called ``name``, or an error that lists the configured ones."""
        if name in self.llm:
            return self.llm[name]
        where = self.source or f"./{DEFAULT_CONFIG_NAME}"
        if not self.llm:
            raise ConfigError(
                f"unknown LLM endpoint {name!r}: no endpoints are configured "
                f"(add an [llm.{name}] table to {where}; see medresearcher.example.toml)"
            )
        known = ", ".join(sorted(self.llm))
        raise ConfigError(f"unknown LLM endpoint {name!r}; configured endpoints: {known}")


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the TOML file and the environment into validated :class:`Settings`.

    Parameters
    ----------
    config_path:
        An explicit file, which must exist. Without it, ``$MEDRESEARCHER_CONFIG`` or
        ``./medresearcher.toml`` is read when present, else the defaults apply.
    environ:
        The environment to read overrides from (``os.environ`` by default).
    overrides:
        Dotted keys set last, e.g. ``{"workspace": "/tmp/ws"}`` from a CLI flag.

    Raises
    ------
    ConfigError
        Naming the file (and line, when it can be found) or the environment variable and
        the key whose value is wrong.
    """
    env = os.environ if environ is None else environ
    path = _config_file(config_path, env)
    data: dict[str, Any] = {}
    text = ""
    if path is not None:
        text = path.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None

    origins: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in _NON_SETTING_ENV:
            continue
        keys = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        _set_nested(data, keys, _parse_env_value(raw), where=f"environment variable {name}")
        origins[keys] = f"environment variable {name}"
    for dotted, value in (overrides or {}).items():
        keys = tuple(dotted.split("."))
        _set_nested(data, keys, value, where=f"option {dotted}")
        origins[keys] = f"option {dotted}"

    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe_validation(exc, path, text, origins)) from None
    settings.source = str(path) if path else None
    return settings


def _config_file(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    if explicit is None and env.get("MEDRESEARCHER_CONFIG"):
        explicit = env["MEDRESEARCHER_CONFIG"]
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.is_file() else None


def _parse_env_value(raw: str) -> Any:
    """Numbers, booleans, lists and objects as JSON; anything else as the plain string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _set_nested(data: dict[str, Any], keys: tuple[str, ...], value: Any, *, where: str) -> None:
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {'.'.join(keys)}: {key!r} is not a table")
        node = child
    node[keys[-1]] = value


def _describe_validation(
    exc: ValidationError,
    path: Path | None,
    text: str,
    origins: Mapping[tuple[str, ...], str],
) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) or "(root)"
        where = _origin_of(loc, origins)
        if where is None:
            # A missing key has no line of its own: point at the table that lacks it.
            line = next(
                (n for size in range(len(loc), 0, -1) if (n := _find_key_line(text, loc[:size]))),
                None,
            )
            where = f"{path}:{line}" if path and line else str(path or "defaults")
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif "input" in error and not isinstance(error["input"], dict):
            message += f" (got {error['input']!r})"
        lines.append(f"{where}: {key}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _origin_of(loc: tuple[str, ...], origins: Mapping[tuple[str, ...], str]) -> str | None:
    for size in range(len(loc), 0, -1):
        if loc[:size] in origins:
            return origins[loc[:size]]
    return None


_TABLE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"']+)\s*=")


def _find_key_line(text: str, loc: tuple[str, ...]) -> int | None:
    """The 1-based line where ``loc`` is assigned, for ``table.key = value`` layouts."""
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TABLE.match(line)
        if header:
            table = tuple(part.strip().strip("\"'") for part in header.group(1).split("."))
            if table == loc:
                return number
            continue
        key = _KEY.match(line)
        if key and (*table, key.group(1).strip("\"'")) == loc:
            return number
    return None
