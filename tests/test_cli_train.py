"""``medresearcher train`` as a user runs it (issue 11 item 4): dry-run plans that name every
choice, the verl bundle, input errors, a LoRA run end to end; ``--help`` stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
pytest.importorskip("trl")

from medresearcher.synthesis.export import export_trajectories
from tests.test_training_sft import demo_export, demo_records, tiny_model_dir


def train(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDRESEARCHER_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "medresearcher", "-w", str(cwd / "ws"), "train", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train-cli")
    openai = demo_export(root / "export")
    trajectories, records = demo_records()
    export_trajectories(trajectories, records, root / "rl", ["verl-rl"])
    qa = root / "qa.jsonl"
    qa.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    return {
        "root": root,
        "openai": openai,
        "qa": qa,
        "parquet": root / "rl" / "verl_rl.parquet",
        "model": tiny_model_dir(tmp_path_factory),
    }


def plan_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_help_lists_the_commands_without_importing_torch(tmp_path: Path) -> None:
    probe = (
        "import sys, medresearcher.cli, medresearcher.cli.train_cmd, medresearcher.training.plan;"
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    result = train("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("sft", "grpo", "tiny-model"):
        assert command in result.stdout


def test_sft_dry_run_names_every_choice(files: dict[str, Path], tmp_path: Path) -> None:
    args = ["sft", "--data", str(files["openai"]), "--model", str(files["model"])]
    args += ["--output", str(tmp_path / "out"), "--lora", "--lora-r", "8", "--lora-alpha", "16"]
    args += ["--grad-accum", "4", "--max-length", "2048", "--dry-run"]
    plan = plan_of(train(*args, "--json", cwd=tmp_path))
    assert plan["command"] == "train sft"
    data = plan["data"]
    assert data["path"] == str(files["openai"]) and data["rows"] == 3
    assert data["messages by role"] == "assistant 9, system 3, tool 9, user 6"
    assert plan["model"]["architecture"] == "Qwen2ForCausalLM"
    template = plan["chat template"]
    assert template["source"].endswith("chat_template.jinja")
    assert template["family"].startswith("Qwen2.5") and template["tools rendered"] == "yes"
    assert "<think>" in template["reasoning_content"]
    assert "-100 on system, user and tool tokens" in plan["masking"]["rule"]
    assert "2048" in plan["masking"]["truncation"]
    lora = plan["lora"]
    assert lora["r"] == 8 and lora["alpha"] == 16 and "down_proj" in lora["targets"]
    hyper = plan["hyper-parameters"]
    assert hyper["learning_rate"] == 1e-4  # the LoRA default
    assert hyper["grad_accum"] == 4 and hyper["max_length"] == 2048 and hyper["epochs"] == 3.0
    for key in ("scheduler", "warmup", "per_device_batch_size", "seed", "precision", "packing"):
        assert key in hyper
    assert plan["engine"]["configs"].startswith("not written")
    assert not (tmp_path / "out").exists()  # a dry run writes nothing

    text = train(*args, "--no-lora", "--write-configs", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "Plan: medresearcher train sft" in text.stdout and "no (full fine-tuning" in text.stdout
    assert "verl_sft.sh" in text.stdout
    assert (tmp_path / "out" / "configs" / "accelerate_zero3.yaml").is_file()


def test_grpo_dry_run_names_rewards_kl_and_curriculum(
    files: dict[str, Path], tmp_path: Path
) -> None:
    args = ["grpo", "--data", str(files["qa"]), "--model", str(files["model"])]
    args += ["--output", str(tmp_path / "g"), "--dry-run", "--json"]
    plan = plan_of(train(*args, "--weights", "task=1,efficiency=0.3", cwd=tmp_path))
    assert plan["data"]["format"] == "qa" and plan["data"]["prompts"] == 3
    rewards = plan["rewards"]
    assert rewards["composite (paper §4.2)"] == "r = 1·r_task − 0.3·r_efficiency"
    assert rewards["expert (β)"].startswith("0.2: off")
    assert rewards["KL coefficient"].startswith("0 (beta = 0.0")
    assert plan["hyper-parameters"]["kl_coefficient (beta)"] == 0.0
    assert plan["hyper-parameters"]["num_generations (group size)"] == 8
    assert plan["curriculum"]["window (rollouts kept per prompt)"] == 8
    assert "clinical_reasoning" in plan["tools"]["given to the policy"]
    assert plan["engine"]["trainer"] == "TRL GRPOTrainer with the curriculum sampler"
    off = plan_of(train(*args, "--no-curriculum", "--tools", "", cwd=tmp_path))
    assert (
        off["curriculum"]["enabled"].startswith("no")
        and off["tools"]["given to the policy"] == "none"
    )


@pytest.mark.slow
def test_grpo_refuses_bad_options(files: dict[str, Path], tmp_path: Path) -> None:
    base = ["grpo", "--data", str(files["qa"]), "--model", "m", "--output", str(tmp_path / "g")]
    cases = {
        ("--weights", "alpha=1"): "--weights",
        ("--batch-size", "3", "--num-generations", "2"): "multiple of --num-generations",
        ("--expert-endpoint", "judge"): "unknown LLM endpoint 'judge'",
        ("--engine", "ray"): "use trl or verl",
    }
    for extra, message in cases.items():
        result = train(*base, *extra, "--dry-run", cwd=tmp_path)
        assert result.returncode != 0
        assert message in result.stdout + result.stderr
    wrong = train("grpo", "--data", str(files["qa"]), "--model", "m", "--output", "o",
                  "--engine", "verl", cwd=tmp_path)  # fmt: skip
    assert wrong.returncode != 0 and "verl_rl.parquet" in wrong.stdout + wrong.stderr


@pytest.mark.slow
def test_grpo_engine_verl_writes_the_bundle_and_says_how_to_launch(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "g"
    result = train(
        "grpo", "--data", str(files["parquet"]), "--model", "Qwen/Qwen2.5-7B-Instruct",
        "--output", str(out), "--engine", "verl", "--tools", "clinical_reasoning",
        "--num-generations", "4", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    script = out / "verl" / "run_grpo.sh"
    assert script.is_file()
    assert f"bash {script}" in result.stdout.replace("\n", "")
    assert "Qwen/Qwen2.5-7B-Instruct" in script.read_text()


@pytest.mark.slow
def test_sft_with_lora_trains_and_saves_the_adapter(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "lora"
    result = train(
        "sft", "--data", str(files["openai"]), "--model", str(files["model"]),
        "--output", str(out), "--lora", "--lora-r", "4", "--max-steps", "1",
        "--batch-size", "1", "--grad-accum", "1", "--max-length", "320", "--lr", "1e-3",
        "--no-gradient-checkpointing", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done: 1 steps" in result.stdout
    assert (out / "adapter_config.json").is_file()
    record = json.loads((out / "sft_run.json").read_text())
    assert record["options"]["lora"]["r"] == 4 and len(record["losses"]) == 1
