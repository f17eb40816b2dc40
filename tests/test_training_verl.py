"""verl glue: ``compute_score`` on rows of our verl-rl export, our tools as verl tools over a
workspace index, and the GRPO bundle (tool YAML, reward config, launch script).

verl itself is not a dependency; the tests marked ``verl`` run only where it imports (they
check the bundle against verl's own Hydra config and tool loader)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from medresearcher.config import Settings
from medresearcher.data import iter_documents
from medresearcher.errors import ConfigError, InputError
from medresearcher.retrieval import build_index
from medresearcher.schema import QARecord
from medresearcher.synthesis.export_verl import verl_rl_row, verl_rl_schema
from medresearcher.tools import TOOL_NAMES
from medresearcher.training import verl_reward
from medresearcher.training.rewards import RewardWeights
from medresearcher.training.verl_bundle import (
    REWARD_FUNCTION,
    VERL_TOOL_CLASS,
    grpo_overrides,
    verl_tool_schema,
    write_verl_grpo_bundle,
)
from medresearcher.training.verl_reward import compute_score, ground_truth_forms
from medresearcher.training.verl_tools import MedResearcherTool
from tests.conftest import run
from tests.fakes.openai_server import Reply
from tests.trajectory_fixtures import hermes_call, verl_response

COUNT_Q = "It is a disorder linked to 6 genes. How many phenotypes does Orphanet annotate to it?"


def qa_record(**fields) -> QARecord:
    values = {
        "id": "Q:fabry",
        "question": "Which lysosomal disorder is caused by GLA variants? Which disorder is it?",
        "answer": "Fabry disease",
        "answer_aliases": ["Anderson-Fabry disease", "alpha-galactosidase A deficiency"],
        "cheat_sheet": ["Identify [E1] (gene).", "Follow associated_gene to [E2]."],
        "chain": ["HGNC:4296", "associated_gene", "ORPHA:324"],
        "sample_id": "S:1",
        "strategy": "random_walk",
        "hops": 1,
        "paradigm": "identify",
        "created_at": "2025-01-01T00:00:00Z",
        **fields,
    }
    return QARecord(**values)


@pytest.fixture(scope="module")
def rl_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Rows of a real verl_rl.parquet (our export's schema), read back by pyarrow."""
    folder = tmp_path_factory.mktemp("export")
    records = [
        qa_record(),
        qa_record(id="Q:count", question=COUNT_Q, answer="37", paradigm="count"),
    ]
    rows = [
        verl_rl_row(
            index=i,
            prompt=[{"role": "system", "content": "sys"}, {"role": "user", "content": r.question}],
            qa=r,
            trajectory_ids=["T:1"],
            tools=[],
            tool_names=list(TOOL_NAMES),
            data_source="medresearcher",
            ability="medical-deep-research",
            agent_name="tool_agent",
        )
        for i, r in enumerate(records)
    ]
    path = folder / "verl_rl.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=verl_rl_schema(list(TOOL_NAMES))), path)
    return pq.read_table(path).to_pylist()


def score_row(row: dict, solution: str, **kwargs) -> dict:
    return compute_score(
        data_source=row["data_source"],
        solution_str=solution,
        ground_truth=row["reward_model"]["ground_truth"],
        extra_info=row["extra_info"],
        **kwargs,
    )


# -- compute_score -----------------------------------------------------------------------------


def test_compute_score_grades_an_export_row_and_returns_every_part(rl_rows) -> None:
    row = rl_rows[0]
    good = verl_response(
        (hermes_call("web_search", queries=["GLA disorder"]), "GLA: Fabry disease"),
        ("<answer>Anderson-Fabry disease</answer>", None),
    )
    parts = score_row(row, good)
    assert parts == {
        "score": 1.0,
        "task": 1.0,
        "expert": 0.0,
        "expert_judged": 0.0,
        "efficiency_penalty": 0.0,
        "tool_calls": 1.0,
        "wasted_calls": 0.0,
        "answered": 1.0,
    }
    assert all(isinstance(v, float) for v in parts.values())  # verl averages them
    assert score_row(row, "<answer>Gaucher disease</answer>")["score"] == 0.0
    assert score_row(row, hermes_call("web_search", queries=["x"]))["answered"] == 0.0


