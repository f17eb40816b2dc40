"""SFT (issue 11 item 2, 5): assistant-only labels checked token by token, two real TRL steps
on the tiny local model, the configs for other engines. No network: HF_HUB_OFFLINE=1."""

from __future__ import annotations

import json
import math
import os
import py_compile
import re
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
pytest.importorskip("trl")

from medresearcher.errors import ConfigError, InputError
from medresearcher.schema import QARecord, Trajectory
from medresearcher.synthesis.chat_template import render_qwen25
from medresearcher.synthesis.export import export_trajectories
from medresearcher.synthesis.export_messages import inline_reasoning
from medresearcher.training.data import (
    build_sft_dataset,
    read_openai_export,
    tokenize_conversation,
)
from medresearcher.training.tiny_model import build_tiny_model, load_qwen25_tokenizer
from tests.trajectory_fixtures import (
    MEDICAL_RETRIEVER_TOOL,
    SYSTEM,
    WEB_SEARCH_TOOL,
    demo_qa,
    tool_call,
)

# ---------------------------------------------------------------- shared data (also imported
# by test_training_grpo.py and test_cli_train.py)

TOOLS = [WEB_SEARCH_TOOL, MEDICAL_RETRIEVER_TOOL]


def demo_messages(question: str, answer: str) -> list[dict[str, Any]]:
    """A short research conversation: two parallel calls (two tool turns in a row), one more
    call, a forced-answer user turn, the answer; reasoning apart on two turns."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": "Search broadly first.",
            "reasoning_content": "Angiokeratoma suggests a lysosomal disease.",
            "tool_calls": [
                tool_call("c1", "web_search", {"queries": ["angiokeratoma gene"]}),
                tool_call("c2", "medical_retriever", {"query": "angiokeratoma", "k": 3}),
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": f"[1] {answer} — corpus://ORPHA:324"},
        {"role": "tool", "tool_call_id": "c2", "content": f"1. {answer} [ORPHA:324]"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [tool_call("c3", "medical_retriever", {"query": answer})],
        },
        {"role": "tool", "tool_call_id": "c3", "content": f"{answer}: X-linked, GLA."},
        {"role": "user", "content": "Budget spent: answer now."},
        {
            "role": "assistant",
            "content": f"Every source agrees.\n<answer>{answer}</answer>",
            "reasoning_content": "Consistent evidence.",
        },
    ]


QUESTIONS = [
    ("Q:1", "Which disease fits angiokeratoma and hypohidrosis?", "Fabry disease"),
    ("Q:2", "Which enzyme is missing in Fabry disease?", "alpha-galactosidase A"),
    ("Q:3", "Which gene is mutated in Fabry disease?", "GLA"),
]


def demo_records() -> tuple[list[Trajectory], list[QARecord]]:
    trajectories, records = [], []
    for qa_id, question, answer in QUESTIONS:
        trajectories.append(
            Trajectory(
                id=f"T:{qa_id}",
                qa_id=qa_id,
                policy="llm:agent",
                question=question,
                messages=demo_messages(question, answer),
                tools=TOOLS,
                final_answer=answer,
                termination="answer",
                created_at="2026-01-01T00:00:00+00:00",
            )
        )
        records.append(demo_qa(qa_id, question, answer))
    return trajectories, records


def demo_export(folder: Path) -> Path:
    """Export the demo trajectories in every format into ``folder``; returns openai.jsonl."""
    if not (folder / "openai.jsonl").is_file():
        trajectories, records = demo_records()
        export_trajectories(trajectories, records, folder, workspace=folder, run="demo")
    return folder / "openai.jsonl"


def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, built once per test session (shared by the training test modules)."""
    folder = tmp_path_factory.getbasetemp() / "tiny-qwen2"
    if not (folder / "config.json").is_file():
        build_tiny_model(folder, num_hidden_layers=2, hidden_size=32, intermediate_size=64)
    return folder


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return load_qwen25_tokenizer()


@pytest.fixture(scope="module")
def export_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_export(tmp_path_factory.mktemp("export"))


# ---------------------------------------------------------------- labels, token by token

_BLOCK = re.compile(r"<\|im_start\|>(system|user|assistant)(.*?)<\|im_end\|>\n", re.DOTALL)


