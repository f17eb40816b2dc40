"""A ready verl GRPO run: tool YAML, reward config and a commented launch script (paper §4).

We do not write a trainer (ecosystem.md §2.1: verl's agent loop is the most mature multi-turn RL
stack); we hand it what it needs. :func:`write_verl_grpo_bundle` writes into one folder:

``tools.yaml``
    verl's tool config (``tools: - class_name, config, tool_schema``): every medresearcher tool
    as :class:`medresearcher.training.verl_tools.MedResearcherTool`, its schema converted to
    what verl's ``OpenAIFunctionToolSchema`` keeps (see :func:`verl_tool_schema`).
``reward.yaml``
    the ``reward.custom_reward_function`` section: the path of
    :mod:`medresearcher.training.verl_reward`, ``name: compute_score`` and the reward weights.
``run_grpo.sh``
    ``python -m verl.trainer.main_ppo`` with every override commented: GRPO, no KL term (the
    paper trains without one), async multi-turn rollouts with the tool YAML, the composite
    reward, the ``verl_rl.parquet`` export as data.

Nothing here imports verl: the bundle is written where medresearcher runs and used where verl
is installed. The script finds the reward module of the medresearcher installed *there*.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from medresearcher.errors import InputError
from medresearcher.training.rewards import RewardWeights

if TYPE_CHECKING:
    from medresearcher.config import Settings

__all__ = [
    "REWARD_FUNCTION",
    "VERL_TOOL_CLASS",
    "grpo_overrides",
    "verl_tool_config",
    "verl_tool_schema",
    "write_verl_grpo_bundle",
]

#: The class verl instantiates for each tool (a string: writing the YAML needs no verl).
VERL_TOOL_CLASS = "medresearcher.training.verl_tools.MedResearcherTool"
#: The reward function verl loads from :mod:`medresearcher.training.verl_reward`.
REWARD_FUNCTION = "compute_score"
#: Shell text that prints the installed reward module's path (verl loads it by file path).
REWARD_PATH_SHELL = (
    "$(python -c 'import medresearcher.training.verl_reward as m; print(m.__file__)')"
)


def _describe(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[Any, str]:
    """The verl ``type`` of a JSON-schema property and what its description must add.

    verl's property schema keeps only ``type``, ``description`` and ``enum``; item types,
    bounds, defaults and nested objects would be dropped silently, so they go into the text.
    """
    notes: list[str] = []
    if "$ref" in prop:
        target = defs.get(prop["$ref"].rsplit("/", 1)[-1], {})
        fields = ", ".join(target.get("properties", {}))
        return "object", f"an object with fields: {fields}" if fields else ""
    if "type" in prop:
        kind: Any = prop["type"]
    else:
        variants = [v for v in prop.get("anyOf", []) if isinstance(v, Mapping)]
        kinds = [v.get("type", "object") for v in variants]
        kind = kinds[0] if len(kinds) == 1 else (kinds or "string")
        bounded = [v for v in variants if "minimum" in v or "maximum" in v]
        if bounded:
            prop = {**prop, **bounded[0]}
    if kind == "array":
        items = prop.get("items", {})
        if "$ref" in items:
            item_kind, item_note = _describe(items, defs)
            notes.append(f"a list of {item_note or item_kind}")
        else:
            notes.append(f"a list of {items.get('type', 'values')}s")
            if items.get("enum"):
                notes.append("each one of: " + ", ".join(map(str, items["enum"])))
        if "minItems" in prop or "maxItems" in prop:
            notes.append(f"{prop.get('minItems', 0)} to {prop.get('maxItems', 'any number of')}")
    if "minimum" in prop or "maximum" in prop:
        notes.append(f"from {prop.get('minimum', '-inf')} to {prop.get('maximum', 'inf')}")
    if "default" in prop and prop["default"] not in (None, "", []):
        notes.append(f"default {json.dumps(prop['default'])}")
    return kind, "; ".join(notes)


def verl_tool_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Our OpenAI tool schema in the form verl's ``OpenAIFunctionToolSchema`` validates.

    Every property gets a ``type`` (a list for ``anyOf`` such as ``["integer", "null"]``);
    what verl's model would drop (item types, bounds, defaults, nested fields) is written into
    the property's description, so that the model still reads it.
    """
    function = schema["function"]
    parameters = function.get("parameters", {})
    defs = parameters.get("$defs", {})
    properties: dict[str, Any] = {}
    for name, prop in parameters.get("properties", {}).items():
        kind, note = _describe(prop, defs)
        text = " ".join(part for part in (prop.get("description", ""), f"({note})" if note else ""))
        entry: dict[str, Any] = {"type": kind, "description": text.strip()}
        if prop.get("enum"):
            entry["enum"] = list(prop["enum"])
        properties[name] = entry
    return {
        "type": "function",
        "function": {
            "name": function["name"],
            "description": function.get("description", ""),
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(parameters.get("required", [])),
            },
        },
    }


