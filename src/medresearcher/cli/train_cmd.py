"""``medresearcher train``: SFT and GRPO on existing engines (TRL, verl).

Thin: parse options into :class:`~medresearcher.training.sft.SFTOptions` /
:class:`~medresearcher.training.grpo.GRPOOptions`, print the plan on ``--dry-run``, else call
the library. torch, transformers and TRL are imported inside the commands only, so that
``medresearcher --help`` stays fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.markup import escape

from medresearcher.cli.state import console, state_of
from medresearcher.errors import ConfigError, InputError

__all__ = ["app"]

app = typer.Typer(
    help="Train on the synthesised trajectories with TRL or verl (paper §4).",
    no_args_is_help=True,
)

_LORA_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def _lora(enabled: bool, r: int, alpha: int, dropout: float, targets: str):
    from medresearcher.training.sft import LoraOptions

    names = tuple(t.strip() for t in targets.split(",") if t.strip())
    if enabled and not names:
        raise typer.BadParameter("name at least one module", param_hint="--lora-targets")
    return LoraOptions(enabled=enabled, r=r, alpha=alpha, dropout=dropout, targets=names)


def _emit_plan(plan, as_json: bool) -> None:
    from medresearcher.training.plan import print_plan

    if as_json:
        console.print_json(json.dumps(plan.as_dict(), default=str))
    else:
        print_plan(plan, console)


@app.command("sft")
def sft(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", dir_okay=False, help="openai.jsonl from traj export."),
    model: str = typer.Option(..., "--model", help="Model folder (or hub id) to fine-tune."),
    output: Path = typer.Option(..., "--output", file_okay=False, help="Output folder."),
    lora: bool = typer.Option(False, "--lora/--no-lora", help="LoRA adapters (peft)."),
    lora_r: int = typer.Option(16, "--lora-r", min=1, help="LoRA rank."),
    lora_alpha: int = typer.Option(32, "--lora-alpha", min=1, help="LoRA alpha."),
    lora_dropout: float = typer.Option(0.05, "--lora-dropout", min=0.0, max=1.0),
    lora_targets: str = typer.Option(_LORA_TARGETS, "--lora-targets", help="Modules, a,b,c."),
    epochs: float = typer.Option(3.0, "--epochs", min=0.0),
    lr: float | None = typer.Option(None, "--lr", help="Default 1e-5 (full) / 1e-4 (LoRA)."),
    max_steps: int = typer.Option(-1, "--max-steps", help="Stop after N steps (-1: epochs)."),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Per device."),
    grad_accum: int = typer.Option(8, "--grad-accum", min=1),
    max_length: int = typer.Option(8192, "--max-length", min=16, help="Tokens per row."),
    seed: int = typer.Option(0, "--seed"),
    gradient_checkpointing: bool = typer.Option(
        True, "--gradient-checkpointing/--no-gradient-checkpointing"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved plan; no training."),
    as_json: bool = typer.Option(False, "--json", help="With --dry-run: the plan as JSON."),
    write_configs: bool = typer.Option(
        False,
        "--write-configs",
        help="Also write accelerate/DeepSpeed, verl and LLaMA-Factory configs to OUTPUT/configs.",
    ),
    gpus: int = typer.Option(8, "--gpus", min=1, help="GPUs per node in the written configs."),
) -> None:
    """Supervised fine-tuning with TRL's SFTTrainer, loss on assistant tokens only (§4.1)."""
    from medresearcher.training.plan import sft_plan
    from medresearcher.training.sft import SFTOptions

    options = SFTOptions(
        data=data,
        model=model,
        output=output,
        lora=_lora(lora, lora_r, lora_alpha, lora_dropout, lora_targets),
        epochs=epochs,
        learning_rate=lr,
        max_steps=max_steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_length=max_length,
        seed=seed,
        gradient_checkpointing=gradient_checkpointing,
    )
    configs = None
    if write_configs:
        from medresearcher.training.engine_configs import write_engine_configs

        configs = write_engine_configs(options, num_gpus=gpus)
    plan = sft_plan(options, configs=configs)
    if dry_run:
        _emit_plan(plan, as_json)
        return
    _require_train_extra()
    from medresearcher.training.sft import run_sft

    console.print(f"SFT: {plan.sections['data']['rows']} rows, model {escape(model)}")
    result = run_sft(options)
    losses = ", ".join(f"{x:.4g}" for x in result.losses[-5:]) or "-"
    console.print(
        f"done: {result.steps} steps, last losses {losses}; "
        f"{result.data['rows_used']} rows, {result.data['trained_tokens']} trained tokens "
        f"→ {escape(str(result.output))}",
        highlight=False,
    )
    if configs:
        console.print(f"configs: {escape(str(output / 'configs'))} (see LAUNCH.md)")


