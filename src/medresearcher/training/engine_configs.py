"""Configs for training at scale on other engines, written from the same SFT options.

``medresearcher train sft --write-configs`` (or :func:`write_engine_configs`) writes, into
``<output>/configs``:

================================  ==============================================================
file                              for
================================  ==============================================================
``accelerate_ddp.yaml``           TRL on N GPUs, plain data parallel (models that fit one GPU)
``accelerate_zero2.yaml``         TRL + DeepSpeed ZeRO-2 (optimizer and gradients sharded)
``accelerate_zero3.yaml``         TRL + DeepSpeed ZeRO-3 (weights sharded too: 32B and up)
``ds_zero2.json ds_zero3.json``   the DeepSpeed configs (``"auto"`` values filled by HF)
``verl_sft.sh``                   verl ``fsdp_sft_trainer``, multi-turn (ecosystem.md §2.2)
``verl_sft_dataset.py``           the dataset class verl needs for our parquet (see below)
``llamafactory_sft.yaml``         LLaMA-Factory on the ShareGPT export + ``dataset_info.json``
``LAUNCH.md``                     the commands, ready to paste
================================  ==============================================================

verl's stock ``MultiTurnSFTDataset`` hands ``messages``/``tools`` to the chat template as they
are; our ``verl_sft.parquet`` keeps tool-call arguments and the tool list as JSON text (Arrow
would merge dict keys across rows; ecosystem.md §2.3), so ``verl_sft_dataset.py`` subclasses it
and decodes each row (arguments → dicts, ``reasoning_content`` inlined for templates without
it) before templating — the same preparation as our TRL path.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from medresearcher.training.sft import SFTOptions

__all__ = ["write_engine_configs"]

_DS_COMMON: dict[str, Any] = {
    "bf16": {"enabled": "auto"},
    "fp16": {"enabled": "auto"},
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
}

_VERL_DATASET = '''"""verl multi-turn SFT dataset for medresearcher's verl_sft.parquet (written by
`medresearcher train sft --write-configs`). Tool-call arguments and the tool list are JSON text
in the file; they are decoded here, and reasoning is inlined as <think> when the template has
no place for it, before verl applies the chat template. Needs medresearcher importable."""

import json

from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

from medresearcher.training.data import template_renders_reasoning, training_messages


class MedResearcherSFTDataset(MultiTurnSFTDataset):
    def _read_files_and_process(self):
        super()._read_files_and_process()
        inline = not template_renders_reasoning(self.tokenizer.chat_template)
        self.messages = [
            training_messages([_clean(m) for m in list(messages)], inline_think=inline)
            for messages in self.messages
        ]
        if self.tools is not None:
            self.tools = [json.loads(t) if isinstance(t, str) else t for t in self.tools]


def _clean(message):
    message = {k: v for k, v in dict(message).items() if v is not None}
    if "tool_calls" in message:
        message["tool_calls"] = [
            {k: v for k, v in dict(call).items() if v is not None}
            for call in list(message["tool_calls"])
        ]
    return message
'''


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _accelerate(num_gpus: int, num_machines: int, ds_file: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {"compute_environment": "LOCAL_MACHINE"}
    if ds_file:
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = {
            "deepspeed_config_file": ds_file,
            "zero3_init_flag": "zero3" in ds_file,
        }
    else:
        config["distributed_type"] = "MULTI_GPU"
        config["mixed_precision"] = "bf16"
    config.update(
        {
            "machine_rank": 0,
            "main_training_function": "main",
            "num_machines": num_machines,
            "num_processes": num_gpus * num_machines,
            "rdzv_backend": "static",
            "same_network": True,
            "use_cpu": False,
        }
    )
    return config


def _deepspeed(stage: int) -> dict[str, Any]:
    zero: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if stage == 3:
        zero.update(
            {
                "stage3_prefetch_bucket_size": "auto",
                "stage3_param_persistence_threshold": "auto",
                "stage3_max_live_parameters": 1e9,
                "stage3_max_reuse_distance": 1e9,
                "stage3_gather_16bit_weights_on_model_save": True,
            }
        )
    else:
        zero.update({"allgather_partitions": True, "allgather_bucket_size": 5e8})
    return {**_DS_COMMON, "zero_optimization": zero}


def _verl_script(options: SFTOptions, parquet: Path, dataset_py: Path, gpus: int) -> str:
    lora = options.lora
    overrides = [
        f"data.train_files={parquet}",
        f"data.val_files={parquet}",
        "data.multiturn.enable=true",
        "data.multiturn.messages_key=messages",
        "data.multiturn.tools_key=tools",
        f"data.custom_cls.path={dataset_py}",
        "data.custom_cls.name=MedResearcherSFTDataset",
        f"data.max_length={options.max_length}",
        "data.truncation=right",
        f"data.micro_batch_size_per_gpu={options.batch_size}",
        f"data.train_batch_size={options.batch_size * options.grad_accum * gpus}",
        f"model.partial_pretrain={options.model}",
        "model.strategy=fsdp",
        f"model.enable_gradient_checkpointing={str(options.gradient_checkpointing).lower()}",
        f"optim.lr={options.resolved_learning_rate}",
        f"optim.weight_decay={options.weight_decay}",
        f"optim.lr_scheduler={options.scheduler}",
        f"trainer.total_epochs={max(1, round(options.epochs))}",
        f"trainer.default_local_dir={Path(options.output) / 'verl'}",
        "trainer.project_name=medresearcher",
        "trainer.experiment_name=sft",
        "trainer.logger=['console']",
        "use_remove_padding=true",
    ]
    if options.warmup < 1:
        overrides.append(f"optim.warmup_steps_ratio={options.warmup}")
    if lora.enabled:
        overrides += [
            f"model.lora_rank={lora.r}",
            f"model.lora_alpha={lora.alpha}",
            "model.target_modules=all-linear",
        ]
    body = " \\\n    ".join(shlex.quote(o) for o in overrides)
    return (
        "#!/usr/bin/env bash\n"
        "# verl multi-turn SFT on our verl_sft.parquet (written by medresearcher train sft).\n"
        "# Multi-node: replace --standalone with --nnodes/--node-rank/--master-addr.\n"
        "set -euo pipefail\n"
        f"NPROC=${{NPROC:-{gpus}}}\n"
        "torchrun --standalone --nnodes=1 --nproc_per_node=$NPROC \\\n"
        f'    -m verl.trainer.fsdp_sft_trainer \\\n    {body} "$@"\n'
    )


def _llamafactory(options: SFTOptions, export_dir: Path, configs: Path) -> dict[str, Any]:
    info = export_dir / "dataset_info.json"
    names = list(json.loads(info.read_text(encoding="utf-8"))) if info.is_file() else []
    lora = options.lora
    config: dict[str, Any] = {
        "model_name_or_path": options.model,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora" if lora.enabled else "full",
    }
    if lora.enabled:
        config.update(
            {
                "lora_rank": lora.r,
                "lora_alpha": lora.alpha,
                "lora_dropout": lora.dropout,
                "lora_target": ",".join(lora.targets),
            }
        )
    config.update(
        {
            "deepspeed": str(configs / "ds_zero3.json"),
            "dataset": names[0] if names else "medresearcher",
            "dataset_dir": str(export_dir),
            "template": "qwen",
            "cutoff_len": options.max_length,
            "overwrite_cache": True,
            "preprocessing_num_workers": 16,
            "output_dir": str(Path(options.output) / "llamafactory"),
            "logging_steps": options.logging_steps,
            "save_steps": options.save_steps,
            "plot_loss": True,
            "per_device_train_batch_size": options.batch_size,
            "gradient_accumulation_steps": options.grad_accum,
            "learning_rate": options.resolved_learning_rate,
            "num_train_epochs": float(options.epochs),
            "lr_scheduler_type": options.scheduler,
            "warmup_ratio": options.warmup if options.warmup < 1 else 0.0,
            "bf16": True,
            "gradient_checkpointing": options.gradient_checkpointing,
        }
    )
    return config


def write_engine_configs(
    options: SFTOptions,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    num_gpus: int = 8,
    num_machines: int = 1,
) -> dict[str, Path]:
    """Write the multi-GPU and other-engine configs for ``options``; returns name → path.

    ``options.data`` is the ``openai.jsonl`` export: its folder is expected to hold the other
    formats of the same export (``verl_sft.parquet``, ``sharegpt.jsonl`` and
    ``dataset_info.json``), as ``medresearcher traj export`` writes them.
    """
    configs = Path(out_dir) if out_dir is not None else Path(options.output) / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    configs = configs.resolve()
    export_dir = Path(options.data).resolve().parent
    # The scripts run from anywhere: local paths are written absolute.
    local_model = Path(options.model)
    options = replace(
        options,
        data=Path(options.data).resolve(),
        output=Path(options.output).resolve(),
        model=str(local_model.resolve()) if local_model.exists() else options.model,
    )
    paths: dict[str, Path] = {}

    def put(name: str, text: str) -> None:
        path = configs / name
        path.write_text(text, encoding="utf-8")
        paths[name] = path

    for stage in (2, 3):
        put(f"ds_zero{stage}.json", json.dumps(_deepspeed(stage), indent=2) + "\n")
        put(
            f"accelerate_zero{stage}.yaml",
            _yaml(_accelerate(num_gpus, num_machines, str(configs / f"ds_zero{stage}.json"))),
        )
    put("accelerate_ddp.yaml", _yaml(_accelerate(num_gpus, num_machines, None)))
    put("verl_sft_dataset.py", _VERL_DATASET)
    parquet = export_dir / "verl_sft.parquet"
    put("verl_sft.sh", _verl_script(options, parquet, paths["verl_sft_dataset.py"], num_gpus))
    paths["verl_sft.sh"].chmod(0o755)
    put("llamafactory_sft.yaml", _yaml(_llamafactory(options, export_dir, configs)))
    put("LAUNCH.md", _launch_notes(options, configs, export_dir))
    return paths


def _launch_notes(options: SFTOptions, configs: Path, export_dir: Path) -> str:
    lora = "--lora" if options.lora.enabled else "--no-lora"
    sft = (
        f"-m medresearcher train sft --data {options.data} --model {options.model} "
        f"--output {options.output} {lora} --epochs {options.epochs} "
        f"--batch-size {options.batch_size} --grad-accum {options.grad_accum} "
        f"--max-length {options.max_length}"
    )
    return f"""# Launching this SFT run at scale

TRL + accelerate (one node; `--num_machines`/`--machine_rank`/`--main_process_ip` for more):

    accelerate launch --config_file {configs / "accelerate_zero3.yaml"} {sft}

`accelerate_zero2.yaml` (faster, more memory) and `accelerate_ddp.yaml` (model fits one GPU) take
the same command.

verl (needs `pip install verl` and medresearcher importable in the same environment):

    bash {configs / "verl_sft.sh"}

reads {export_dir / "verl_sft.parquet"} through `verl_sft_dataset.py`.

LLaMA-Factory (reads {export_dir / "sharegpt.jsonl"} via `dataset_info.json`):

    llamafactory-cli train {configs / "llamafactory_sft.yaml"}
"""
