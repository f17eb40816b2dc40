"""``traj generate`` (paper §3.2, issue 9 §1): α-guided rollouts, resumable, ids carried.

The offline path-guided policy runs on the tiny workspace with the real tools; the llm
policy runs against the fake model server, which shows what each guided prompt contained.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from medresearcher.agent import trajectory_id
from medresearcher.cli.state import CliState
from medresearcher.cli.traj_cmd import app as traj_app
from medresearcher.config import Settings
from medresearcher.data import bundle_dir, iter_documents
from medresearcher.errors import ConfigError
from medresearcher.kg import GraphStore
from medresearcher.kg.io import import_records
from medresearcher.llm import LLMGateway
from medresearcher.qa.batch import QABatchOptions, chain_names, generate_qa
from medresearcher.retrieval import build_index
from medresearcher.sampling import GraphView
from medresearcher.schema import QARecord, Trajectory
from medresearcher.synthesis.generate import (
    GenerationCounts,
    ItemOutcome,
    generate_trajectories,
)
from medresearcher.synthesis.leaks import scaffold_leaks
from medresearcher.synthesis.mix import guided_count, guided_items
from medresearcher.synthesis.mtg import mtg_scaffold
from medresearcher.tools.base import Observation, Tool, ToolBox
from medresearcher.workspace import JsonlWriter, Workspace, read_jsonl
from tests.conftest import run
from tests.fakes.openai_server import Reply

ALPHA = 0.7
ROLLOUTS = 2
SEED = 1


@dataclass
class Tiny:
    ws: Workspace
    settings: Settings
    records: list[QARecord]
    path: Path
    counts: GenerationCounts
    outcomes: list[ItemOutcome]
    trajectories: list[Trajectory]


def generate(records: list[QARecord], settings: Settings, path: Path, **options: Any):
    outcomes: list[ItemOutcome] = []
    options = {"rollouts": ROLLOUTS, "alpha": ALPHA, "seed": SEED, **options}
    with JsonlWriter(path) as out:
        counts = asyncio.run(
            generate_trajectories(
                records,
                policy=options.pop("policy", "path_guided"),
                settings=settings,
                workers=4,
                out=out,
                on_item=outcomes.append,
                **options,
            )
        )
    return counts, outcomes


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiny]:
    ws = Workspace(tmp_path_factory.mktemp("generate") / "workspace").ensure()
    with GraphStore(ws.kg_path) as store:
        import_records(store, bundle_dir("tiny"))
        anchors = sorted(
            e.id for e in store.iter_entities() if e.id.startswith("ORPHA:") and e.attrs.get("rare")
        )
        with JsonlWriter(ws.qa_path) as out:
            options = QABatchOptions(n=8, workers=4)
            asyncio.run(generate_qa(store, GraphView.from_store(store), anchors, options, out=out))
    build_index(iter_documents("tiny"), ws.index_dir)
    settings = Settings(workspace=ws.root)
    records = list(read_jsonl(ws.qa_path, QARecord))
    path = ws.trajectories_path("path_guided")
    counts, outcomes = generate(records, settings, path, augment_rate=0.3)
    yield Tiny(ws, settings, records, path, counts, outcomes, list(read_jsonl(path, Trajectory)))


def test_the_guided_share_is_exact_and_ids_are_carried(tiny: Tiny) -> None:
    passed = [r for r in tiny.records if r.passed]
    assert passed and len(passed) < len(tiny.records)  # the fixture has records failing checks
    items = {(r.id, rollout) for r in passed for rollout in range(ROLLOUTS)}
    assert tiny.counts.failed == 0 and tiny.counts.written == len(items) == len(tiny.trajectories)
    guided = [t for t in tiny.trajectories if t.guidance == "mtg"]
    assert len(guided) == guided_count(len(items), ALPHA) == tiny.counts.guided_written
    assert {(t.qa_id, t.rollout) for t in guided} == guided_items(items, ALPHA, SEED)
    # every (record, rollout) once, with its id derived from what it is
    assert Counter((t.qa_id, t.rollout) for t in tiny.trajectories) == Counter(items)
    for t in tiny.trajectories:
        assert t.policy == "path_guided"
        assert t.id == trajectory_id(t.qa_id, "path_guided", t.rollout, t.guidance)
        assert t.stats["mix"] == {"alpha": ALPHA, "seed": SEED, "guided": t.guidance == "mtg"}
    assert [o.status for o in tiny.outcomes] == ["written"] * len(items)


def test_guided_rollouts_keep_the_scaffold_out_of_their_messages(tiny: Tiny) -> None:
    by_id = {r.id: r for r in tiny.records}
    for t in tiny.trajectories:
        assert "[MASK]" not in json.dumps(t.messages, ensure_ascii=False)
        generation = t.stats["generation"]
        if t.guidance == "mtg":
            assert generation["guidance"] == mtg_scaffold(by_id[t.qa_id])
            assert generation["guidance_prompt"] == "mtg"
        else:
            assert generation["guidance"] is None
        assert t.stats["qa"]["hops"] == by_id[t.qa_id].hops


def test_a_rerun_writes_nothing_new(tiny: Tiny) -> None:
    before = tiny.path.read_bytes()
    counts, outcomes = generate(tiny.records, tiny.settings, tiny.path, augment_rate=0.3)
    assert counts.written == 0 and counts.skipped == tiny.counts.written
    assert {o.status for o in outcomes} == {"skipped"}
    assert all(o.trajectory is None for o in outcomes)  # skipped before running, not after
    # another split: an item is done under either guidance mode, so still nothing new
    counts, _ = generate(tiny.records, tiny.settings, tiny.path, alpha=0.1)
    assert counts.written == 0
    assert tiny.path.read_bytes() == before


def test_records_failing_checks_only_when_asked(tiny: Tiny) -> None:
    failing = [r for r in tiny.records if not r.passed]
    path = tiny.ws.trajectories_path("failing")
    counts, _ = generate(failing, tiny.settings, path, rollouts=1)
    assert counts.records == 0 and counts.records_failing_checks == len(failing)
    counts, _ = generate(failing, tiny.settings, path, rollouts=1, include_failed_checks=True)
    assert counts.written + counts.failed == len(failing)
    assert {t.qa_id for t in read_jsonl(path, Trajectory)} <= {r.id for r in failing}


def test_augmented_rollouts_are_marked_and_leaks_are_flagged(tiny: Tiny) -> None:
    augmented = [t for t in tiny.trajectories if t.stats.get("augmented")]
    assert len(augmented) == tiny.counts.augmented
    for t in augmented:
        assert t.stats["recovered_errors"] >= 1
    # The path-guided fallback thoughts ("the research guidance points to …") are flagged.
    by_id = {r.id: r for r in tiny.records}
    flagged = 0
    with GraphStore(tiny.ws.kg_path) as store:
        for t in tiny.trajectories:
            leaks = scaffold_leaks(t, by_id[t.qa_id], chain_names(store, by_id[t.qa_id].chain))
            says_guidance = any(
                "guidance" in str(m.get("content")) for m in t.messages if m["role"] == "assistant"
            )
            assert says_guidance == any("mentions the guidance" in leak for leak in leaks)
            flagged += says_guidance
    assert 0 < flagged < len(tiny.trajectories)


# --------------------------------------------------------------------------- llm policy


class LookupArgs(BaseModel):
    query: str


class Lookup(Tool):
    name = "medical_retriever"
    description = "Ranked medical evidence for a query."
    Arguments = LookupArgs

    async def run(self, arguments: LookupArgs) -> Observation:
        return Observation(text=f"evidence for {arguments.query}")


def scripted(body: dict) -> Reply:
    """Search once, then answer: two requests per rollout, whatever the order of arrival."""
    if body["messages"][-1]["role"] == "tool":
        return Reply.text("The evidence settles it.\n<answer>X</answer>")
    return Reply.tools(("medical_retriever", {"query": "clues"}), content="I search the clues.")


def test_llm_policy_prompts_carry_the_scaffold_and_records_do_not(
    tiny: Tiny, fake_llm, make_settings, tmp_path: Path
) -> None:
    records = [r for r in tiny.records if r.passed][:3]
    fake_llm.add_rule(lambda body: True, scripted)
    settings = make_settings(fake_llm)
    path = tmp_path / "llm.jsonl"

    async def go() -> GenerationCounts:
        async with LLMGateway(settings) as gateway:
            with JsonlWriter(path) as out:
                return await generate_trajectories(
                    records,
                    policy="llm",
                    settings=settings,
                    gateway=gateway,
                    endpoint="agent",
                    rollouts=2,
                    workers=3,
                    alpha=0.5,
                    seed=SEED,
                    out=out,
                    toolbox=ToolBox([Lookup()]),
                    augment_rate=0.0,
                )

    counts = run(go())
    assert counts.written == 6 and counts.guided_written == 3
    trajectories = list(read_jsonl(path, Trajectory))
    for record in records:
        scaffold = mtg_scaffold(record)
        sent = [
            r.json["messages"][0]["content"]
            for r in fake_llm.chat_requests
            if r.json["messages"][1]["content"] == record.question
        ]
        guided = [t for t in trajectories if t.qa_id == record.id and t.guidance == "mtg"]
        assert sum(system.endswith(scaffold) for system in sent) == 2 * len(guided)
        assert sum("[MASK]" in system for system in sent) == 2 * len(guided)
    for t in trajectories:
        assert t.policy == "llm:agent" and t.final_answer == "X"
        assert t.id == trajectory_id(t.qa_id, "llm:agent", t.rollout, t.guidance)
        assert "[MASK]" not in json.dumps(t.messages)


# --------------------------------------------------------------------------- the command


def test_traj_generate_command(tiny: Tiny, tmp_path: Path) -> None:
    qa = tmp_path / "two.jsonl"
    passed = [r for r in tiny.records if r.passed][:2]
    qa.write_text("".join(r.model_dump_json() + "\n" for r in passed), encoding="utf-8")
    state = CliState(workspace=tiny.ws.root)
    args = ["generate", "--qa", str(qa), "--policy", "path_guided", "--alpha", "0.5"]
    result = CliRunner().invoke(traj_app, [*args, "--run", "cli"], obj=state)
    assert result.exit_code == 0, result.output
    written = list(read_jsonl(tiny.ws.trajectories_path("cli"), Trajectory))
    assert sorted(t.qa_id for t in written) == sorted(r.id for r in passed)
    assert sum(t.guidance == "mtg" for t in written) == 1
    assert "2 new trajectories" in result.output
    manifests = list(tiny.ws.runs_root.glob("*traj-generate-path-guided*/manifest.json"))
    assert manifests and json.loads(manifests[0].read_text())["counts"]["written"] == 2

    offline = CliRunner().invoke(traj_app, ["generate", "--qa", str(qa)], obj=state)
    assert isinstance(offline.exception, ConfigError)
    assert "no model endpoint is configured" in str(offline.exception)
