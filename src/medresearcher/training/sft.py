"""Supervised fine-tuning on the synthesised trajectories with TRL's ``SFTTrainer`` (paper §4.1).

We do not write a trainer: this module loads the ``openai.jsonl`` export, renders and masks it
with the model's own chat template (:mod:`medresearcher.training.data`: loss on assistant tokens
only; system, question and tool results are context), optionally wraps the model in LoRA
(peft), and hands a pre-tokenised dataset to ``trl.SFTTrainer``. The same options drive the
dry-run plan (:mod:`medresearcher.training.plan`) and the multi-GPU configs
(:mod:`medresearcher.training.engine_configs`), so what is printed is what runs.

The paper's data recipes — tool failure simulation, intermediate thought supervision,
multi-task mixing — are applied upstream (``traj augment``, the thought-before-call filter,
``traj mix``); here a thought is kept by inlining ``reasoning_content`` as ``<think>`` when the
template has no field for it (Qwen2.5).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medresearcher.errors import ConfigError

__all__ = [
    "DEFAULT_LORA_TARGETS",
    "LoraOptions",
    "SFTOptions",
    "SFTResult",
    "load_model_and_tokenizer",
    "run_sft",
]

log = logging.getLogger(__name__)

#: Every linear layer of a Qwen2 / Llama block: attention and MLP projections.
DEFAULT_LORA_TARGETS = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


@dataclass
class LoraOptions:
    """LoRA adapter settings (peft); ``enabled=False`` trains every weight."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = DEFAULT_LORA_TARGETS

    def peft_config(self) -> Any:
        """The ``peft.LoraConfig``, or ``None`` when LoRA is off."""
        if not self.enabled:
            return None
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.targets),
            task_type="CAUSAL_LM",
        )


@dataclass
class SFTOptions:
    """Everything an SFT run is made of; the CLI fills it, the plan prints it."""

    data: Path
    model: str
    output: Path
    lora: LoraOptions = field(default_factory=LoraOptions)
    epochs: float = 3.0
    learning_rate: float | None = None
    """``None``: 1e-5 for full fine-tuning, 1e-4 with LoRA."""
    max_steps: int = -1
    batch_size: int = 1
    grad_accum: int = 8
    max_length: int = 8192
    warmup: float = 0.03
    """Warm-up: a fraction of the steps when < 1, else a step count."""
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    seed: int = 0
    gradient_checkpointing: bool = True
    logging_steps: int = 1
    save_steps: int = 500
    save_model: bool = True
    inline_think: bool | None = None
    """``None``: inline ``reasoning_content`` when the template has no place for it."""

    @property
    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-4 if self.lora.enabled else 1e-5

    def hyperparameters(self) -> dict[str, Any]:
        """The trainer's hyper-parameters, as the plan and the run record show them."""
        return {
            "epochs": self.epochs,
            "max_steps": self.max_steps,
            "learning_rate": self.resolved_learning_rate,
            "scheduler": self.scheduler,
            "warmup": self.warmup,
            "weight_decay": self.weight_decay,
            "per_device_batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "max_length": self.max_length,
            "gradient_checkpointing": self.gradient_checkpointing,
            "seed": self.seed,
            "precision": "bf16 on GPUs that support it, else fp32",
            "packing": False,
        }


@dataclass
class SFTResult:
    """What a run did: steps, the logged losses, the dataset stats, where the model went."""

    output: Path
    steps: int
    losses: list[float]
    train_loss: float
    data: dict[str, Any]

    @property
    def finite(self) -> bool:
        return bool(self.losses) and all(math.isfinite(x) for x in self.losses)


def _use_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _device_options(enabled_checkpointing: bool) -> dict[str, Any]:
    """Trainer arguments that depend on the installed transformers and the machine:
    transformers ≥ 5.2x renamed ``gradient_checkpointing`` to ``activation_checkpointing``
    (the old name warns), and pinned memory only helps when there is an accelerator."""
    import torch
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    name = (
        "activation_checkpointing"
        if "activation_checkpointing" in fields
        else "gradient_checkpointing"
    )
    return {
        name: enabled_checkpointing,
        "dataloader_pin_memory": torch.cuda.is_available(),
        "bf16": _use_bf16(),
    }


def load_model_and_tokenizer(model: str) -> tuple[Any, Any]:
    """A causal LM and its tokenizer from a folder (or hub id); bf16 on capable GPUs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    if not tokenizer.chat_template:
        raise ConfigError(f"{model}: the tokenizer has no chat template; SFT renders with it")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if _use_bf16() else torch.float32
    return AutoModelForCausalLM.from_pretrained(model, dtype=dtype), tokenizer


def _metric_log(sink: list[float], metric: str) -> Any:
    """A ``TrainerCallback`` (built lazily: transformers loads only to train) that keeps
    every logged value of ``metric`` (the training loss, GRPO's mean reward) in ``sink``."""
    from transformers import TrainerCallback

    class MetricLog(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any):
            if logs and metric in logs:
                sink.append(float(logs[metric]))

    return MetricLog()


def sft_config(options: SFTOptions) -> Any:
    """The ``trl.SFTConfig`` for ``options`` (labels are pre-built: no TRL masking)."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(options.output),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        learning_rate=options.resolved_learning_rate,
        lr_scheduler_type=options.scheduler,
        warmup_steps=options.warmup,
        weight_decay=options.weight_decay,
        max_length=options.max_length,
        logging_steps=options.logging_steps,
        save_steps=options.save_steps,
        save_strategy="steps" if options.save_model else "no",
        seed=options.seed,
        **_device_options(options.gradient_checkpointing),
        report_to="none",
        assistant_only_loss=False,  # our labels already hold -100 outside assistant turns
        packing=False,
    )


def run_sft(options: SFTOptions) -> SFTResult:
    """Train: load, tokenise with assistant-only labels, run ``SFTTrainer``, save.

    Writes the model (or adapter) and tokenizer into ``options.output`` when
    ``options.save_model``, and ``sft_run.json`` (options, data stats, losses) always.
    """
    from trl import SFTTrainer

    from medresearcher.training.data import build_sft_dataset, read_openai_export

    rows = read_openai_export(options.data)
    model, tokenizer = load_model_and_tokenizer(options.model)
    dataset, stats = build_sft_dataset(rows, tokenizer, max_length=options.max_length)
    losses: list[float] = []
    trainer = SFTTrainer(
        model=model,
        args=sft_config(options),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=options.lora.peft_config(),
        callbacks=[_metric_log(losses, "loss")],
    )
    outcome = trainer.train()
    out = Path(options.output)
    out.mkdir(parents=True, exist_ok=True)
    if options.save_model:
        trainer.save_model(str(out))
        tokenizer.save_pretrained(str(out))
    data = {
        "rows_read": stats.rows_read,
        "rows_used": stats.rows_used,
        "tokens": stats.tokens,
        "trained_tokens": stats.trained_tokens,
        "truncated": stats.truncated,
        "skipped": dict(stats.skipped),
    }
    result = SFTResult(
        output=out,
        steps=int(trainer.state.global_step),
        losses=losses,
        train_loss=float(outcome.training_loss),
        data=data,
    )
    record = {
        "options": _jsonable(asdict(options)),
        "data": data,
        "steps": result.steps,
        "losses": losses,
        "train_loss": result.train_loss,
    }
    (out / "sft_run.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (Path, os.PathLike)):
        return str(value)
    return value
