"""Settings: ``medresearcher.toml`` overridden by ``MEDRESEARCHER_*`` environment variables.

Precedence, lowest first: built-in defaults, the TOML file (``--config`` or
``./medresearcher.toml``), then environment variables. Nested keys use a double
underscore: ``MEDRESEARCHER_LLM__AGENT__BASE_URL`` sets ``[llm.agent] base_url``.

API keys never live in the config: an endpoint names the environment variable that holds
its key (``api_key_env``), so a config file or a run manifest can be shared safely.
:class:`EndpointSettings` lives in :mod:`medresearcher.endpoint_settings` and is re-exported
here.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medresearcher.endpoint_settings import EndpointSettings
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