def test_the_weights_come_from_reward_kwargs(rl_rows) -> None:
    wasteful = verl_response(
        (hermes_call("web_search", queries=["GLA"]), "GLA causes Fabry disease"),
        (hermes_call("web_search", queries=["GLA"]), "GLA causes Fabry disease"),
        ("<answer>Fabry disease</answer>", None),
    )
    default = score_row(rl_rows[0], wasteful)
    assert default["efficiency_penalty"] == 0.5 and default["score"] == pytest.approx(0.95)
    heavier = score_row(rl_rows[0], wasteful, efficiency_weight=0.5, task_weight=2.0)
    assert heavier["score"] == pytest.approx(2.0 - 0.5 * 0.5)


def test_numpy_columns_and_verl_extras_are_read(rl_rows) -> None:
    np = pytest.importorskip("numpy")
    info = {**rl_rows[0]["extra_info"], "num_turns": 3, "rollout_reward_scores": {}}
    info["answer_aliases"] = np.array(info["answer_aliases"], dtype=object)
    parts = compute_score(
        "medresearcher",
        "<answer>alpha-galactosidase A deficiency</answer>",
        "Fabry disease",
        info,
        reward_router_address=None,  # what verl adds with a reward model: ignored
    )
    assert parts["task"] == 1.0


def test_ground_truth_forms_read_text_lists_and_search_r1_targets() -> None:
    assert ground_truth_forms("Fabry disease") == ["Fabry disease"]
    assert ground_truth_forms({"target": ["Fabry disease", "AFD"]}) == ["Fabry disease", "AFD"]
    assert ground_truth_forms(["a", None, " "]) == ["a"]
    assert ground_truth_forms("") == []


def test_the_paradigm_is_looked_up_in_the_workspace_by_qa_id(rl_rows, tmp_path) -> None:
    row = rl_rows[1]  # a count question
    (tmp_path / "qa.jsonl").write_text(
        qa_record(id="Q:count", question=COUNT_Q, answer="37", paradigm="count").model_dump_json()
        + "\n",
        encoding="utf-8",
    )
    solution = verl_response(
        (hermes_call("clinical_reasoning", present_findings=["cataract"]), "ddx …"),
        (hermes_call("web_search", queries=["phenotypes"]), "…"),
        ("<answer>37</answer>", None),
    )
    # the export carries the paradigm; rows written before it did are looked up by qa_id
    assert row["extra_info"]["paradigm"] == "count"
    assert score_row(row, solution)["efficiency_penalty"] == 0.5
    older = {k: v for k, v in row["extra_info"].items() if k not in ("paradigm", "cheat_sheet")}
    info = {**older, "question": "Tell me."}
    plain = compute_score("m", solution, "37", info)
    looked_up = compute_score("m", solution, "37", info, workspace=str(tmp_path))
    assert plain["efficiency_penalty"] == 0.0
    assert looked_up["efficiency_penalty"] == 0.5


def test_the_expert_term_uses_the_judge_endpoint_and_the_cheat_sheet(
    rl_rows, fake_llm, tmp_path
) -> None:
    config = tmp_path / "medresearcher.toml"
    config.write_text(
        f'workspace = "{tmp_path / "ws"}"\n[llm.judge]\nbase_url = "{fake_llm.base_url}"\n'
        'model = "judge-model"\nmax_retries = 0\n',
        encoding="utf-8",
    )
    (tmp_path / "qa.jsonl").write_text(qa_record().model_dump_json() + "\n", encoding="utf-8")
    fake_llm.default = Reply.text('{"rationale": "follows the plan", "score": 0.5}')
    try:
        parts = score_row(
            rl_rows[0],
            "<answer>Fabry disease</answer>",
            expert_endpoint="judge",
            config=str(config),
            workspace=str(tmp_path),
        )
    finally:
        verl_reward.close_experts()
    assert parts["expert"] == 0.5 and parts["expert_judged"] == 1.0
    assert parts["score"] == pytest.approx(1.0 + 0.2 * 0.5)
    user = fake_llm.chat_requests[0].json["messages"][-1]["content"]
    assert "Follow associated_gene to [E2]." in user


# -- tool schemas ------------------------------------------------------------------------------

