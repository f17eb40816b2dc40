"""GRPO with TRL's ``GRPOTrainer``: our tools, the composite reward, KL 0, a pass-rate curriculum.

Paper §4.2: r = α·r_task + β·r_expert − γ·r_efficiency (α = 1.0, β = 0.2, γ = 0.1), no KL term,
and a curriculum that raises difficulty with the pass rate. Mapped onto TRL 1.16:

- **KL 0**: ``GRPOConfig(beta=0.0)`` (no reference model is even loaded);
- **rewards**: the three terms of :mod:`medresearcher.training.rewards` as separate
  ``reward_funcs`` with ``reward_weights=[α, β, −γ]`` — TRL sums ``wᵢ·rᵢ`` per completion, which
  is the composite, and logs every term on its own; the expert term is left out without a judge
  endpoint (β then has nothing to weigh);
- **tools**: ``GRPOTrainer(tools=[...])`` takes Python callables whose signature and Google
  docstring give the JSON schema (``transformers.utils.get_json_schema``) and runs the calls the
  policy writes during generation (the trainer owns generation; ecosystem.md §2.3, pitfall 5).
  :func:`trl_tool_callables` turns each tool of :func:`medresearcher.tools.build_toolbox` into
  such a callable, from the tool's own JSON schema;
- **curriculum**: :class:`~medresearcher.training.curriculum.CurriculumSampler` replaces TRL's
  ``RepeatSampler`` (same group layout), fed by the task reward through
  :func:`~medresearcher.training.curriculum.recording_reward`.

For multi-node agentic RL use verl instead (``--engine verl``; ecosystem.md §2.1).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from medresearcher.errors import ConfigError
from medresearcher.training.curriculum import (
    CurriculumConfig,
    CurriculumSampler,
    PassRateTracker,
    recording_reward,
)
from medresearcher.training.sft import (
    LoraOptions,
    _device_options,
    _metric_log,
    load_model_and_tokenizer,
)

__all__ = [
    "GRPOOptions",
    "GRPOResult",
    "RewardSetup",
    "build_reward_setup",
    "parse_weights",
    "run_grpo",
    "trl_tool_callables",
]

log = logging.getLogger(__name__)

#: The paper's weights (§4.2): α task, β expert, γ efficiency.
PAPER_WEIGHTS = {"task": 1.0, "expert": 0.2, "efficiency": 0.1}


@dataclass
class GRPOOptions:
    """Everything a GRPO run is made of; the CLI fills it, the plan prints it."""

    data: Path
    model: str
    output: Path
    weights: dict[str, float] = field(default_factory=lambda: dict(PAPER_WEIGHTS))
    expert_endpoint: str | None = None
    curriculum: bool = True
    curriculum_config: CurriculumConfig = field(default_factory=CurriculumConfig)
    engine: Literal["trl", "verl"] = "trl"
    num_generations: int = 8
    max_steps: int = -1
    epochs: float = 1.0
    batch_size: int = 8
    """Completions per device per step (a multiple of the group size over all devices)."""
    grad_accum: int = 1
    learning_rate: float = 1e-6
    max_completion_length: int = 4096
    max_tool_turns: int = 16
    temperature: float = 1.0
    loss_type: str = "grpo"
    scale_rewards: str = "group"
    tools: tuple[str, ...] = ()
    """Tool names given to the policy (empty: none)."""
    lora: LoraOptions = field(default_factory=LoraOptions)
    seed: int = 0
    gradient_checkpointing: bool = True
    logging_steps: int = 1
    save_model: bool = True

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "kl_coefficient (beta)": 0.0,
            "num_generations (group size)": self.num_generations,
            "max_steps": self.max_steps,
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "per_device_batch_size (completions)": self.batch_size,
            "grad_accum": self.grad_accum,
            "max_completion_length": self.max_completion_length,
            "max_tool_turns": self.max_tool_turns,
            "temperature": self.temperature,
            "loss_type": self.loss_type,
            "scale_rewards": self.scale_rewards,
            "gradient_checkpointing": self.gradient_checkpointing,
            "seed": self.seed,
            "precision": "bf16 on GPUs that support it, else fp32",
        }


def parse_weights(text: str) -> dict[str, float]:
    """``"task=1,expert=0.2,efficiency=0.1"`` → a dict; unnamed terms keep the paper's value."""
    weights = dict(PAPER_WEIGHTS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in PAPER_WEIGHTS:
            raise ConfigError(f"--weights: {part!r}: use task=…, expert=…, efficiency=…")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ConfigError(f"--weights: {part!r}: {value!r} is not a number") from None
        if not math.isfinite(weights[name]) or weights[name] < 0:
            raise ConfigError(f"--weights: {name} must be a finite number ≥ 0")
    return weights


# ---------------------------------------------------------------- tools as TRL callables

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "object": dict,
}


