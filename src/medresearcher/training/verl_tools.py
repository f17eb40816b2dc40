"""Our agent tools as verl tools, for verl's multi-turn GRPO (``ToolAgentLoop``).

verl reads a tool YAML (``actor_rollout_ref.rollout.multi_turn.tool_config_path``) and builds
each entry as ``class_name(config=<config>, tool_schema=<OpenAIFunctionToolSchema>)`` inside its
agent-loop workers; for every call it runs ``create`` → ``execute(instance_id, parameters)`` →
``release``. :class:`MedResearcherTool` is that class for every medresearcher tool: its
``config`` names the tool (``tool_name``), the ``workspace`` whose index the corpus tools read,
and optionally the ``config_file`` (medresearcher.toml) for the ``[tools]`` settings. The tools
of one worker share one :class:`~medresearcher.tools.ToolBox` (one open index), built on first
use inside the worker's event loop.
:func:`medresearcher.training.verl_bundle.write_verl_grpo_bundle` writes the YAML.

The class subclasses verl's ``BaseTool`` when verl is installed. Without verl it stands on a
small stand-in with the same interface, so the wrapper stays importable and testable;
``ToolResponse`` is then a plain object with a ``text`` attribute.

``execute`` returns ``(ToolResponse(text=observation.text), 0.0, metrics)``: the step reward is
0, since the paper's reward is given once per trajectory by ``compute_score``
(:mod:`medresearcher.training.verl_reward`); failures are error observations the model reads,
exactly as in our own ReAct loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from medresearcher.tools import ToolBox

__all__ = ["VERL_AVAILABLE", "MedResearcherTool", "ToolResponse", "shared_toolbox"]

log = logging.getLogger(__name__)

try:  # verl is not a dependency of ours: users who train with it have it
    from verl.tools.base_tool import BaseTool as _Base
    from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

    VERL_AVAILABLE = True
except ImportError:  # pragma: no cover - exercised where verl is missing
    VERL_AVAILABLE = False

    @dataclass
    class ToolResponse:  # type: ignore[no-redef]
        """Stand-in for ``verl.tools.schemas.ToolResponse`` (text only)."""

        text: str | None = None

    class _Base:  # type: ignore[no-redef]
        """Stand-in for ``verl.tools.base_tool.BaseTool``: the same constructor contract."""

        def __init__(self, config: dict, tool_schema: Any) -> None:
            self.config = config
            self.tool_schema = tool_schema
            function = (
                tool_schema["function"] if isinstance(tool_schema, dict) else tool_schema.function
            )
            self.name = function["name"] if isinstance(function, dict) else function.name

    OpenAIFunctionToolSchema = None  # type: ignore[assignment,misc]


#: Toolboxes by event loop (weakly: a finished loop's entry goes with it), then by workspace.
_TOOLBOXES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, ToolBox]] = (
    weakref.WeakKeyDictionary()
)
_TOOLBOXES_LOCK = threading.Lock()


def shared_toolbox(workspace: str, config_file: str | None = None) -> ToolBox:
    """The process's toolbox over ``workspace`` for the running event loop (built once).

    Keyed by the loop too: tools may hold HTTP clients that belong to the loop that made them.
    """
    loop = asyncio.get_running_loop()
    key = (str(workspace), config_file)
    with _TOOLBOXES_LOCK:
        boxes = _TOOLBOXES.setdefault(loop, {})
        if key not in boxes:
            from medresearcher.config import load_settings
            from medresearcher.tools import build_toolbox

            settings = load_settings(config_file, overrides={"workspace": str(workspace)})
            boxes[key] = build_toolbox(settings, str(workspace))
        return boxes[key]


class MedResearcherTool(_Base):
    """One medresearcher tool behind verl's ``BaseTool`` interface.

    ``config`` keys: ``tool_name`` (default: the schema's function name), ``workspace``
    (required), ``config_file`` (optional medresearcher.toml), and verl's own ``type: native``.
    """

    def __init__(self, config: dict, tool_schema: Any) -> None:
        if isinstance(tool_schema, dict) and OpenAIFunctionToolSchema is not None:
            # verl passes a validated schema; a plain dict (our YAML entry) is validated here
            tool_schema = OpenAIFunctionToolSchema.model_validate(tool_schema)
        super().__init__(config, tool_schema)
        self.tool_name = str(config.get("tool_name") or self.name)
        workspace = config.get("workspace")
        if not workspace:
            from medresearcher.errors import ConfigError

            raise ConfigError(
                f"verl tool {self.tool_name!r}: its config needs 'workspace' (the folder whose "
                "index/ the corpus tools read)"
            )
        self.workspace = str(workspace)
        self.config_file = config.get("config_file") or None
        self._instances: dict[str, dict[str, Any]] = {}

    async def create(self, instance_id: str | None = None, **kwargs: Any) -> tuple[str, Any]:
        """Start an instance for one rollout; keeps ``create_kwargs`` (e.g. the QA id)."""
        instance_id = instance_id or str(uuid4())
        self._instances[instance_id] = dict(kwargs.get("create_kwargs") or {})
        return instance_id, ToolResponse()

    async def execute(
        self, instance_id: str, parameters: dict[str, Any], **kwargs: Any
    ) -> tuple[Any, float, dict[str, Any]]:
        """Run the tool on ``parameters``; returns (response, step reward 0, metrics)."""
        toolbox = shared_toolbox(self.workspace, self.config_file)
        observation = await toolbox.call(self.tool_name, parameters)
        metrics = {
            "error": observation.error,
            "truncated": observation.truncated,
            "elapsed_s": observation.elapsed_s,
            "sources": len(observation.sources),
        }
        return ToolResponse(text=observation.text), 0.0, metrics

    async def calc_reward(self, instance_id: str, **kwargs: Any) -> float:
        """No per-tool reward: the trajectory's reward is ``compute_score``'s."""
        return 0.0

    async def release(self, instance_id: str, **kwargs: Any) -> None:
        self._instances.pop(instance_id, None)