RETRIEVER_SCHEMA = {
    "type": "function",
    "function": {
        "name": "medical_retriever",
        "description": "Search.",
        "parameters": {
            "$defs": {"Update": {"properties": {"disease_id": {}, "p": {}}, "type": "object"}},
            "properties": {
                "query": {"type": "string", "description": "Keywords."},
                "k": {"type": "integer", "default": 5, "minimum": 1, "maximum": 20},
                "kinds": {"type": "array", "items": {"type": "string", "enum": ["rct", "review"]}},
                "year_from": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
                "updates": {"type": "array", "items": {"$ref": "#/$defs/Update"}},
                "sex": {"anyOf": [{"type": "string", "enum": ["F", "M"]}, {"type": "null"}]},
            },
            "required": ["query"],
            "type": "object",
        },
    },
}


def test_verl_schemas_give_every_property_a_type_and_keep_what_verl_drops_in_words() -> None:
    schema = verl_tool_schema(RETRIEVER_SCHEMA)
    props = schema["function"]["parameters"]["properties"]
    assert {name: p["type"] for name, p in props.items()} == {
        "query": "string",
        "k": "integer",
        "kinds": "array",
        "year_from": ["integer", "null"],
        "updates": "array",
        "sex": ["string", "null"],
    }
    assert "default 5" in props["k"]["description"] and "from 1 to 20" in props["k"]["description"]
    assert "rct, review" in props["kinds"]["description"]
    assert "disease_id, p" in props["updates"]["description"]
    assert schema["function"]["parameters"]["required"] == ["query"]
    assert set(props["query"]) == {"type", "description"}


# -- our tools as verl tools -------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose index holds the tiny bundle's corpus."""
    ws = tmp_path_factory.mktemp("ws")
    build_index(iter_documents("tiny"), ws / "index", source="bundle:tiny")
    return ws


def test_a_wrapped_tool_runs_our_tool_on_the_workspace(workspace) -> None:
    schema = verl_tool_schema(
        {"type": "function", "function": {"name": "web_search", "description": "Search."}}
    )
    tool = MedResearcherTool({"type": "native", "workspace": str(workspace)}, schema)

    async def rollout():
        instance, _ = await tool.create(create_kwargs={"qa_id": "Q:1"})
        found = await tool.execute(instance, {"queries": ["cystinosis"]})
        bad = await tool.execute(instance, {"queries": []})
        await tool.release(instance)
        return found, bad, await tool.calc_reward(instance)

    (found, reward, metrics), (bad, _, bad_metrics), calc = run(rollout())
    assert "cystinosis" in found.text.lower()
    assert reward == 0.0 and calc == 0.0
    assert metrics["error"] is False and metrics["sources"] > 0
    assert bad_metrics["error"] is True and "invalid arguments" in bad.text
    assert tool.name == tool.tool_name == "web_search"


def test_a_wrapped_tool_needs_a_workspace() -> None:
    schema = {"type": "function", "function": {"name": "web_search", "description": "x"}}
    with pytest.raises(ConfigError, match="workspace"):
        MedResearcherTool({"type": "native"}, verl_tool_schema(schema))


# -- the bundle --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(workspace, rl_rows, tmp_path_factory) -> tuple[Path, list[Path]]:
    data = tmp_path_factory.mktemp("data")
    pq.write_table(pa.Table.from_pylist(rl_rows), data / "verl_rl.parquet")
    out = tmp_path_factory.mktemp("bundle")
    written = write_verl_grpo_bundle(
        out,
        data_dir=data,
        model="/models/sft-checkpoint",
        settings=Settings(workspace=workspace),
        weights=RewardWeights(task=1.0, expert=0.3, efficiency=0.1),
        expert_endpoint="judge",
        n_gpus_per_node=4,
    )
    return data, written


def test_the_bundle_writes_the_tool_yaml_the_reward_config_and_a_script(bundle, workspace) -> None:
    _, written = bundle
    assert [p.name for p in written] == ["tools.yaml", "reward.yaml", "run_grpo.sh"]
    tools = yaml.safe_load(written[0].read_text(encoding="utf-8"))["tools"]
    assert [t["tool_schema"]["function"]["name"] for t in tools] == list(TOOL_NAMES)
    assert {t["class_name"] for t in tools} == {VERL_TOOL_CLASS}
    assert all(t["config"]["type"] == "native" for t in tools)
    assert all(t["config"]["workspace"] == str(workspace.resolve()) for t in tools)
    reward = yaml.safe_load(written[1].read_text(encoding="utf-8"))["reward"]
    assert reward["custom_reward_function"]["name"] == REWARD_FUNCTION == "compute_score"
    assert reward["custom_reward_function"]["reward_kwargs"]["expert_weight"] == 0.3