def _python_type(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Any:
    """A type hint that ``get_json_schema`` turns back into (nearly) ``schema``."""
    if "$ref" in schema:
        return _python_type(defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}), defs)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        inner = _python_type(options[0], defs) if len(options) == 1 else Any
        return Optional[inner] if nullable else inner  # noqa: UP045 - a runtime type object
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    kind = schema.get("type")
    if kind == "array":
        return list[_python_type(schema.get("items") or {}, defs)]  # type: ignore[misc]
    return _JSON_TYPES.get(str(kind), Any)


def _constraints(schema: Mapping[str, Any]) -> str:
    """The limits a type hint cannot carry, kept in the description the model reads."""
    bounds = [
        f"{label} {schema[key]}"
        for key, label in (
            ("minItems", "at least"),
            ("maxItems", "at most"),
            ("minimum", "min"),
            ("maximum", "max"),
        )
        if key in schema
    ]
    if "default" in schema and schema["default"] not in (None, "", []):
        bounds.append(f"default {json.dumps(schema['default'])}")
    return f" ({', '.join(bounds)})" if bounds else ""


def trl_tool_callables(toolbox: Any) -> list[Callable[..., Any]]:
    """Each tool of ``toolbox`` as an async function TRL's ``GRPOTrainer(tools=...)`` accepts.

    The function is named after the tool, has one keyword parameter per schema property (with
    a type hint and a default for optional ones), a Google-style docstring made from the
    descriptions, and returns the observation text (errors included, as the agent sees them:
    a failed call costs a turn, never the rollout). Constraints that type hints cannot express
    (``maxItems``, ``maximum``) are appended to the argument description; the toolbox still
    validates every call against the full schema.
    """
    callables = []
    for schema in toolbox.schemas():
        function = schema["function"]
        callables.append(_tool_callable(toolbox, function))
    return callables


def _tool_callable(toolbox: Any, function: Mapping[str, Any]) -> Callable[..., Any]:
    name = str(function["name"])
    parameters = function.get("parameters") or {}
    properties: Mapping[str, Any] = parameters.get("properties") or {}
    required = set(parameters.get("required") or [])
    defs = parameters.get("$defs") or {}
    params, annotations, arg_lines = [], {}, []
    for arg, spec in properties.items():
        hint = _python_type(spec, defs)
        annotations[arg] = hint
        default = inspect.Parameter.empty if arg in required else spec.get("default")
        params.append(
            inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)
        )
        text = " ".join(str(spec.get("description") or spec.get("title") or arg).split())
        arg_lines.append(f"    {arg}: {text}{_constraints(spec)}")
    params.sort(key=lambda p: p.default is not inspect.Parameter.empty)
    annotations["return"] = str

    async def tool(**arguments: Any) -> str:
        observation = await toolbox.call(name, arguments)
        return str(observation.text)

    description = " ".join(str(function.get("description") or name).split())
    doc = description + ("\n\nArgs:\n" + "\n".join(arg_lines) if arg_lines else "")
    tool.__name__ = tool.__qualname__ = name
    tool.__doc__ = doc + "\n\nReturns:\n    The tool's observation text."
    tool.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    tool.__annotations__ = annotations
    return tool


# ---------------------------------------------------------------- rewards


@dataclass
class RewardSetup:
    """The reward functions handed to TRL, their weights, and the terms' names."""

    funcs: list[Callable[..., list[float | None]]]
    weights: list[float]
    names: list[str]


def build_reward_setup(
    weights: Mapping[str, float],
    *,
    expert: Callable[..., list[float | None]] | None = None,
    tracker: PassRateTracker | None = None,
) -> RewardSetup:
    """The paper's reward terms as TRL ``reward_funcs`` + ``reward_weights`` (α, β, −γ).

    The efficiency term is a penalty (≥ 0), so its TRL weight is −γ; the expert term is
    included only when an ``expert`` reward is given; the task term records into ``tracker``
    for the curriculum.
    """
    from medresearcher.training import rewards

    task = rewards.task_reward
    if tracker is not None:
        task = recording_reward(task, tracker)
    funcs, values, names = [task], [float(weights["task"])], ["task"]
    if expert is not None:
        funcs.append(expert)
        values.append(float(weights["expert"]))
        names.append("expert")
    funcs.append(rewards.efficiency_penalty)
    values.append(-float(weights["efficiency"]))
    names.append("efficiency")
    return RewardSetup(funcs, values, names)