@app.command("grpo")
def grpo(
    ctx: typer.Context,
    data: Path = typer.Option(
        ..., "--data", dir_okay=False, help="qa.jsonl, verl_rl.parquet or a prompts JSONL."
    ),
    model: str = typer.Option(..., "--model", help="Policy folder (usually the SFT output)."),
    output: Path = typer.Option(..., "--output", file_okay=False, help="Output folder."),
    num_generations: int = typer.Option(8, "--num-generations", min=2, help="Group size G."),
    max_steps: int = typer.Option(-1, "--max-steps"),
    epochs: float = typer.Option(1.0, "--epochs", min=0.0),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Completions per device."),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    lr: float = typer.Option(1e-6, "--lr"),
    max_completion_length: int = typer.Option(4096, "--max-completion-length", min=8),
    max_tool_turns: int = typer.Option(16, "--max-tool-turns", min=0),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0),
    weights: str = typer.Option(
        "task=1,expert=0.2,efficiency=0.1", "--weights", help="α, β, γ of paper §4.2."
    ),
    expert_endpoint: str | None = typer.Option(
        None, "--expert-endpoint", help="Judge endpoint for r_expert (off without one)."
    ),
    curriculum: bool = typer.Option(True, "--curriculum/--no-curriculum"),
    tools: str = typer.Option(
        "web_search,document_read,medical_retriever,clinical_reasoning",
        "--tools",
        help="Tools the policy may call ('' for none).",
    ),
    engine: str = typer.Option("trl", "--engine", help="trl (train here) or verl (bundle)."),
    lora: bool = typer.Option(False, "--lora/--no-lora"),
    lora_r: int = typer.Option(16, "--lora-r", min=1),
    lora_alpha: int = typer.Option(32, "--lora-alpha", min=1),
    gpus: int = typer.Option(8, "--gpus", min=1, help="GPUs per node (verl bundle)."),
    seed: int = typer.Option(0, "--seed"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved plan; no training."),
    as_json: bool = typer.Option(False, "--json", help="With --dry-run: the plan as JSON."),
) -> None:
    """GRPO with the composite reward, KL 0 and the pass-rate curriculum (§4.2)."""
    from medresearcher.training.data import load_grpo_prompts
    from medresearcher.training.grpo import GRPOOptions, parse_weights
    from medresearcher.training.plan import grpo_plan

    if engine not in ("trl", "verl"):
        raise typer.BadParameter("use trl or verl", param_hint="--engine")
    tool_names = tuple(t.strip() for t in tools.split(",") if t.strip())
    options = GRPOOptions(
        data=data,
        model=model,
        output=output,
        weights=parse_weights(weights),
        expert_endpoint=expert_endpoint,
        curriculum=curriculum,
        engine=engine,  # type: ignore[arg-type]
        num_generations=num_generations,
        max_steps=max_steps,
        epochs=epochs,
        batch_size=batch_size,
        grad_accum=grad_accum,
        learning_rate=lr,
        max_completion_length=max_completion_length,
        max_tool_turns=max_tool_turns,
        temperature=temperature,
        tools=tool_names,
        lora=_lora(lora, lora_r, lora_alpha, 0.05, _LORA_TARGETS),
        seed=seed,
    )
    if batch_size % num_generations and engine == "trl":
        raise InputError(
            f"--batch-size {batch_size} must be a multiple of --num-generations {num_generations}"
        )
    state = state_of(ctx)
    settings = state.settings
    if expert_endpoint:
        settings.endpoint(expert_endpoint)  # a ConfigError naming the known endpoints
    rows, data_format = load_grpo_prompts(data, tool_names=tool_names)
    if engine == "verl":
        _verl(ctx, options, rows, data_format, gpus, dry_run, as_json)
        return
    plan = grpo_plan(options, rows=rows, data_format=data_format)
    if dry_run:
        _emit_plan(plan, as_json)
        return
    _require_train_extra()
    from medresearcher.training.grpo import run_grpo, trl_tool_callables

    expert = None
    gateway = None
    if expert_endpoint:
        from medresearcher.llm import LLMGateway
        from medresearcher.training.rewards import make_expert_reward

        gateway = LLMGateway(settings)
        expert = make_expert_reward(gateway, expert_endpoint)
    callables = []
    if tool_names:
        from medresearcher.tools import build_toolbox

        toolbox = build_toolbox(settings, state.ws, gateway=gateway, names=tool_names)
        callables = trl_tool_callables(toolbox)
    console.print(f"GRPO: {len(rows)} prompts ({data_format}), model {escape(model)}")
    result = run_grpo(options, rows=rows, expert=expert, tools=callables)
    console.print(
        f"done: {result.steps} steps, losses {', '.join(f'{x:.4g}' for x in result.losses[-5:])}"
        f", mean rewards {', '.join(f'{x:.3g}' for x in result.rewards[-5:])} "
        f"→ {escape(str(result.output))}",
        highlight=False,
    )