def verl_tool_config(
    schemas: Iterable[Mapping[str, Any]], *, workspace: str | Path, config_file: str | None = None
) -> dict[str, Any]:
    """The content of verl's tool YAML for our tool ``schemas``."""
    tools = []
    for schema in schemas:
        name = schema["function"]["name"]
        config: dict[str, Any] = {"type": "native", "tool_name": name, "workspace": str(workspace)}
        if config_file:
            config["config_file"] = str(config_file)
        tools.append(
            {
                "class_name": VERL_TOOL_CLASS,
                "config": config,
                "tool_schema": verl_tool_schema(schema),
            }
        )
    return {"tools": tools}


def _tool_schemas(settings: Settings, workspace: Path, names: Sequence[str] | None) -> list[dict]:
    """Schemas of the configured tools (the index is opened lazily, so this reads no index)."""
    from medresearcher.tools import build_toolbox

    toolbox = build_toolbox(settings, workspace, names=names)
    try:
        return toolbox.schemas()
    finally:
        asyncio.run(toolbox.aclose())


def grpo_overrides(
    *,
    train_file: str,
    val_file: str,
    model: str,
    tool_config: str,
    reward_path: str,
    weights: RewardWeights,
    expert_endpoint: str | None,
    config_file: str | None,
    workspace: str,
    n_gpus_per_node: int,
    nnodes: int,
    rollout_n: int,
    rollout_engine: str,
    train_batch_size: int,
    max_prompt_length: int,
    max_response_length: int,
    max_assistant_turns: int,
    learning_rate: float,
    total_epochs: int,
    experiment_name: str,
) -> list[tuple[str, str, str]]:
    """The ``main_ppo`` overrides as ``(key, value, comment)``, in the script's order."""
    reward_kwargs = [
        ("task_weight", str(weights.task), "α: weight of r_task (paper §4)"),
        ("expert_weight", str(weights.expert), "β: weight of r_expert (0 without a judge)"),
        ("efficiency_weight", str(weights.efficiency), "γ: weight of the efficiency penalty"),
        ("workspace", workspace, "qa.jsonl here gives cheat sheets and paradigms by qa_id"),
    ]
    if expert_endpoint:
        reward_kwargs.append(("expert_endpoint", expert_endpoint, "judge endpoint for r_expert"))
    if config_file:
        reward_kwargs.append(("config", config_file, "medresearcher.toml defining the endpoint"))
    mini_batch = max(1, train_batch_size // 4)
    return [
        ("algorithm.adv_estimator", "grpo", "GRPO: group-relative advantages, no critic"),
        ("algorithm.norm_adv_by_std_in_grpo", "True", "(r - mean) / std within each group"),
        ("algorithm.use_kl_in_reward", "False", "no KL penalty in the reward (paper: no KL)"),
        ("algorithm.kl_ctrl.kl_coef", "0.0", "KL coefficient 0, as in the paper"),
        ("data.train_files", train_file, "the verl-rl export (medresearcher traj export)"),
        ("data.val_files", val_file, "validation prompts; use a held-out split for real runs"),
        ("data.return_raw_chat", "True", "the agent loop needs the chat messages, not tokens"),
        ("data.train_batch_size", str(train_batch_size), "prompts per step"),
        ("data.max_prompt_length", str(max_prompt_length), "tokens of system + question"),
        ("data.max_response_length", str(max_response_length), "tokens of all turns + results"),
        ("data.filter_overlong_prompts", "True", "drop prompts longer than the limit"),
        ("data.truncation", "error", "never cut a prompt silently"),
        ("actor_rollout_ref.model.path", model, "the policy: usually the SFT checkpoint"),
        ("actor_rollout_ref.actor.optim.lr", f"{learning_rate:g}", "actor learning rate"),
        ("actor_rollout_ref.actor.ppo_mini_batch_size", str(mini_batch), "prompts per update"),
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", "1", "sequences per GPU pass"),
        ("actor_rollout_ref.actor.use_kl_loss", "False", "no KL loss against a reference"),
        ("actor_rollout_ref.actor.kl_loss_coef", "0.0", "(unused with use_kl_loss=False)"),
        ("actor_rollout_ref.actor.entropy_coeff", "0", "no entropy bonus"),
        ("actor_rollout_ref.rollout.name", rollout_engine, "inference engine: vllm or sglang"),
        ("actor_rollout_ref.rollout.mode", "async", "async server mode: needed by agent loops"),
        ("actor_rollout_ref.rollout.n", str(rollout_n), "G: rollouts per prompt (GRPO group)"),
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", "1", "log-prob pass"),
        ("actor_rollout_ref.rollout.tensor_model_parallel_size", "1", "GPUs per engine"),
        ("actor_rollout_ref.rollout.gpu_memory_utilization", "0.6", "engine's share of VRAM"),
        ("actor_rollout_ref.rollout.multi_turn.enable", "True", "multi-turn tool rollouts"),
        ("actor_rollout_ref.rollout.multi_turn.format", "hermes", "<tool_call> JSON (Qwen)"),
        ("actor_rollout_ref.rollout.multi_turn.tool_config_path", tool_config, "our tools"),
        (
            "actor_rollout_ref.rollout.multi_turn.max_assistant_turns",
            str(max_assistant_turns),
            "turn budget per rollout",
        ),
        (
            "actor_rollout_ref.rollout.multi_turn.max_tool_response_length",
            "4096",
            "characters of a tool result kept (the toolbox also cuts by tokens)",
        ),
        (
            "actor_rollout_ref.rollout.agent.default_agent_loop",
            "tool_agent",
            "ToolAgentLoop (rows also name it in agent_name)",
        ),
        ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", "1", "reference pass"),
        ("reward.custom_reward_function.path", reward_path, "medresearcher's verl_reward.py"),
        ("reward.custom_reward_function.name", REWARD_FUNCTION, "r = α·task + β·expert − γ·eff"),
        *(
            (f"+reward.custom_reward_function.reward_kwargs.{key}", value, comment)
            for key, value, comment in reward_kwargs
        ),
        ("trainer.n_gpus_per_node", str(n_gpus_per_node), "GPUs on each node"),
        ("trainer.nnodes", str(nnodes), "nodes (Ray cluster)"),
        ("trainer.total_epochs", str(total_epochs), "passes over the prompts"),
        ("trainer.project_name", "medresearcher", "logger project"),
        ("trainer.experiment_name", experiment_name, "logger run name"),
        ("trainer.logger", "[console]", "add wandb / tensorboard here"),
        ("trainer.critic_warmup", "0", "no critic in GRPO"),
        ("trainer.save_freq", "50", "checkpoint every N steps"),
        ("trainer.test_freq", "10", "validate every N steps"),
    ]


def _script(overrides: Sequence[tuple[str, str, str]], model: str) -> str:
    lines = [
        "#!/usr/bin/env bash",
        "# GRPO on medresearcher's tools and composite reward with verl (paper §4).",
        "# Written by medresearcher; run where verl (with vllm or sglang) and medresearcher are",
        "# installed: bash run_grpo.sh [more key=value overrides]",
        f"# Policy: {model}",
        "set -euo pipefail",
        'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        "# verl loads the reward by file path: the installed medresearcher's verl_reward.py",
        f"REWARD_PY={REWARD_PATH_SHELL}",
        "args=(",
    ]
    texts = [
        f"{key}={value}" if value.startswith('"$') else f"{key}={shlex.quote(value)}"
        for key, value, _ in overrides
    ]
    width = max(len(text) for text in texts)
    for text, (_, _, comment) in zip(texts, overrides, strict=True):
        lines.append(f"  {text.ljust(width)}  # {comment}")
    lines += [")", 'exec python -m verl.trainer.main_ppo "${args[@]}" "$@"', ""]
    return "\n".join(lines)


def write_verl_grpo_bundle(
    out_dir: Path,
    *,
    data_dir: Path,
    model: str,
    settings: Settings,
    workspace: Path | None = None,
    tool_names: Sequence[str] | None = None,
    weights: RewardWeights = RewardWeights(),  # noqa: B008 - frozen
    expert_endpoint: str | None = None,
    config_file: Path | None = None,
    val_file: Path | None = None,
    n_gpus_per_node: int = 8,
    nnodes: int = 1,
    rollout_n: int = 8,
    rollout_engine: str = "vllm",
    train_batch_size: int = 64,
    max_prompt_length: int = 2048,
    max_response_length: int = 8192,
    max_assistant_turns: int = 16,
    learning_rate: float = 1e-6,
    total_epochs: int = 1,
    experiment_name: str = "grpo",
) -> list[Path]:
    """Write ``tools.yaml``, ``reward.yaml`` and ``run_grpo.sh`` into ``out_dir``.

    Parameters
    ----------
    out_dir:
        Created if missing; the three files are overwritten.
    data_dir:
        Holds ``verl_rl.parquet`` (``medresearcher traj export --format verl-rl``).
    model:
        The policy checkpoint (a path or hub id), usually the SFT output.
    settings:
        Give the tools' schemas (``[tools]``) and the workspace (``settings.workspace``).
    workspace:
        The workspace the tools search at training time (default ``settings.workspace``);
        written as an absolute path.
    tool_names:
        The tools offered (default: every tool).
    weights, expert_endpoint, config_file:
        α, β, γ; the judge endpoint for r_expert (off without one: β is written but unused)
        and the medresearcher.toml that defines endpoints and ``[tools]`` for the workers.
    val_file:
        Validation parquet (default: the training file; use a held-out split).
    n_gpus_per_node, nnodes, rollout_n, rollout_engine, train_batch_size, max_prompt_length,
    max_response_length, max_assistant_turns, learning_rate, total_epochs, experiment_name:
        The run's scale and hyper-parameters, written into the script.

    Returns
    -------
    list[Path]
        The files written: tools.yaml, reward.yaml, run_grpo.sh.

    Raises
    ------
    InputError
        When ``data_dir`` has no ``verl_rl.parquet``.
    """
    data_dir = Path(data_dir).resolve()
    train_file = data_dir / "verl_rl.parquet"
    if not train_file.is_file():
        raise InputError(
            f"{train_file} does not exist: write it with `medresearcher traj export "
            "--format verl-rl` (the RL prompts and their gold answers)"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ws = Path(workspace or settings.workspace).resolve()
    config = str(Path(config_file).resolve()) if config_file else None
    schemas = _tool_schemas(settings, ws, tool_names)

    tools_path = out_dir / "tools.yaml"
    tools_doc = verl_tool_config(schemas, workspace=ws, config_file=config)
    tools_path.write_text(
        "# verl tool config: medresearcher tools for actor_rollout_ref.rollout.multi_turn."
        "tool_config_path\n" + yaml.safe_dump(tools_doc, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )

    overrides = grpo_overrides(
        train_file=str(train_file),
        val_file=str(Path(val_file).resolve() if val_file else train_file),
        model=model,
        tool_config='"$HERE/tools.yaml"',
        reward_path='"$REWARD_PY"',
        weights=weights,
        expert_endpoint=expert_endpoint,
        config_file=config,
        workspace=str(ws),
        n_gpus_per_node=n_gpus_per_node,
        nnodes=nnodes,
        rollout_n=rollout_n,
        rollout_engine=rollout_engine,
        train_batch_size=train_batch_size,
        max_prompt_length=max_prompt_length,
        max_response_length=max_response_length,
        max_assistant_turns=max_assistant_turns,
        learning_rate=learning_rate,
        total_epochs=total_epochs,
        experiment_name=experiment_name,
    )
    reward_path = out_dir / "reward.yaml"
    prefix = "+reward.custom_reward_function.reward_kwargs."
    kwargs = {k[len(prefix) :]: _yaml_value(v) for k, v, _ in overrides if k.startswith(prefix)}
    reward_doc = {
        "reward": {
            "custom_reward_function": {
                "path": "<site-packages>/medresearcher/training/verl_reward.py",
                "name": REWARD_FUNCTION,
                "reward_kwargs": kwargs,
            }
        }
    }
    reward_path.write_text(
        "# verl reward section (run_grpo.sh passes the same values as overrides).\n"
        "# r = task_weight·r_task + expert_weight·r_expert − efficiency_weight·r_efficiency\n"
        + yaml.safe_dump(reward_doc, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )

    script_path = out_dir / "run_grpo.sh"
    script_path.write_text(_script(overrides, model), encoding="utf-8")
    script_path.chmod(0o755)
    return [tools_path, reward_path, script_path]


def _yaml_value(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text
