"""The agent's tools (paper §2.2) and :func:`build_toolbox`, which assembles them from settings.

General tools: ``web_search`` (several queries per call; local corpus offline, or a web API)
and ``document_read`` (a URL behind an SSRF guard, or a corpus document; toward a goal).
Medical tools: ``medical_retriever`` (PrivateMedicalRetriever, Score = λ·Rel + (1−λ)·Auth,
optionally with live PubMed / ClinicalTrials.gov / openFDA) and ``clinical_reasoning``
(ClinicalReasoningEngine, a Bayesian differential diagnosis).

::

    toolbox = build_toolbox(settings, Workspace(settings.workspace), gateway=gateway)
    observation = await toolbox.call("web_search", '{"queries": ["Fabry disease gene"]}')
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from medresearcher.config import Settings
from medresearcher.errors import ConfigError
from medresearcher.llm import LLMGateway
from medresearcher.tools.base import Observation, Tool, ToolBox
from medresearcher.tools.document_read import DocumentReadTool
from medresearcher.tools.medical_retriever import LiveSources, MedicalRetrieverTool
from medresearcher.tools.search_backends import (
    IndexMissingError,
    SearchBackend,
    WebResult,
    WorkspaceIndex,
    make_search_backend,
)
from medresearcher.tools.url_guard import FetchError, UrlGuard, UrlRefused
from medresearcher.tools.web_search import WebSearchTool
from medresearcher.workspace import Workspace

__all__ = [
    "TOOL_NAMES",
    "DocumentReadTool",
    "FetchError",
    "IndexMissingError",
    "LiveSources",
    "MedicalRetrieverTool",
    "Observation",
    "SearchBackend",
    "Tool",
    "ToolBox",
    "UrlGuard",
    "UrlRefused",
    "WebResult",
    "WebSearchTool",
    "WorkspaceIndex",
    "build_toolbox",
]

log = logging.getLogger(__name__)

#: Every tool :func:`build_toolbox` knows, in the order the agent sees them.
TOOL_NAMES = ("web_search", "document_read", "medical_retriever", "clinical_reasoning")


def build_toolbox(
    settings: Settings,
    workspace: Workspace | str | os.PathLike[str],
    *,
    gateway: LLMGateway | None = None,
    names: Iterable[str] | None = None,
    index: WorkspaceIndex | None = None,
) -> ToolBox:
    """The configured tools over ``workspace``, ready for the ReAct loop.

    Parameters
    ----------
    settings:
        ``[tools]`` chooses the search backend, the reader's model, the fetch limits and
        live sources; ``[retrieval]`` the retriever's λ and authority model.
    workspace:
        Its ``index/`` is read by the corpus tools (opened on first use; a missing index
        makes those calls fail with a message naming ``medresearcher index build``).
    gateway:
        Needed for ``document_read`` extraction by ``[tools] document_read_endpoint``;
        without it the reader returns passages ranked by retrieval.
    names:
        Only these tools (default: all of :data:`TOOL_NAMES`).
    index:
        A shared :class:`WorkspaceIndex` (default: one over ``<workspace>/index``).

    Raises
    ------
    ConfigError
        An unknown tool name, or a reader endpoint that is not configured.
    """
    wanted = list(TOOL_NAMES if names is None else dict.fromkeys(names))
    unknown = [name for name in wanted if name not in TOOL_NAMES]
    if unknown:
        raise ConfigError(
            f"unknown tool {', '.join(map(repr, unknown))}; the tools are: {', '.join(TOOL_NAMES)}"
        )
    ws = workspace if isinstance(workspace, Workspace) else Workspace(Path(workspace))
    config = settings.tools
    closers = []
    if index is None:  # ours to close; a caller's shared index stays open for its next use
        index = WorkspaceIndex(ws.index_dir, settings.retrieval)
        closers.append(index.close)
    tools: list[Tool] = []
    for name in wanted:
        if name == "web_search":
            tools.append(
                WebSearchTool(
                    make_search_backend(config, index),
                    results_per_query=config.web_search_results,
                    timeout_s=config.timeout_s,
                )
            )
        elif name == "document_read":
            endpoint = config.document_read_endpoint
            if endpoint and gateway is None:
                log.warning(
                    "[tools] document_read_endpoint = %r, but no model gateway was given: "
                    "document_read returns passages ranked by retrieval",
                    endpoint,
                )
            elif endpoint:
                settings.endpoint(endpoint)  # a ConfigError naming the known endpoints
            tools.append(
                DocumentReadTool(
                    index,
                    UrlGuard.from_settings(config),
                    gateway=gateway,
                    endpoint=endpoint,
                    language=settings.agent.language,
                    timeout_s=config.timeout_s,
                )
            )
        elif name == "medical_retriever":
            live = None
            if config.live_sources:
                live = LiveSources(
                    settings.sources,
                    cache_path=ws.http_cache_path,
                    timeout_s=min(settings.sources.timeout_s, config.timeout_s / 2),
                )
            tools.append(
                MedicalRetrieverTool(
                    index,
                    settings.retrieval,
                    live=live,
                    field_weights=config.retriever_field_weights,
                    timeout_s=config.timeout_s,
                )
            )
        else:
            clinical = _clinical_reasoning_tool()
            if clinical is not None:
                clinical.timeout_s = config.timeout_s
                tools.append(clinical)
    return ToolBox(tools, max_observation_tokens=config.max_observation_tokens, closers=closers)


def _clinical_reasoning_tool() -> Tool | None:
    """ClinicalReasoningEngine, when its module is part of this installation."""
    try:
        from medresearcher.tools.clinical_reasoning import ClinicalReasoningTool
    except ModuleNotFoundError as exc:
        if exc.name != "medresearcher.tools.clinical_reasoning":
            raise
        log.warning("clinical_reasoning is not available in this installation; skipped")
        return None
    return ClinicalReasoningTool()