def _verl(ctx, options, rows, data_format: str, gpus: int, dry_run: bool, as_json: bool) -> None:
    """``--engine verl``: write T1's bundle (tools YAML, reward, run script); print the launch."""
    from medresearcher.training.plan import grpo_plan
    from medresearcher.training.rewards import RewardWeights
    from medresearcher.training.verl_bundle import write_verl_grpo_bundle

    if Path(options.data).suffix != ".parquet":
        raise InputError(
            f"{options.data}: verl reads verl_rl.parquet "
            "(medresearcher traj export RUN --format verl-rl)"
        )
    bundle_dir = Path(options.output) / "verl"
    info = {"bundle": str(bundle_dir), "launch": f"bash {bundle_dir / 'run_grpo.sh'}"}
    if dry_run:
        _emit_plan(grpo_plan(options, rows=rows, data_format=data_format, bundle=info), as_json)
        return
    state = state_of(ctx)
    paths = write_verl_grpo_bundle(
        bundle_dir,
        data_dir=Path(options.data).resolve().parent,
        model=options.model,
        settings=state.settings,
        workspace=Path(state.settings.workspace).resolve(),
        tool_names=list(options.tools) or None,
        weights=RewardWeights(**options.weights),
        expert_endpoint=options.expert_endpoint,
        config_file=state.config_path,
        n_gpus_per_node=gpus,
        rollout_n=options.num_generations,
        max_response_length=options.max_completion_length,
        max_assistant_turns=options.max_tool_turns,
        learning_rate=options.learning_rate,
        total_epochs=max(1, round(options.epochs)),
    )
    for path in paths:
        console.print(f"wrote {escape(str(path))}", highlight=False)
    script = next((p for p in paths if p.name.endswith(".sh")), bundle_dir / "run_grpo.sh")
    console.print(
        "launch on the GPU node (verl installed, medresearcher importable): "
        f"bash {escape(str(script))}",
        highlight=False,
    )


@app.command("tiny-model")
def tiny_model(
    output: Path = typer.Argument(..., file_okay=False, help="Folder for the model."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a tiny random-weight Qwen2 model with the Qwen2.5 tokenizer (smoke tests only)."""
    _require_train_extra()
    from medresearcher.training.tiny_model import build_tiny_model

    path = build_tiny_model(output, seed=seed)
    console.print(f"tiny model (random weights, for smoke tests) → {escape(str(path))}")


def _require_train_extra() -> None:
    missing = []
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"training needs {', '.join(missing)}: pip install 'medresearcher[train]'"
        )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
