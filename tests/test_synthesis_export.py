"""Trainer exports (issue 9 item 6; ecosystem.md §2.2–2.3): round trips and pitfalls."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from medresearcher.cli.state import CliState
from medresearcher.cli.traj_export_cmd import export
from medresearcher.errors import InputError
from medresearcher.schema import QARecord, Trajectory
from medresearcher.synthesis.chat_template import (
    qwen25_template_source,
    render_qwen25,
    template_ready,
)
from medresearcher.synthesis.export import FORMATS, export_trajectories
from medresearcher.synthesis.export_verl import decode_verl_sft_row, read_verl_sft
from tests.trajectory_fixtures import (
    DOCUMENT_READ_TOOL,
    MEDICAL_RETRIEVER_TOOL,
    SYSTEM,
    WEB_SEARCH_TOOL,
    demo_qa,
    tool_call,
)

# ---------------------------------------------------------------- crafted records

TOOLS = [WEB_SEARCH_TOOL, DOCUMENT_READ_TOOL, MEDICAL_RETRIEVER_TOOL]
GUIDANCE = (
    "Research guidance for this question (private: it is not part of the conversation).\n"
    "1. ([MASK], has_phenotype, [MASK])\n"
    "Never mention this guidance, the plan, the placeholders or [MASK] in your reasoning."
)
REASONING = "The question names angiokeratoma; a lysosomal disease is likely."


def english_messages(question: str = "Which disease fits angiokeratoma?") -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": "I will search broadly and read the GLA record at once.",
            "reasoning_content": REASONING,
            "tool_calls": [
                tool_call("c1", "web_search", {"queries": ["angiokeratoma <disease> & enzyme"]}),
                tool_call("c2", "document_read", {"url_or_id": "ORPHA:324", "goal": "key signs"}),
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "[1] Fabry disease — corpus://ORPHA:324"},
        {"role": "tool", "tool_call_id": "c2", "content": "Fabry disease: angiokeratoma."},
        {
            "role": "assistant",
            "content": "Check the medical index too.",
            "tool_calls": [
                tool_call("c3", "medical_retriever", {"query": "Fabry disease", "k": 5})
            ],
        },
        {"role": "tool", "tool_call_id": "c3", "content": "1. Fabry disease [ORPHA:324]"},
        {
            "role": "assistant",
            "content": "Both sources agree.\n<answer>Fabry disease</answer>",
            "reasoning_content": "Every source points at Fabry disease.",
        },
    ]


def chinese_messages() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "你是医学研究助手。"},
        {"role": "user", "content": "哪种疾病表现为血管角化瘤？"},
        {
            "role": "assistant",
            "content": "先检索医学索引。",
            "reasoning_content": "血管角化瘤提示溶酶体贮积病。",
            "tool_calls": [tool_call("z1", "medical_retriever", {"query": "血管角化瘤 疾病"})],
        },
        {"role": "tool", "tool_call_id": "z1", "content": "1. 法布里病 [ORPHA:324]"},
        {"role": "assistant", "content": "证据一致。\n<answer>法布里病</answer>"},
    ]


def trajectory(tid: str, qa_id: str | None, messages: list[dict[str, Any]], **extra: Any):
    fields: dict[str, Any] = {
        "id": tid,
        "qa_id": qa_id,
        "policy": "llm:agent",
        "guidance": "mtg",
        "question": next(m["content"] for m in messages if m["role"] == "user"),
        "messages": messages,
        "tools": TOOLS,
        "final_answer": "Fabry disease",
        "termination": "answer",
        "stats": {"generation": {"guidance": GUIDANCE, "guidance_placement": "system"}},
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    fields.update(extra)
    return Trajectory(**fields)


def qa(qa_id: str, question: str, answer: str, language: str = "en") -> QARecord:
    return demo_qa(qa_id, question, answer, answer_aliases=[f"{answer} (alias)"], language=language)


def forced_answer_messages() -> list[dict[str, Any]]:
    messages = english_messages("Which enzyme is missing in Fabry disease?")[:5]
    messages.append({"role": "user", "content": "Budget spent: answer now."})
    messages.append({"role": "assistant", "content": "<answer>alpha-galactosidase A</answer>"})
    return messages


def guided_system_messages() -> list[dict[str, Any]]:
    messages = english_messages("Which disease is it, guided?")
    messages[0] = {"role": "system", "content": SYSTEM + "\n\n" + GUIDANCE}
    return messages


def double_encoded_messages() -> list[dict[str, Any]]:
    messages = english_messages("Which disease, double encoded?")
    twice = json.dumps(json.dumps({"query": "Fabry disease", "k": 5}))
    messages[5]["tool_calls"] = [tool_call("c3", "medical_retriever", twice)]
    return messages


RECORDS = [
    trajectory("T:en", "Q:en", english_messages()),
    trajectory("T:en-2", "Q:en", english_messages(), rollout=1),
    trajectory("T:zh", "Q:zh", chinese_messages()),
    trajectory("T:forced", "Q:forced", forced_answer_messages(), termination="max_turns"),
    trajectory("T:noqa", "Q:unknown", english_messages("A question without its record?")),
    trajectory(
        "T:rejected",
        "Q:en",
        english_messages(),
        rollout=2,
        filters={"passed": False, "reasons": [{"rule": "judge_correct", "detail": "wrong"}]},
    ),
    trajectory("T:leaky", "Q:en", guided_system_messages(), rollout=3),
    trajectory("T:twice", "Q:en", double_encoded_messages(), rollout=4),
]
QA = [
    qa("Q:en", "Which disease fits angiokeratoma?", "Fabry disease"),
    qa("Q:zh", "哪种疾病表现为血管角化瘤？", "法布里病", "zh"),
    qa("Q:forced", "Which enzyme is missing in Fabry disease?", "alpha-galactosidase A"),
]
EXPORTED = ["T:en", "T:en-2", "T:zh", "T:forced", "T:noqa"]


@pytest.fixture(scope="module", params=["separate", "inline"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp(f"export-{request.param}")
    paths = export_trajectories(RECORDS, QA, out, think=request.param, name="medresearcher_t")
    return request.param, out, paths


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def all_calls(messages: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for message in messages:
        yield from message.get("tool_calls") or []


# ---------------------------------------------------------------- round trips


def test_every_format_is_written_with_its_rows_and_skip_reasons(exported) -> None:
    _, out, paths = exported
    assert set(paths) == set(FORMATS)
    assert all(path.is_file() for path in paths.values())
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["trajectories"] == len(RECORDS)
    assert manifest["exported"] == len(EXPORTED)
    assert manifest["skipped"] == {
        "rejected_by_filters": 1,
        "guidance_in_messages": 1,
        "bad_arguments": 1,
    }
    rows = {fmt: info["rows"] for fmt, info in manifest["formats"].items()}
    assert rows == {"openai": 5, "sharegpt": 4, "verl-sft": 5, "text": 5, "verl-rl": 3}
    assert manifest["formats"]["sharegpt"]["skipped"] == {"sharegpt_turn_order": 1}
    assert manifest["formats"]["verl-rl"]["skipped"] == {"qa_record_missing": 1}
    assert [row["id"] for row in jsonl(paths["openai"])] == EXPORTED
    assert not list(out.glob(".*.tmp"))


def test_rendering_the_openai_export_gives_the_text_export(exported) -> None:
    _, _, paths = exported
    texts = {row["id"]: row["text"] for row in jsonl(paths["text"])}
    rows = jsonl(paths["openai"])
    assert len(texts) == len(rows)
    for row in rows:
        assert render_qwen25(row["messages"], row["tools"]) == texts[row["id"]]
    english = texts["T:en"]
    assert english.startswith("<|im_start|>system\n" + SYSTEM + "\n\n# Tools\n")
    # Hermes-style parallel calls, dict arguments, and both results in one user turn.
    assert (
        '<tool_call>\n{"name": "web_search", "arguments": {"queries": '
        '["angiokeratoma <disease> & enzyme"]}}\n</tool_call>\n<tool_call>\n'
        '{"name": "document_read", "arguments": {"url_or_id": "ORPHA:324", "goal": '
        '"key signs"}}\n</tool_call><|im_end|>' in english
    )
    assert (
        "<|im_start|>user\n<tool_response>\n[1] Fabry disease — corpus://ORPHA:324\n"
        "</tool_response>\n<tool_response>\nFabry disease: angiokeratoma.\n"
        "</tool_response><|im_end|>" in english
    )
    assert english.endswith("<answer>Fabry disease</answer><|im_end|>\n")
    assert "法布里病" in texts["T:zh"] and "\\u" not in texts["T:zh"]


def test_the_renderer_matches_transformers_apply_chat_template() -> None:
    utils = pytest.importorskip("transformers.utils.chat_template_utils")
    for messages in (english_messages(), chinese_messages()):
        expected = utils.render_jinja_template(
            [template_ready(messages)], tools=TOOLS, chat_template=qwen25_template_source()
        )[0][0]
        assert render_qwen25(messages, TOOLS) == expected


def test_no_argument_is_double_encoded(exported) -> None:
    _, out, paths = exported
    stored = [m for row in jsonl(paths["openai"]) for m in row["messages"]]
    stored += [m for row in read_verl_sft(paths["verl-sft"]) for m in row["messages"]]
    arguments = [c["function"]["arguments"] for c in all_calls(stored)]
    assert len(arguments) == 2 * (3 + 3 + 1 + 2 + 3)  # calls of the 5 exported, in 2 files
    for text in arguments:
        assert isinstance(text, str)
        assert isinstance(json.loads(text), dict)
    for row in jsonl(paths["text"]):
        assert '"arguments": "' not in row["text"]
        turns = row["text"].split("<|im_end|>", 1)[1]  # after the system turn's instructions
        assert turns.count('"arguments": {') == turns.count("<tool_call>") > 0
    for row in jsonl(paths["sharegpt"]):
        for turn in row["conversations"]:
            if turn["from"] == "function_call":
                payload = json.loads(turn["value"].split("\n</think>\n\n")[-1])
                for item in payload if isinstance(payload, list) else [payload]:
                    assert isinstance(item["arguments"], dict)
    # The record whose stored arguments were encoded twice was refused, not repaired.
    assert "T:twice" not in (out / "openai.jsonl").read_text(encoding="utf-8")


def test_parquet_read_back_keeps_each_calls_own_argument_keys(exported) -> None:
    _, _, paths = exported
    originals = {row["id"]: row for row in jsonl(paths["openai"])}
    table = pq.read_table(paths["verl-sft"])
    assert table.num_rows == len(originals)
    for row in table.to_pylist():
        for got, want in zip(
            all_calls(row["messages"]), all_calls(originals[row["id"]]["messages"]), strict=True
        ):
            got_args = json.loads(got["function"]["arguments"])
            assert set(got_args) == set(json.loads(want["function"]["arguments"]))
            assert None not in got_args.values()
        messages, tools = decode_verl_sft_row(row)
        assert messages == originals[row["id"]]["messages"]
        assert tools == TOOLS
    keys = [
        set(json.loads(c["function"]["arguments"]))
        for row in table.to_pylist()
        for c in all_calls(row["messages"])
    ]
    assert {"queries"} in keys and {"url_or_id", "goal"} in keys and {"query", "k"} in keys


def test_dict_arguments_in_parquet_would_merge_keys_which_is_why_they_are_strings(
    tmp_path: Path,
) -> None:
    rows = [
        {"calls": [{"name": "web_search", "arguments": {"queries": ["a"]}}]},
        {"calls": [{"name": "document_read", "arguments": {"url_or_id": "x", "goal": "y"}}]},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "naive.parquet")
    back = pq.read_table(tmp_path / "naive.parquet").to_pylist()
    assert back[0]["calls"][0]["arguments"] == {"queries": ["a"], "url_or_id": None, "goal": None}


def test_sharegpt_rows_and_dataset_info_agree(exported) -> None:
    _, out, paths = exported
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    entry = info["medresearcher_t"]
    assert (out / entry["file_name"]).resolve() == paths["sharegpt"].resolve()
    assert entry["formatting"] == "sharegpt"
    columns, tags = entry["columns"], entry["tags"]
    rows = {row["id"]: row for row in jsonl(paths["sharegpt"])}
    assert list(rows) == ["T:en", "T:en-2", "T:zh", "T:noqa"]  # T:forced cannot alternate
    odd = (tags["user_tag"], tags["observation_tag"])
    even = (tags["assistant_tag"], tags["function_tag"])
    for row in rows.values():
        turns = row[columns["messages"]]
        assert len(turns) % 2 == 0
        for index, turn in enumerate(turns):
            assert set(turn) == {tags["role_tag"], tags["content_tag"]}
            assert turn["from"] in (odd if index % 2 == 0 else even)
        assert json.loads(row[columns["tools"]]) == TOOLS
        assert isinstance(row[columns["system"]], str) and row[columns["system"]]
    english = rows["T:en"]["conversations"]
    assert english[0] == {"from": "human", "value": "Which disease fits angiokeratoma?"}
    first_call = english[1]["value"]
    assert first_call.startswith("<think>\n" + REASONING + "\n\nI will search broadly")
    thought = re.search(r"<think>\n(.*?)\n</think>\n\n", first_call, re.DOTALL)
    assert thought is not None
    calls = json.loads(first_call.replace(thought.group(0), ""))
    assert calls == [
        {"name": "web_search", "arguments": {"queries": ["angiokeratoma <disease> & enzyme"]}},
        {"name": "document_read", "arguments": {"url_or_id": "ORPHA:324", "goal": "key signs"}},
    ]
    assert english[2] == {
        "from": "observation",
        "value": "[1] Fabry disease — corpus://ORPHA:324\n</tool_response>\n<tool_response>\n"
        "Fabry disease: angiokeratoma.",
    }
    assert english[-1]["from"] == "gpt"
    assert english[-1]["value"].startswith("<think>\nEvery source points at Fabry disease.")


def test_dataset_info_keeps_the_other_datasets_it_lists(tmp_path: Path) -> None:
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "a.json"}}))
    export_trajectories(RECORDS[:1], None, tmp_path, ["sharegpt"], name="ours")
    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {"mine", "ours"}


def test_verl_rl_rows_take_the_gold_answer_from_the_qa_record(exported) -> None:
    _, _, paths = exported
    rows = pq.read_table(paths["verl-rl"]).to_pylist()
    by_qa = {row["extra_info"]["qa_id"]: row for row in rows}
    assert list(by_qa) == ["Q:en", "Q:zh", "Q:forced"]  # one row per question
    gold = {record.id: record for record in QA}
    for index, row in enumerate(rows):
        record = gold[row["extra_info"]["qa_id"]]
        assert row["reward_model"] == {"style": "rule", "ground_truth": record.answer}
        assert row["extra_info"]["index"] == index
        assert row["extra_info"]["answer_aliases"] == record.answer_aliases
        assert row["extra_info"]["paradigm"] == record.paradigm
        assert row["extra_info"]["cheat_sheet"] == record.cheat_sheet
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["prompt"][1]["content"] == record.question
        assert json.loads(row["extra_info"]["tools"]) == TOOLS
        assert set(row["extra_info"]["tools_kwargs"]) == {
            "web_search",
            "document_read",
            "medical_retriever",
        }
        assert row["data_source"] and row["ability"] and row["agent_name"] == "tool_agent"
    assert by_qa["Q:en"]["extra_info"]["trajectory_ids"] == ["T:en", "T:en-2"]
    assert by_qa["Q:zh"]["reward_model"]["ground_truth"] == "法布里病"


def test_verl_rl_needs_the_qa_records(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="QA records"):
        export_trajectories(RECORDS, None, tmp_path, ["verl-rl"])
    with pytest.raises(InputError, match="unknown export format"):
        export_trajectories(RECORDS, QA, tmp_path, ["openai", "alpaca"])


# ---------------------------------------------------------------- reasoning and guidance


def test_reasoning_is_kept_apart_or_inlined_as_think(exported) -> None:
    think, out, paths = exported
    english = next(row for row in jsonl(paths["openai"]) if row["id"] == "T:en")
    first = english["messages"][2]
    text = next(row["text"] for row in jsonl(paths["text"]) if row["id"] == "T:en")
    sft = next(row for row in read_verl_sft(paths["verl-sft"]) if row["id"] == "T:en")
    notes = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["notes"]
    if think == "separate":
        assert first["reasoning_content"] == REASONING
        assert first["content"] == "I will search broadly and read the GLA record at once."
        assert sft["messages"][2]["reasoning_content"] == REASONING
        assert REASONING not in text  # the Qwen2.5 template has no place for it …
        assert any("no place for reasoning_content" in note for note in notes)  # … and says so
    else:
        assert "reasoning_content" not in first
        assert first["content"] == (
            f"<think>\n{REASONING}\n</think>\n\nI will search broadly and read the GLA record "
            "at once."
        )
        assert "reasoning_content" not in sft["messages"][2]
        assert f"<|im_start|>assistant\n<think>\n{REASONING}\n</think>\n\nI will" in text
        assert not any("no place for reasoning_content" in note for note in notes)
    assert "<think>" not in english["messages"][1]["content"]


def test_the_mtg_scaffold_never_reaches_an_export(exported) -> None:
    _, out, _ = exported
    lines = [line for line in GUIDANCE.splitlines() if len(line) > 20]
    for path in out.iterdir():
        if path.suffix == ".parquet":
            content = json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False)
        else:
            content = path.read_text(encoding="utf-8")
        for line in lines:
            assert line not in content and json.dumps(line)[1:-1] not in content, path.name


def test_chinese_text_is_written_as_characters(exported) -> None:
    _, _, paths = exported
    for fmt in ("openai", "sharegpt", "text"):
        raw = paths[fmt].read_text(encoding="utf-8")
        assert "法布里病" in raw and "血管角化瘤" in raw
    zh = next(r for r in read_verl_sft(paths["verl-sft"]) if r["id"] == "T:zh")
    assert json.loads(zh["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {
        "query": "血管角化瘤 疾病"
    }


def test_a_failed_export_leaves_the_previous_files_whole(tmp_path: Path) -> None:
    export_trajectories(RECORDS[:1], QA, tmp_path, ["openai", "verl-sft"])
    before = (tmp_path / "openai.jsonl").read_bytes(), (tmp_path / "verl_sft.parquet").read_bytes()

    def broken() -> Iterator[Trajectory]:
        yield RECORDS[2]
        raise RuntimeError("the input broke")

    with pytest.raises(RuntimeError, match="the input broke"):
        export_trajectories(broken(), QA, tmp_path, ["openai", "verl-sft"])
    after = (tmp_path / "openai.jsonl").read_bytes(), (tmp_path / "verl_sft.parquet").read_bytes()
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "card.json",
        "card.md",
        "manifest.json",
        "openai.jsonl",
        "verl_sft.parquet",
    ]


# ---------------------------------------------------------------- the command


def _cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context, workspace: Annotated[Path, typer.Option("-w")]) -> None:
        ctx.obj = CliState(workspace=workspace)

    app.command("export")(export)
    return app


def test_traj_export_prefers_the_filtered_file_and_prints_a_table(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "trajectories").mkdir(parents=True)
    raw = "".join(t.model_dump_json() + "\n" for t in RECORDS)
    (ws / "trajectories" / "run1.jsonl").write_text(raw, encoding="utf-8")
    (ws / "trajectories" / "run1.filtered.jsonl").write_text(
        RECORDS[0].model_dump_json() + "\n" + RECORDS[2].model_dump_json() + "\n",
        encoding="utf-8",
    )
    (ws / "qa.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in QA), "utf-8")
    runner = CliRunner()
    result = runner.invoke(_cli_app(), ["-w", str(ws), "export", "run1"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "verl_rl.parquet" in result.output and "dataset_info.json" in result.output
    assert "2 of 2 trajectories" in result.output
    out = ws / "export" / "run1"
    assert [row["id"] for row in jsonl(out / "openai.jsonl")] == ["T:en", "T:zh"]
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert list(info) == ["medresearcher_run1"]

    result = runner.invoke(
        _cli_app(),
        ["-w", str(ws), "export", "run1", "--input", "raw", "--format", "openai,text"],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "5 of 8 trajectories" in result.output
    assert "guidance_in_messages 1" in result.output


def test_traj_export_rejects_an_unknown_format_and_a_missing_qa_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "trajectories").mkdir(parents=True)
    (ws / "trajectories" / "r.jsonl").write_text(RECORDS[0].model_dump_json() + "\n", "utf-8")
    runner = CliRunner()
    result = runner.invoke(_cli_app(), ["-w", str(ws), "export", "r", "--format", "alpaca"])
    assert result.exit_code != 0 and "--format" in result.output
    result = runner.invoke(_cli_app(), ["-w", str(ws), "export", "r", "--format", "verl-rl"])
    assert isinstance(result.exception, InputError)
    assert "qa.jsonl does not exist" in str(result.exception)
    result = runner.invoke(_cli_app(), ["-w", str(ws), "export", "r", "--input", "filtered"])
    assert isinstance(result.exception, InputError)
    assert "traj filter" in str(result.exception)
