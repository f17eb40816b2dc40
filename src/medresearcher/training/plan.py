"""The resolved training plan: every choice a run makes, printed by ``--dry-run``.

A plan is built from the same options object the trainer receives (:class:`SFTOptions`,
:class:`GRPOOptions`), so the printout cannot drift from what runs. It reads only files (the
export, the model folder's configs) — no torch, no tokenizer — so a dry run is instant.
Sections: data, model, chat template, masking (SFT), LoRA, hyper-parameters, rewards and KL
(GRPO), curriculum (GRPO), tools (GRPO), engine and outputs.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medresearcher.training.curriculum import CurriculumConfig
from medresearcher.training.data import MASKING_RULE, read_openai_export
from medresearcher.training.grpo import GRPOOptions
from medresearcher.training.sft import LoraOptions, SFTOptions

__all__ = ["TrainingPlan", "describe_template", "grpo_plan", "print_plan", "sft_plan"]


@dataclass
class TrainingPlan:
    """Ordered sections of (name → value); ``as_dict`` is the ``--json`` form."""

    command: str
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, **self.sections}


def describe_template(model: str) -> dict[str, Any]:
    """Where the model's chat template comes from and what it can do, from files only."""
    from medresearcher.synthesis.chat_template import qwen25_template_source

    folder = Path(model)
    text: str | None = None
    source = f"the tokenizer of {model} (hub id; resolved when training starts)"
    if (folder / "chat_template.jinja").is_file():
        text = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        source = str(folder / "chat_template.jinja")
    elif (folder / "tokenizer_config.json").is_file():
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        if isinstance(config.get("chat_template"), str):
            text = config["chat_template"]
            source = f"{folder / 'tokenizer_config.json'} (chat_template)"
        else:
            source = f"{folder}: no chat template found (training will stop)"
    info: dict[str, Any] = {"source": source}
    if text is not None:
        same = text.strip() == qwen25_template_source().strip()
        info["family"] = "Qwen2.5 (identical to the bundled template)" if same else "model's own"
        info["tools rendered"] = "yes" if "tools" in text else "no"
        info["generation markers"] = "yes" if "{% generation %}" in text else "no (not needed)"
        info["reasoning_content"] = (
            "rendered by the template"
            if "reasoning_content" in text
            else "inlined as <think>…</think> before the content (template has no field)"
        )
    return info


def _model_info(model: str) -> dict[str, Any]:
    info: dict[str, Any] = {"path": model}
    config = Path(model) / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        info["architecture"] = ", ".join(data.get("architectures") or [data.get("model_type", "?")])
        for key in ("hidden_size", "num_hidden_layers", "vocab_size"):
            if key in data:
                info[key] = data[key]
    elif not Path(model).exists():
        info["note"] = "not a local folder: loaded from the hub when training starts"
    return info


def _lora(lora: LoraOptions) -> dict[str, Any]:
    if not lora.enabled:
        return {"enabled": "no (full fine-tuning: every weight trains)"}
    return {
        "enabled": "yes (peft LoRA adapters; base weights frozen)",
        "r": lora.r,
        "alpha": lora.alpha,
        "dropout": lora.dropout,
        "targets": ", ".join(lora.targets),
    }


def sft_plan(options: SFTOptions, *, configs: dict[str, Path] | None = None) -> TrainingPlan:
    """The SFT plan: reads the export (row and turn counts) and the model's config files."""
    rows = read_openai_export(options.data)
    roles: Counter[str] = Counter(m.get("role", "?") for r in rows for m in r.messages)
    calls = sum(len(m.get("tool_calls") or []) for r in rows for m in r.messages)
    plan = TrainingPlan("train sft")
    plan.sections["data"] = {
        "path": str(options.data),
        "format": "openai.jsonl (messages + tools; arguments JSON text, parsed for the template)",
        "rows": len(rows),
        "rows with tool schemas": sum(1 for r in rows if r.tools),
        "messages by role": ", ".join(f"{k} {v}" for k, v in sorted(roles.items())),
        "tool calls": calls,
    }
    plan.sections["model"] = _model_info(options.model)
    plan.sections["chat template"] = describe_template(options.model)
    plan.sections["masking"] = {
        "rule": MASKING_RULE,
        "how": "labels built by medresearcher from the template's own renderings, checked "
        "against apply_chat_template(tokenize=True); TRL's assistant_only_loss is off",
        "truncation": f"right, to max_length {options.max_length}; rows left without an "
        "assistant token are skipped",
    }
    plan.sections["lora"] = _lora(options.lora)
    plan.sections["hyper-parameters"] = options.hyperparameters()
    plan.sections["engine"] = {
        "trainer": "TRL SFTTrainer (pre-tokenised input_ids/labels)",
        "output": str(options.output),
        "configs": ", ".join(sorted(configs)) if configs else "not written (--write-configs)",
    }
    return plan