# ---------------------------------------------------------------- training


@dataclass
class GRPOResult:
    output: Path
    steps: int
    losses: list[float]
    rewards: list[float]
    curriculum: dict[str, dict[str, float]]

    @property
    def finite(self) -> bool:
        return bool(self.losses) and all(math.isfinite(x) for x in self.losses)


def grpo_config(options: GRPOOptions, reward_weights: Sequence[float]) -> Any:
    """The ``trl.GRPOConfig`` for ``options`` (``beta=0``: no KL, paper §4.2)."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(options.output),
        beta=0.0,
        num_generations=options.num_generations,
        max_completion_length=options.max_completion_length,
        max_tool_calling_iterations=options.max_tool_turns,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        learning_rate=options.learning_rate,
        max_steps=options.max_steps,
        num_train_epochs=options.epochs,
        temperature=options.temperature,
        loss_type=options.loss_type,
        scale_rewards=options.scale_rewards,
        reward_weights=list(reward_weights),
        logging_steps=options.logging_steps,
        save_strategy="steps" if options.save_model else "no",
        seed=options.seed,
        **_device_options(options.gradient_checkpointing),
        report_to="none",
    )


def _trainer_class(tracker: PassRateTracker | None, prompt_ids: Sequence[str]) -> type:
    """``GRPOTrainer``, or a subclass whose train sampler is the curriculum's."""
    from trl import GRPOTrainer

    if tracker is None:
        return GRPOTrainer

    class CurriculumGRPOTrainer(GRPOTrainer):
        def _get_train_sampler(self, dataset: Any = None) -> Any:
            return CurriculumSampler(
                prompt_ids,
                tracker,
                mini_repeat_count=self.num_generations,
                batch_size=self.args.generation_batch_size // self.num_generations,
                repeat_count=self.num_iterations * self.args.steps_per_generation,
                seed=self.args.seed,
            )

    return CurriculumGRPOTrainer


def run_grpo(
    options: GRPOOptions,
    *,
    rows: list[dict[str, Any]],
    reward_funcs: Sequence[Callable[..., Any]] | None = None,
    reward_weights: Sequence[float] | None = None,
    expert: Callable[..., list[float | None]] | None = None,
    tools: Sequence[Callable[..., Any]] = (),
) -> GRPOResult:
    """One GRPO run on TRL.

    Parameters
    ----------
    rows:
        Prompt rows (:func:`medresearcher.training.data.load_grpo_prompts`).
    reward_funcs, reward_weights:
        Override the paper's terms (tests, custom rewards); by default
        :func:`build_reward_setup` with ``options.weights``.
    expert:
        The expert reward (``rewards.make_expert_reward(gateway, endpoint)``), or ``None``.
    tools:
        TRL tool callables (:func:`trl_tool_callables`).
    """
    from datasets import Dataset

    tracker = PassRateTracker(options.curriculum_config) if options.curriculum else None
    if reward_funcs is None:
        setup = build_reward_setup(options.weights, expert=expert, tracker=tracker)
        funcs, weights = setup.funcs, setup.weights
    else:
        funcs = list(reward_funcs)
        if tracker is not None and funcs:
            funcs[0] = recording_reward(funcs[0], tracker)
        weights = list(reward_weights or [1.0] * len(funcs))
    model, tokenizer = load_model_and_tokenizer(options.model)
    tokenizer.padding_side = "left"
    losses: list[float] = []
    rewards_log: list[float] = []
    trainer_cls = _trainer_class(tracker, [row["qa_id"] for row in rows])
    trainer = trainer_cls(
        model=model,
        reward_funcs=funcs,
        args=grpo_config(options, weights),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=options.lora.peft_config(),
        tools=list(tools) or None,
        callbacks=[_metric_log(losses, "loss"), _metric_log(rewards_log, "reward")],
    )
    trainer.train()
    out = Path(options.output)
    out.mkdir(parents=True, exist_ok=True)
    if options.save_model:
        trainer.save_model(str(out))
        tokenizer.save_pretrained(str(out))
    result = GRPOResult(
        output=out,
        steps=int(trainer.state.global_step),
        losses=losses,
        rewards=rewards_log,
        curriculum=tracker.snapshot() if tracker else {},
    )
    record = {
        "model": options.model,
        "data": str(options.data),
        "steps": result.steps,
        "losses": losses,
        "rewards": rewards_log,
        "reward_weights": list(weights),
        "reward_funcs": [getattr(f, "__name__", str(f)) for f in funcs],
        "curriculum": result.curriculum,
    }
    (out / "grpo_run.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return result
