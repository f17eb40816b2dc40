"""Dataset card and thought-before-call in exports (issue 15 items 1 and 4)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from medresearcher.config import EndpointSettings, Settings
from medresearcher.schema import QARecord, Trajectory
from medresearcher.synthesis.card import NOT_CHECKED, dataset_card
from medresearcher.synthesis.export import FORMATS, export_trajectories
from medresearcher.synthesis.export_verl import read_verl_sft
from medresearcher.synthesis.filters import FilterConfig, apply_filters, thought_before_call
from medresearcher.workspace import Run, Workspace

RUN = "llm-agent"
SECRET = "sk-card-test-0123456789abcdef"
ORPHANET_CREDIT = (
    "Source: Orphanet / ORPHApackets, release December 2025 (www.orpha.net), CC BY 4.0. "
    "The records here are derived (re-formatted) from it."
)
TOOLS = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
    for n in ("web_search", "medical_retriever")
]


def call(call_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def messages(thought: str, reasoning: str | None = None) -> list[dict[str, Any]]:
    first: dict[str, Any] = {
        "role": "assistant",
        "content": thought,
        "tool_calls": [call("c1", "medical_retriever", {"query": "angiokeratoma"})],
    }
    if reasoning:
        first["reasoning_content"] = reasoning
    return [
        {"role": "system", "content": "You are a medical research agent."},
        {"role": "user", "content": "Which disease fits angiokeratoma?"},
        first,
        {"role": "tool", "tool_call_id": "c1", "content": "1. Fabry disease [ORPHA:324]"},
        {
            "role": "assistant",
            "content": "Search the web too.",
            "tool_calls": [call("c2", "web_search", {"queries": ["Fabry"]})],
        },
        {"role": "tool", "tool_call_id": "c2", "content": "Error: timeout"},
        {"role": "assistant", "content": "<answer>Fabry disease</answer>"},
    ]


def trajectory(tid: str, qa_id: str, msgs: list[dict[str, Any]], **extra: Any) -> Trajectory:
    fields: dict[str, Any] = {
        "id": tid,
        "qa_id": qa_id,
        "policy": "llm:agent",
        "question": "Which disease fits angiokeratoma?",
        "messages": msgs,
        "tools": TOOLS,
        "final_answer": "Fabry disease",
        "termination": "answer",
        "usage": {"model": "qwen-card", "calls": 3},
        "created_at": "2026-01-01T00:00:00+00:00",
        **extra,
    }
    return Trajectory(**fields)


def qa(qa_id: str, hops: int, paradigm: str, specialties: list[str]) -> QARecord:
    return QARecord(
        id=qa_id,
        question=f"question {qa_id}",
        answer="Fabry disease",
        chain=["ORPHA:324"],
        sample_id=f"S:{qa_id}",
        strategy="random_walk",
        hops=hops,
        paradigm=paradigm,  # type: ignore[arg-type]
        specialties=specialties,
        created_at="2026-01-01T00:00:00+00:00",
    )


QA = [
    qa("Q1", 2, "identify", ["genetics", "nephrology"]),
    qa("Q2", 3, "identify", ["neurology"]),
    qa("Q3", 2, "attribute", ["genetics"]),
]
CONFIG = FilterConfig(rules=["thought_before_call", "calls_paired"])


def _filtered(t: Trajectory) -> Trajectory:
    return apply_filters(t, None, CONFIG)


TRAJECTORIES = [
    _filtered(
        trajectory("T1", "Q1", messages("I search the medical index first."), guidance="mtg")
    ),
    _filtered(trajectory("T2", "Q1", messages("Look up the index."), rollout=1)),
    # The thought is only in reasoning_content: the text export must still show it.
    _filtered(
        trajectory(
            "T3",
            "Q2",
            messages("", reasoning="Angiokeratoma suggests a lysosomal disease."),
            stats={"augmented": {"method": "replace"}},
        )
    ),
    _filtered(trajectory("T4", "Q3", messages("Check the index."), guidance="mtg")),
    _filtered(trajectory("T5", "Q3", messages(""))),  # a bare call: rejected, not exported
]
EXPORTED_IDS = ["T1", "T2", "T3", "T4"]


def _settings(ws: Path) -> Settings:
    endpoint = EndpointSettings(
        base_url="http://llm.example:8000/v1", model="qwen-card", api_key_env="CARD_TEST_KEY"
    )
    return Settings(workspace=ws, llm={"agent": endpoint})


def _record(ws: Workspace, settings: Settings, command: str, argv: list[str], **extra: Any) -> str:
    with Run(ws, command, settings, argv=argv) as run:
        run.manifest.update(extra)
        if "usage" in extra:
            run.record_usage(extra["usage"])
    return run.run_id


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    mp = pytest.MonkeyPatch()
    mp.setenv("CARD_TEST_KEY", SECRET)
    root = tmp_path_factory.mktemp("ws")
    ws = Workspace(root).ensure()
    settings = _settings(root)
    usage = {
        "agent": {"model": "qwen-card", "calls": 12, "total_tokens": 3400},
        "total": {"calls": 12, "total_tokens": 3400},
    }
    runs = {
        "qa": _record(ws, settings, "qa-generate-template", ["medresearcher", "qa", "generate"]),
        "generate": _record(
            ws,
            settings,
            "traj-generate-llm",
            ["medresearcher", "traj", "generate", "--policy", "llm", "--run", RUN],
            params={"output": str(ws.trajectories_path(RUN))},
            usage=usage,
        ),
        "filter": _record(ws, settings, "traj-filter", ["medresearcher", "traj", "filter", RUN]),
        "other": _record(ws, settings, "traj-filter", ["medresearcher", "traj", "filter", "x"]),
    }
    out = ws.export_dir / RUN
    paths = export_trajectories(iter(TRAJECTORIES), QA, out, FORMATS)
    mp.undo()
    return {"ws": root, "out": out, "paths": paths, "runs": runs}


def _card(out: Path) -> dict[str, Any]:
    return json.loads((out / "card.json").read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- thought before call


def test_a_bare_tool_call_fails_the_thought_rule() -> None:
    bare = trajectory("B", "Q1", messages(""))
    assert thought_before_call(bare) is not None
    assert "turn 1 (medical_retriever)" in thought_before_call(bare)
    verdict = apply_filters(bare, None, CONFIG).filters
    assert verdict["passed"] is False
    assert [r["rule"] for r in verdict["reasons"]] == ["thought_before_call"]
    thought_only_in_think_tags = trajectory("C", "Q1", messages("<think></think>"))
    assert thought_before_call(thought_only_in_think_tags) is not None
    assert thought_before_call(TRAJECTORIES[0]) is None
    assert thought_before_call(TRAJECTORIES[2]) is None  # reasoning_content counts


def _thoughts(tid: str) -> list[str]:
    source = next(t for t in TRAJECTORIES if t.id == tid)
    return [
        (m.get("content") or m.get("reasoning_content")).strip()
        for m in source.messages
        if m.get("tool_calls")
    ]


@pytest.mark.parametrize("tid", EXPORTED_IDS)
def test_every_format_keeps_the_thought_before_each_call(exported, tid: str) -> None:
    paths = exported["paths"]
    thoughts = _thoughts(tid)
    # OpenAI / TRL and verl-sft: content (or reasoning_content) beside tool_calls.
    openai = next(r for r in _jsonl(paths["openai"]) if r["id"] == tid)
    sft = next(r for r in read_verl_sft(paths["verl-sft"]) if r["id"] == tid)
    for rows in (openai["messages"], sft["messages"]):
        calling = [m for m in rows if m.get("tool_calls")]
        assert [m["content"] or m.get("reasoning_content") for m in calling] == thoughts
    # ShareGPT: inside the function_call turn, between LLaMA-Factory's thought words.
    share = next(r for r in _jsonl(paths["sharegpt"]) if r["id"] == tid)
    values = [t["value"] for t in share["conversations"] if t["from"] == "function_call"]
    assert len(values) == len(thoughts)
    for value, thought in zip(values, thoughts, strict=True):
        match = re.match(r"<think>\n(.*)\n</think>\n\n(\{.*\})$", value, re.DOTALL)
        assert match and match.group(1) == thought
        json.loads(match.group(2))
    # text: each thought rendered in its turn, before that turn's <tool_call>.
    text = next(r["text"] for r in _jsonl(paths["text"]) if r["id"] == tid)
    turns = [t for t in text.split("<|im_start|>assistant\n")[1:] if "<tool_call>" in t]
    assert len(turns) == len(thoughts)
    for turn, thought in zip(turns, thoughts, strict=True):
        assert thought in turn.split("<tool_call>", 1)[0]


def test_the_text_export_says_which_thoughts_it_moved(exported) -> None:
    manifest = json.loads((exported["out"] / "manifest.json").read_text(encoding="utf-8"))
    assert any("1 tool-calling turns" in note for note in manifest["notes"])
    assert manifest["files"]["card"] == "card.md"


# ---------------------------------------------------------------- the card


def test_the_card_numbers_equal_the_export(exported) -> None:
    out, paths = exported["out"], exported["paths"]
    card = _card(out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    on_disk = {
        "openai": len(_jsonl(paths["openai"])),
        "sharegpt": len(_jsonl(paths["sharegpt"])),
        "text": len(_jsonl(paths["text"])),
        "verl-sft": pq.read_table(paths["verl-sft"]).num_rows,
        "verl-rl": pq.read_table(paths["verl-rl"]).num_rows,
    }
    assert (
        card["counts"]["rows"] == on_disk == {f: i["rows"] for f, i in manifest["formats"].items()}
    )
    assert on_disk["openai"] == 4 and on_disk["verl-rl"] == 3
    assert card["counts"]["trajectories_read"] == 5
    assert card["counts"]["trajectories_exported"] == 4
    assert card["counts"]["not_exported"] == {"rejected_by_filters": 1}
    assert card["counts"]["qa_items"] == 3
    # Shares recomputed from the exported file.
    ids = [row["id"] for row in _jsonl(paths["openai"])]
    assert ids == EXPORTED_IDS
    by_id = {t.id: t for t in TRAJECTORIES}
    qa_by_id = {r.id: r for r in QA}
    picked = [by_id[i] for i in ids]
    expected = {
        "specialty": Counter(s for t in picked for s in qa_by_id[t.qa_id].specialties),
        "paradigm": Counter(qa_by_id[t.qa_id].paradigm for t in picked),
        "hops": Counter(str(qa_by_id[t.qa_id].hops) for t in picked),
        "guidance": Counter(t.guidance for t in picked),
        "augmented": Counter("yes" if t.stats.get("augmented") else "no" for t in picked),
    }
    for key, counter in expected.items():
        got = card["shares"][key]
        assert {k: v["count"] for k, v in got.items()} == dict(counter), key
        assert {k: v["share"] for k, v in got.items()} == {
            k: round(n / len(ids), 4) for k, n in counter.items()
        }
    assert card["shares"]["guidance"]["mtg"]["count"] == 2
    # Filters from the verdicts the input carried; behaviour from the exported ones.
    assert card["filters"]["checked"] == 5 and card["filters"]["rejected"] == 1
    assert card["filters"]["rejected_by_rule"] == {"thought_before_call": 1}
    assert card["behaviour"]["trajectories"] == 4
    assert card["behaviour"]["tool_calls_total"] == 8
    assert card["behaviour"]["with_errors"] == 1.0
    assert card["behaviour"]["start_medical_retriever"] == 1.0
    md = (out / "card.md").read_text(encoding="utf-8")
    assert "| openai | 4 |" in md and "| verl-rl | 3 |" in md


def test_sources_endpoints_and_no_secrets(exported) -> None:
    out = exported["out"]
    card = _card(out)
    assert ORPHANET_CREDIT in [s["credit"] for s in card["sources"]]
    md = (out / "card.md").read_text(encoding="utf-8")
    assert ORPHANET_CREDIT in md
    assert "Research software, not clinical advice." in md
    (agent,) = card["endpoints"]
    assert agent["model"] == "qwen-card" and agent["host"] == "llm.example:8000"
    assert agent["runs"] == [exported["runs"]["generate"]]
    assert agent["calls"] == 12 and agent["trajectories"] == 4
    raw = (out / "card.json").read_text(encoding="utf-8") + md
    assert SECRET not in raw


def test_the_commands_section_lists_the_recorded_commands(exported) -> None:
    out, runs = exported["out"], exported["runs"]
    listed = {c["run_id"]: c for c in _card(out)["commands"]}
    assert {runs["qa"], runs["generate"], runs["filter"]} <= set(listed)
    assert runs["other"] not in listed  # another trajectory run's filter
    assert listed[runs["filter"]]["argv"] == ["medresearcher", "traj", "filter", RUN]
    md = (out / "card.md").read_text(encoding="utf-8")
    assert f"`medresearcher traj generate --policy llm --run {RUN}`" in md


def test_decontamination_not_checked_then_reported(exported) -> None:
    out, ws = exported["out"], exported["ws"]
    card = _card(out)
    assert card["decontamination"]["status"] == NOT_CHECKED
    assert "not checked" in (out / "card.md").read_text(encoding="utf-8")

    folder = ws / "decontamination"
    folder.mkdir()
    unrelated = {"against": {"gaia": {"checked": 3, "flagged": 0, "flagged_ids": []}}}
    (folder / "other-run.json").write_text(json.dumps(unrelated), encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    again = dataset_card(TRAJECTORIES, QA, manifest, workspace=ws, run=RUN)
    assert again.decontamination.status == NOT_CHECKED

    report = {
        "train": str(ws / "qa.jsonl"),
        "against": {"medbrowsecomp": {"checked": 3, "flagged": 1, "flagged_ids": ["Q2"]}},
    }
    (folder / "qa.json").write_text(json.dumps(report), encoding="utf-8")
    checked = dataset_card(TRAJECTORIES, QA, manifest, workspace=ws, run=RUN)
    assert checked.decontamination.status == "checked"
    (found,) = checked.decontamination.reports
    assert found["against"]["medbrowsecomp"]["flagged_ids"] == ["Q2"]
    # Found by a flagged id too, whatever the file is called.
    (folder / "qa.json").rename(folder / "elsewhere.json")
    assert dataset_card(TRAJECTORIES, QA, manifest, workspace=ws, run=RUN).decontamination.reports


def test_an_export_outside_a_workspace_still_writes_a_card(tmp_path: Path) -> None:
    export_trajectories(TRAJECTORIES[:2], None, tmp_path, ["openai"])
    card = _card(tmp_path)
    assert card["counts"]["rows"] == {"openai": 2}
    assert card["commands"] == [] and card["decontamination"]["status"] == NOT_CHECKED
    assert card["shares"]["specialty"] == {"unknown": {"count": 2, "share": 1.0}}