def expected_tokens(tokenizer: Any, text: str) -> tuple[list[int], list[int], list[str]]:
    """Independent reference: split the rendered text into ChatML blocks and tokenise each
    piece on its own; only an assistant block's body and its <|im_end|> carry labels."""
    ids: list[int] = []
    labels: list[int] = []
    roles: list[str] = []
    position = 0
    for match in _BLOCK.finditer(text):
        assert match.start() == position, "the text is made of ChatML blocks only"
        role, body = match.group(1), match.group(2)
        roles.append("tool" if body.startswith("\n<tool_response>") else role)
        header = f"<|im_start|>{role}\n" if body.startswith("\n") else f"<|im_start|>{role}"
        rest = body[1:] if body.startswith("\n") else body
        for piece, trained in ((header, False), (rest + "<|im_end|>", role == "assistant")):
            piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
            ids += piece_ids
            labels += piece_ids if trained else [-100] * len(piece_ids)
        newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
        ids += newline
        labels += [-100] * len(newline)
        position = match.end()
    assert position == len(text)
    return ids, labels, roles


def test_labels_are_minus_100_exactly_on_system_user_and_tool_tokens(
    tokenizer: Any, export_file: Path
) -> None:
    rows = read_openai_export(export_file)
    assert len(rows) == len(QUESTIONS)
    for row in rows:
        tokenized = tokenize_conversation(tokenizer, row.messages, row.tools)
        # the text is the template's own rendering (ours renders identically to transformers)
        assert tokenized.text == render_qwen25(inline_reasoning(row.messages), row.tools)
        ids, labels, roles = expected_tokens(tokenizer, tokenized.text)
        assert {"system", "user", "assistant", "tool"} <= set(roles)
        assert tokenized.input_ids == ids
        for position, (got, want) in enumerate(zip(tokenized.labels, labels, strict=True)):
            assert got == want, f"token {position} {tokenizer.decode([ids[position]])!r}"
        trained = tokenizer.decode([i for i, lab in zip(ids, labels, strict=True) if lab != -100])
        assert "<tool_response>" not in trained and SYSTEM not in trained
        assert row.messages[1]["content"] not in trained  # the question is context
        assert "Budget spent" not in trained  # so is a later user turn
        assert "<think>\nAngiokeratoma suggests" in trained  # thought supervision (§4.1)
        assert trained.count("<tool_call>") == 3 and trained.count("<|im_end|>") == 3


def test_arguments_are_encoded_once(tokenizer: Any, export_file: Path) -> None:
    row = read_openai_export(export_file)[0]
    text = tokenize_conversation(tokenizer, row.messages, row.tools).text
    assert '"arguments": {"query": "Fabry disease"}' in text
    assert '\\"' not in text


def test_truncation_keeps_the_left_and_skips_rows_without_assistant_tokens(
    tokenizer: Any, export_file: Path
) -> None:
    rows = read_openai_export(export_file)
    full = tokenize_conversation(tokenizer, rows[0].messages, rows[0].tools)
    cut = tokenize_conversation(tokenizer, rows[0].messages, rows[0].tools, max_length=300)
    assert cut.truncated and cut.input_ids == full.input_ids[:300]
    _, stats = build_sft_dataset(rows, tokenizer, max_length=len(full.input_ids))
    assert stats.rows_used == 3 and stats.trained_tokens > 0 and not stats.skipped
    with pytest.raises(InputError, match="no_assistant_tokens 3"):
        build_sft_dataset(rows, tokenizer, max_length=40)  # the system prompt alone is longer


