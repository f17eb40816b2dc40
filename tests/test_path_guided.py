"""The offline path-guided policy (issue 8 §3) on the tiny workspace, with the real tools.

A handful of template questions is written and followed once per module; the tests read those
trajectories for correctness, pairing of calls and results, non-empty thoughts and leaks, and
craft records whose chains the tools cannot show.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medresearcher.agent import run_agent
from medresearcher.agent.path_guided import policy_for
from medresearcher.config import Settings
from medresearcher.data import bundle_dir, iter_documents
from medresearcher.grading.rules import grade_by_rules
from medresearcher.kg import GraphStore
from medresearcher.kg.io import import_records
from medresearcher.qa.batch import QABatchOptions, generate_qa
from medresearcher.qa.checks import leaked_names
from medresearcher.retrieval import build_index
from medresearcher.sampling import GraphView
from medresearcher.schema import Entity, QARecord, Trajectory
from medresearcher.tools import build_toolbox
from medresearcher.workspace import JsonlWriter, Workspace, read_jsonl
from tests.test_cli import cli

N_QUESTIONS = 8


@dataclass
class Tiny:
    folder: Path  # the CLI runs here: ./workspace is the workspace
    ws: Workspace
    settings: Settings
    store: GraphStore
    runs: list[tuple[QARecord, Trajectory]]


def follow(
    record: QARecord,
    settings: Settings,
    ws: Workspace,
    *,
    tools: Sequence[str] | None = None,
) -> Trajectory:
    """One path-guided run over the workspace's real tools."""

    async def go() -> Trajectory:
        toolbox = build_toolbox(settings, ws, names=tools)
        try:
            return await run_agent(
                record.question,
                policy=policy_for(record, settings, tool_names=tools),
                toolbox=toolbox,
                limits=settings.agent.model_copy(update={"max_turns": 24}),
                qa_id=record.id,
            )
        finally:
            await toolbox.aclose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiny]:
    folder = tmp_path_factory.mktemp("path-guided")
    ws = Workspace(folder / "workspace").ensure()
    store = GraphStore(ws.kg_path)
    import_records(store, bundle_dir("tiny"))
    build_index(iter_documents("tiny"), ws.index_dir)
    anchors = sorted(
        e.id for e in store.iter_entities() if e.id.startswith("ORPHA:") and e.attrs.get("rare")
    )
    with JsonlWriter(ws.qa_path) as out:
        options = QABatchOptions(n=N_QUESTIONS, workers=4)
        asyncio.run(generate_qa(store, GraphView.from_store(store), anchors, options, out=out))
    settings = Settings(workspace=ws.root)
    records = list(read_jsonl(ws.qa_path, QARecord))
    assert len(records) == N_QUESTIONS
    runs = [(record, follow(record, settings, ws)) for record in records]
    yield Tiny(folder, ws, settings, store, runs)
    store.close()


def _names(store: GraphStore, entity_id: str) -> list[str]:
    entity = store.entity(entity_id)
    return [entity.name, *entity.aliases] if entity else [entity_id]


def _arguments(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        call["id"]: json.loads(call["function"]["arguments"])
        for call in message.get("tool_calls") or []
    }


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _named_before_shown(
    record: QARecord, trajectory: Trajectory, store: GraphStore, *, without_echo: bool
) -> list[str]:
    """Chain entities an assistant turn names before the question or a tool result showed them.

    Turns that say they follow the guidance may name what the guidance gives. With
    ``without_echo``, what a tool result repeats of its own call's arguments (the query in a
    search header, the goal of a read) does not count as showing anything.
    """
    entities = {e: _names(store, e) for e in dict.fromkeys(record.chain[0::2])}
    shown = record.question
    arguments: dict[str, dict[str, Any]] = {}
    leaks = []
    for number, message in enumerate(trajectory.messages):
        content = str(message.get("content") or "")
        if message["role"] == "tool":
            if without_echo:
                for echoed in _strings(arguments.get(message["tool_call_id"], {})):
                    content = content.replace(echoed, " ", 1)
            shown += "\n" + content
        elif message["role"] == "assistant":
            arguments.update(_arguments(message))
            if "guidance" in content.lower():
                continue
            for entity_id, names in entities.items():
                if leaked_names(content, names) and not leaked_names(shown, names):
                    leaks.append(f"message {number} names {entity_id} {names[0]!r}: {content!r}")
    return leaks


# -- runs on generated questions ---------------------------------------------------------------


def test_answers_are_correct_and_failures_say_why(tiny: Tiny) -> None:
    answered = 0
    for record, trajectory in tiny.runs:
        assert trajectory.policy == "path_guided" and trajectory.qa_id == record.id
        assert trajectory.termination in ("answer", "error"), trajectory.termination_detail
        if trajectory.termination == "answer":
            verdict = grade_by_rules(trajectory.final_answer, record.answer, record.answer_aliases)
            assert verdict.correct, (record.id, trajectory.final_answer, record.answer)
            answered += 1
        else:
            assert trajectory.final_answer is None
            assert trajectory.termination_detail.startswith(f"QA record {record.id}: ")
    assert answered >= 1