def grpo_plan(
    options: GRPOOptions,
    *,
    rows: list[dict[str, Any]],
    data_format: str,
    bundle: dict[str, Any] | None = None,
) -> TrainingPlan:
    """The GRPO plan for prompt ``rows`` (from ``load_grpo_prompts``)."""
    plan = TrainingPlan("train grpo")
    plan.sections["data"] = {
        "path": str(options.data),
        "format": data_format,
        "prompts": len(rows),
        "columns passed to rewards": ", ".join(k for k in rows[0] if k != "prompt")
        if rows
        else "-",
    }
    plan.sections["model"] = _model_info(options.model)
    plan.sections["chat template"] = describe_template(options.model)
    weights = options.weights
    expert = (
        f"on: judge endpoint {options.expert_endpoint!r}"
        if options.expert_endpoint
        else "off (no --expert-endpoint): β has no term to weigh"
    )
    formula = f"r = {weights['task']:g}·r_task"
    if options.expert_endpoint:
        formula += f" + {weights['expert']:g}·r_expert"
    formula += f" − {weights['efficiency']:g}·r_efficiency"
    plan.sections["rewards"] = {
        "composite (paper §4.2)": formula,
        "task (α)": f"{weights['task']:g}: the shared grader, 1 correct / 0 not",
        "expert (β)": f"{weights['expert']:g}: {expert}",
        "efficiency (γ)": f"{weights['efficiency']:g}: rule-based penalty (repeats, calls "
        "after the answer was seen, tools off the question type)",
        "TRL form": "reward_funcs = [task"
        + (", expert" if options.expert_endpoint else "")
        + ", efficiency_penalty] with reward_weights [α"
        + (", β" if options.expert_endpoint else "")
        + ", −γ]",
        "KL coefficient": "0 (beta = 0.0; no reference model, paper §4.2)",
    }
    plan.sections["curriculum"] = _curriculum(options.curriculum, options.curriculum_config)
    plan.sections["tools"] = {
        "given to the policy": ", ".join(options.tools) or "none",
        "how": "TRL GRPOTrainer(tools=…): async callables built from our tool schemas; the "
        "trainer runs the calls during generation"
        if options.engine == "trl"
        else "verl ToolAgentLoop with the tool YAML of the bundle",
    }
    plan.sections["lora"] = _lora(options.lora)
    plan.sections["hyper-parameters"] = options.hyperparameters()
    engine: dict[str, Any] = {"engine": options.engine, "output": str(options.output)}
    if options.engine == "trl":
        engine["trainer"] = "TRL GRPOTrainer" + (
            " with the curriculum sampler" if options.curriculum else ""
        )
    if bundle:
        engine.update(bundle)
    plan.sections["engine"] = engine
    return plan


def _curriculum(enabled: bool, config: CurriculumConfig) -> dict[str, Any]:
    if not enabled:
        return {"enabled": "no (TRL's shuffled RepeatSampler)"}
    return {
        "enabled": "yes: prompts solved in recent rollouts are sampled less",
        "weight": "w = floor + (1 − floor)·(1 − p̂)^sharpness, p̂ = smoothed recent pass rate",
        "window (rollouts kept per prompt)": config.window,
        "floor": config.floor,
        "prior pass rate / strength": f"{config.prior} / {config.prior_strength}",
        "sharpness": config.sharpness,
        "solved when task reward ≥": config.solved_threshold,
    }


def print_plan(plan: TrainingPlan, console: Any) -> None:
    """The plan as one rich table per section."""
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]Plan: medresearcher {plan.command}[/] (dry run: nothing trains)")
    for title, rows in plan.sections.items():
        table = Table(title=title, title_justify="left", show_header=False, expand=False)
        table.add_column("setting", style="bold")
        table.add_column("value")
        for key, value in rows.items():
            table.add_row(escape(str(key)), escape(str(value)))
        console.print(table)