def test_a_template_that_rewrites_earlier_turns_is_refused(
    tokenizer: Any, export_file: Path
) -> None:
    row = read_openai_export(export_file)[0]
    original = tokenizer.chat_template
    tokenizer.chat_template = (
        "{{ messages | length }}{% for m in messages %}<|im_start|>{{ m.role }}\n"
        "{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    try:
        with pytest.raises(ConfigError, match="not prefix-preserving"):
            tokenize_conversation(tokenizer, row.messages, None)
    finally:
        tokenizer.chat_template = original


def test_bad_export_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "openai.jsonl"
    path.write_text('{"id": "a", "messages": [{"role": "user", "content": "q"}]}\n{oops\n')
    with pytest.raises(InputError, match=r"openai.jsonl:2: not JSON"):
        read_openai_export(path)
    with pytest.raises(InputError, match="traj export"):
        read_openai_export(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------- two real steps


@pytest.mark.slow
def test_two_sft_steps_on_the_tiny_model_have_finite_loss(
    tmp_path_factory: pytest.TempPathFactory, export_file: Path, tmp_path: Path
) -> None:
    from medresearcher.training.sft import SFTOptions, run_sft

    options = SFTOptions(
        data=export_file,
        model=str(tiny_model_dir(tmp_path_factory)),
        output=tmp_path / "sft",
        max_steps=2,
        batch_size=1,
        grad_accum=1,
        max_length=320,
        learning_rate=1e-3,
        warmup=0,
        gradient_checkpointing=False,
        save_model=False,
    )
    result = run_sft(options)
    assert result.steps == 2
    assert len(result.losses) == 2 and result.finite
    # random weights over a 151k vocabulary: the loss starts near ln(V)
    assert abs(result.losses[0] - math.log(151_665)) < 1.5
    assert result.data["rows_used"] == 3 and result.data["truncated"] == 3
    record = json.loads((tmp_path / "sft" / "sft_run.json").read_text())
    assert record["steps"] == 2 and record["options"]["max_length"] == 320


# ---------------------------------------------------------------- configs for other engines


def test_engine_configs_for_accelerate_deepspeed_verl_and_llamafactory(
    export_file: Path, tmp_path: Path
) -> None:
    import yaml

    from medresearcher.training.engine_configs import write_engine_configs
    from medresearcher.training.sft import LoraOptions, SFTOptions

    options = SFTOptions(
        data=export_file,
        model="Qwen/Qwen2.5-7B-Instruct",
        output=tmp_path / "out",
        lora=LoraOptions(enabled=True, r=8, alpha=16),
        batch_size=2,
        grad_accum=4,
        max_length=4096,
    )
    paths = write_engine_configs(options, num_gpus=4, num_machines=2)
    configs = tmp_path / "out" / "configs"
    for stage in (2, 3):
        ds = json.loads((configs / f"ds_zero{stage}.json").read_text())
        assert ds["zero_optimization"]["stage"] == stage
        assert ds["train_micro_batch_size_per_gpu"] == "auto"
        acc = yaml.safe_load((configs / f"accelerate_zero{stage}.yaml").read_text())
        assert acc["distributed_type"] == "DEEPSPEED" and acc["num_processes"] == 8
        assert Path(acc["deepspeed_config"]["deepspeed_config_file"]).is_file()
    ddp = yaml.safe_load((configs / "accelerate_ddp.yaml").read_text())
    assert ddp["distributed_type"] == "MULTI_GPU" and ddp["num_machines"] == 2
    verl = (configs / "verl_sft.sh").read_text()
    for override in (
        "verl.trainer.fsdp_sft_trainer",
        "data.multiturn.enable=true",
        "data.multiturn.messages_key=messages",
        f"data.train_files={export_file.parent.resolve() / 'verl_sft.parquet'}",
        "data.custom_cls.name=MedResearcherSFTDataset",
        "data.max_length=4096",
        "data.train_batch_size=32",
        "model.lora_rank=8",
        "model.partial_pretrain=Qwen/Qwen2.5-7B-Instruct",
    ):
        assert override in verl
    py_compile.compile(str(configs / "verl_sft_dataset.py"), doraise=True)
    lf = yaml.safe_load((configs / "llamafactory_sft.yaml").read_text())
    info = json.loads((export_file.parent / "dataset_info.json").read_text())
    assert lf["dataset"] in info and lf["dataset_dir"] == str(export_file.parent.resolve())
    assert lf["finetuning_type"] == "lora" and lf["lora_rank"] == 8
    assert lf["cutoff_len"] == 4096 and lf["learning_rate"] == 1e-4
    assert "accelerate launch --config_file" in (configs / "LAUNCH.md").read_text()
    assert set(paths) >= {"verl_sft.sh", "llamafactory_sft.yaml", "ds_zero3.json"}
