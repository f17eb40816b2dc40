"""GRPO on TRL (issue 11 item 3, 5): one real step on the tiny model with the paper's reward
terms, KL 0, the curriculum and a tool; our tools as TRL callables; the prompt loaders."""

from __future__ import annotations

import asyncio
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
pytest.importorskip("trl")

from medresearcher.config import Settings
from medresearcher.errors import ConfigError, InputError
from medresearcher.synthesis.export import export_trajectories
from medresearcher.training.data import load_grpo_prompts
from medresearcher.training.grpo import (
    GRPOOptions,
    build_reward_setup,
    grpo_config,
    parse_weights,
    run_grpo,
    trl_tool_callables,
)
from tests.test_training_sft import demo_records, tiny_model_dir


def write_prompts(path: Path, n: int = 4) -> Path:
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Which disease fits sign {i}?"}],
            "answer": "Fabry disease",
            "answer_aliases": ["Anderson-Fabry disease"],
            "qa_id": f"Q{i}",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def lookup_phenotype(term: str) -> str:
    """Look a phenotype term up in the test glossary.

    Args:
        term: The phenotype, in plain words.
    """
    return f"{term}: a sign of Fabry disease"


@pytest.mark.slow
def test_one_grpo_step_with_the_paper_rewards_kl0_curriculum_and_a_tool(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    data = write_prompts(tmp_path / "prompts.jsonl")
    rows, kind = load_grpo_prompts(data)
    assert kind == "prompts"
    options = GRPOOptions(
        data=data,
        model=str(tiny_model_dir(tmp_path_factory)),
        output=tmp_path / "grpo",
        num_generations=2,
        batch_size=2,
        max_steps=1,
        max_completion_length=12,
        max_tool_turns=1,
        gradient_checkpointing=False,
        save_model=False,
    )
    result = run_grpo(options, rows=rows, tools=[lookup_phenotype])
    assert result.steps == 1
    assert result.finite and all(math.isfinite(r) for r in result.rewards)
    # the task reward fed the curriculum: one group of 2 rollouts of one prompt
    assert sum(int(v["attempts"]) for v in result.curriculum.values()) == 2
    record = json.loads((tmp_path / "grpo" / "grpo_run.json").read_text())
    assert record["reward_funcs"] == ["task_reward", "efficiency_penalty"]
    assert record["reward_weights"] == [1.0, -0.1]


def test_grpo_config_has_no_kl_term_and_the_weights(tmp_path: Path) -> None:
    options = GRPOOptions(data=tmp_path / "d.jsonl", model="m", output=tmp_path / "o")
    config = grpo_config(options, [1.0, 0.2, -0.1])
    assert config.beta == 0.0
    assert config.reward_weights == [1.0, 0.2, -0.1]
    assert config.num_generations == 8 and config.loss_type == "grpo"


def test_reward_setup_maps_alpha_beta_gamma_to_trl_weights() -> None:
    setup = build_reward_setup(parse_weights("task=1,expert=0.2,efficiency=0.1"))
    assert setup.names == ["task", "efficiency"] and setup.weights == [1.0, -0.1]

    def expert(completions, **kwargs):
        return [0.5] * len(completions)

    setup = build_reward_setup(parse_weights("expert=0.3"), expert=expert)
    assert setup.names == ["task", "expert", "efficiency"]
    assert setup.weights == [1.0, 0.3, -0.1]
    completions = [[{"role": "assistant", "content": "<answer>Fabry disease</answer>"}]]
    assert setup.funcs[0](completions, answer=["Fabry disease"], answer_aliases=[[]]) == [1.0]
    for bad in ("task", "kl=0.1", "task=x", "efficiency=-1"):
        with pytest.raises(ConfigError):
            parse_weights(bad)


def test_our_tools_become_trl_callables_with_schemas_from_our_own(tmp_path: Path) -> None:
    from transformers.utils import get_json_schema

    from medresearcher.tools import build_toolbox

    settings = Settings(workspace=tmp_path / "ws")
    toolbox = build_toolbox(settings, tmp_path / "ws", names=["web_search", "clinical_reasoning"])
    callables = trl_tool_callables(toolbox)
    assert [c.__name__ for c in callables] == ["web_search", "clinical_reasoning"]
    assert all(asyncio.iscoroutinefunction(c) for c in callables)
    for tool, schema in zip(callables, toolbox.schemas(), strict=True):
        ours = schema["function"]["parameters"]
        theirs = get_json_schema(tool)["function"]["parameters"]
        assert set(theirs["properties"]) == set(ours["properties"])
        assert sorted(theirs.get("required", [])) == sorted(ours["required"])
    search = get_json_schema(callables[0])["function"]["parameters"]["properties"]["queries"]
    assert search["type"] == "array" and search["items"] == {"type": "string"}
    assert "at most 5" in search["description"]  # the limit a type hint cannot carry
    sex = get_json_schema(callables[1])["function"]["parameters"]["properties"]["sex"]
    assert sex["enum"] == ["F", "M"] and sex.get("nullable")

    async def calls() -> tuple[str, str]:
        try:
            ddx = await callables[1](present_findings=["angiokeratoma", "hypohidrosis"])
            missing = await callables[0](queries=["fabry"])
            return ddx, missing
        finally:
            await toolbox.aclose()

    ddx, missing = asyncio.run(calls())
    assert "Fabry disease" in ddx.splitlines()[2]  # the top of the differential
    assert "medresearcher index build" in missing  # failures come back as text, as in the loop


def test_prompt_loaders_read_qa_records_verl_parquet_and_prompt_rows(tmp_path: Path) -> None:
    trajectories, records = demo_records()
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    rows, kind = load_grpo_prompts(qa, tool_names=["web_search"])
    assert kind == "qa" and len(rows) == 3
    first = rows[0]
    assert [m["role"] for m in first["prompt"]] == ["system", "user"]
    assert "web_search" in first["prompt"][0]["content"]
    assert first["prompt"][1]["content"] == records[0].question
    assert first["answer"] == "Fabry disease" and first["qa_id"] == "Q:1"
    assert first["paradigm"] == records[0].paradigm and first["hops"] == 1

    export_trajectories(trajectories, records, tmp_path / "export", ["verl-rl"])
    rows, kind = load_grpo_prompts(tmp_path / "export" / "verl_rl.parquet")
    assert kind == "verl-rl" and [r["qa_id"] for r in rows] == ["Q:1", "Q:2", "Q:3"]
    assert rows[1]["answer"] == "alpha-galactosidase A"
    assert rows[1]["prompt"][-1] == {"role": "user", "content": records[1].question}

    rows, kind = load_grpo_prompts(write_prompts(tmp_path / "p.jsonl", 2))
    assert kind == "prompts" and rows[1]["answer_aliases"] == ["Anderson-Fabry disease"]
    columns: dict[str, Any] = {k: type(v) for k, v in rows[0].items()}
    assert all({k: type(v) for k, v in r.items()} == columns for r in rows)

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1"):
        load_grpo_prompts(bad)