def test_the_script_runs_grpo_without_kl_on_our_data_tools_and_reward(bundle) -> None:
    data, written = bundle
    script = written[2].read_text(encoding="utf-8")
    for line in (
        "python -m verl.trainer.main_ppo",
        "algorithm.adv_estimator=grpo",
        "algorithm.kl_ctrl.kl_coef=0.0",
        "algorithm.use_kl_in_reward=False",
        "actor_rollout_ref.actor.use_kl_loss=False",
        "actor_rollout_ref.rollout.multi_turn.enable=True",
        'actor_rollout_ref.rollout.multi_turn.tool_config_path="$HERE/tools.yaml"',
        'reward.custom_reward_function.path="$REWARD_PY"',
        "reward.custom_reward_function.name=compute_score",
        f"data.train_files={data.resolve() / 'verl_rl.parquet'}",
        "+reward.custom_reward_function.reward_kwargs.expert_endpoint=judge",
        "trainer.n_gpus_per_node=4",
    ):
        assert line in script, line
    body = script.split("args=(\n", 1)[1].split("\n)", 1)[0].splitlines()
    assert body and all("  # " in line for line in body)  # every value is commented
    assert written[2].stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(written[2])], check=False).returncode == 0


def test_the_reward_path_the_script_computes_is_this_module(bundle) -> None:
    line = next(x for x in bundle[1][2].read_text().splitlines() if x.startswith("REWARD_PY="))
    command = line.split("=", 1)[1].strip("$()").strip()
    assert "medresearcher.training.verl_reward" in command
    assert Path(verl_reward.__file__).name == "verl_reward.py"


def test_a_missing_export_is_an_input_error(tmp_path, workspace) -> None:
    with pytest.raises(InputError, match="verl-rl"):
        write_verl_grpo_bundle(
            tmp_path / "out", data_dir=tmp_path, model="m", settings=Settings(workspace=workspace)
        )


# -- against verl itself (where it is installed) -----------------------------------------------


@pytest.mark.slow
def test_verl_composes_the_overrides_and_loads_our_tools(bundle) -> None:
    verl = pytest.importorskip(
        "verl",
        reason="verl is not installed: it pins transformers<5.11, which the train extra's TRL "
        "does not run on, so it lives in its own environment (docs/training.md)",
    )
    from hydra import compose, initialize_config_dir
    from verl.tools.base_tool import BaseTool
    from verl.tools.tool_registry import initialize_tools_from_config
    from verl.utils.import_utils import load_extern_object

    overrides = grpo_overrides(
        train_file="/d/verl_rl.parquet",
        val_file="/d/verl_rl.parquet",
        model="m",
        tool_config=str(bundle[1][0]),
        reward_path=verl_reward.__file__,
        weights=RewardWeights(),
        expert_endpoint="judge",
        config_file="/c/medresearcher.toml",
        workspace="/ws",
        n_gpus_per_node=8,
        nnodes=1,
        rollout_n=8,
        rollout_engine="vllm",
        train_batch_size=64,
        max_prompt_length=2048,
        max_response_length=8192,
        max_assistant_turns=16,
        learning_rate=1e-6,
        total_epochs=1,
        experiment_name="grpo",
    )
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose("ppo_trainer", overrides=[f"{k}={v}" for k, v, _ in overrides])
    assert cfg.algorithm.adv_estimator == "grpo"
    assert cfg.actor_rollout_ref.actor.use_kl_loss is False
    assert cfg.reward.custom_reward_function.reward_kwargs.expert_endpoint == "judge"

    tools = initialize_tools_from_config(str(bundle[1][0]))
    assert [t.name for t in tools] == list(TOOL_NAMES)
    assert all(isinstance(t, BaseTool) for t in tools)
    score = load_extern_object(module_path=verl_reward.__file__, object_name="compute_score")
    assert score("m", "<answer>GLA</answer>", "GLA", {})["score"] == 1.0