def test_every_call_has_one_result_and_a_thought(tiny: Tiny) -> None:
    for _, trajectory in tiny.runs:
        calls: list[str] = []
        for message in trajectory.messages:
            if message["role"] == "assistant" and message.get("tool_calls"):
                assert str(message.get("content") or "").strip(), message
                calls += [call["id"] for call in message["tool_calls"]]
        results = [m["tool_call_id"] for m in trajectory.messages if m["role"] == "tool"]
        assert calls and len(set(calls)) == len(calls)
        assert sorted(results) == sorted(calls)  # exactly one result per call, nothing else
        assert trajectory.stats["tool_calls"] == len(calls)


def test_no_chain_entity_is_named_before_a_tool_showed_it(tiny: Tiny) -> None:
    for record, trajectory in tiny.runs:
        assert _named_before_shown(record, trajectory, tiny.store, without_echo=False) == []


def test_an_entity_is_found_only_in_evidence_not_in_the_echo_of_the_query(tiny: Tiny) -> None:
    leaks = [
        leak
        for record, trajectory in tiny.runs
        for leak in _named_before_shown(record, trajectory, tiny.store, without_echo=True)
    ]
    assert leaks == []


# -- crafted failures --------------------------------------------------------------------------


def _mentions(text: str, entity: Entity) -> bool:
    return bool(leaked_names(text, [entity.id, entity.name, *entity.aliases]))


def _unreachable_record(tiny: Tiny) -> tuple[QARecord, Entity]:
    """A followed record, as an identify question whose last entity is replaced by an unrelated
    disease: one
    with its own document, never mentioned together with the previous entity anywhere."""
    followed = [r for r, t in tiny.runs if t.termination == "answer" and r.hops >= 2]
    assert followed, "no run of the tiny workspace was followed to its answer"
    record = followed[0]  # every hop but the last is known to be showable
    previous = tiny.store.entity(record.chain[-3])
    documents = list(iter_documents("tiny"))
    texts = [" ".join([d.doc_id, d.title, d.text, *d.fields.values()]) for d in documents]
    own = {d.doc_id for d in documents}
    stranger = next(
        e
        for e in tiny.store.iter_entities()
        if e.type == "disease"
        and e.id in own
        and e.id not in record.chain
        and not any(_mentions(t, previous) and _mentions(t, e) for t in texts)
    )
    crafted = record.model_copy(
        update={
            "id": "Q:unreachable",
            "paradigm": "identify",
            "provenance": {**record.provenance, "answer_source": {"entity": stranger.id}},
            "chain": [*record.chain[:-1], stranger.id],
            "answer": stranger.name,
            "answer_id": stranger.id,
            "answer_aliases": list(stranger.aliases),
        }
    )
    return crafted, previous


def test_a_hop_the_tools_cannot_show_ends_in_error_naming_it(tiny: Tiny) -> None:
    crafted, previous = _unreachable_record(tiny)
    trajectory = follow(crafted, tiny.settings, tiny.ws)
    assert trajectory.termination == "error" and trajectory.final_answer is None
    detail = trajectory.termination_detail or ""
    assert detail.startswith(f"QA record {crafted.id}: hop {crafted.hops}: {previous.name}")
    for tool in ("medical_retriever", "document_read", "web_search"):
        assert tool in detail


def test_a_start_the_offered_tools_cannot_show_ends_in_error(tiny: Tiny) -> None:
    record = tiny.runs[0][0].model_copy(update={"question": "Which entity is meant here?"})
    trajectory = follow(record, tiny.settings, tiny.ws, tools=["web_search"])
    assert trajectory.termination == "error" and trajectory.final_answer is None
    assert trajectory.termination_detail == (
        f"QA record {record.id}: the start: web_search did not show it"
    )
    calls = [c for m in trajectory.messages for c in m.get("tool_calls") or []]
    assert [c["function"]["name"] for c in calls] == ["web_search"]


# -- the command line --------------------------------------------------------------------------


@pytest.mark.slow  # child processes
def test_cli_agent_ask_follows_the_record(tiny: Tiny) -> None:
    record, trajectory = next((r, t) for r, t in tiny.runs if t.termination == "answer")
    result = cli("agent", "ask", "--policy", "path_guided", "--qa-id", record.id, cwd=tiny.folder)
    assert result.returncode == 0, result.stderr
    shown = result.stdout
    assert "Question " + " ".join(record.question.split())[:60] in " ".join(shown.split())
    calls = [c for m in trajectory.messages for c in m.get("tool_calls") or []]
    thoughts = re.findall(r"^  thought \S", shown, re.MULTILINE)
    assert len(thoughts) == len(calls)  # one call per turn, each with its thought
    for name in {c["function"]["name"] for c in calls}:
        assert f"→ {name} " in shown and f"← {name} " in shown
    assert f"Answer: {trajectory.final_answer}" in shown
    turns = trajectory.stats["turns"]
    assert f"termination: answer · {turns} turns · {len(calls)} tool calls" in shown


@pytest.mark.slow  # child processes
def test_cli_agent_ask_reports_a_failed_walk(tiny: Tiny) -> None:
    record = tiny.runs[0][0]
    result = cli(
        "agent", "ask", "Which entity is meant here?", "--policy", "path_guided",
        "--qa-id", record.id, "--tools", "web_search", cwd=tiny.folder,
    )  # fmt: skip
    assert result.returncode == 1
    assert "termination: error" in result.stdout
    assert result.stderr.strip() == (
        f"error: QA record {record.id}: the start: web_search did not show it"
    )
