"""The evaluation runner (issue 10 §3): items × rollouts, graded, linked, resumable.

The llm policy talks to the fake model server, which answers each question from a script
keyed by the question text (runs are concurrent, so a FIFO queue would not say which run gets
which reply); the judge is a second endpoint on the same server, told apart by its model name.
The path-guided policy runs offline on a tiny workspace with the real tools.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from medresearcher.agent import AgentLimits, AssistantTurn
from medresearcher.config import EndpointSettings, Settings
from medresearcher.data import bundle_dir, iter_documents
from medresearcher.errors import InputError
from medresearcher.evaluation import runner
from medresearcher.evaluation.items import BenchmarkItem
from medresearcher.evaluation.loaders import load_benchmark
from medresearcher.evaluation.runner import (
    EvalCounts,
    check_run_config,
    llm_policies,
    load_results,
    make_grader,
    path_guided_policies,
    path_guided_turns,
    results_writer,
    run_eval,
)
from medresearcher.grading.grade import Judge
from medresearcher.grading.rules import grade_by_rules
from medresearcher.kg import GraphStore
from medresearcher.kg.io import import_records
from medresearcher.llm import LLMGateway
from medresearcher.schema import EvalResult, QARecord, Trajectory
from medresearcher.tools import build_toolbox
from medresearcher.tools.base import Observation, Tool, ToolBox
from medresearcher.workspace import JsonlWriter, Workspace, read_jsonl
from tests.conftest import run
from tests.fakes.openai_server import FakeOpenAIServer, Reply

# question → (what the lookup tool is asked, the final answer); golds are on the items.
SCRIPT = {
    "How many exons does the GLA gene have?": ("GLA exons", "7"),
    "Which lysosomal disease is caused by GLA variants?": ("GLA disease", "Fabry disease"),
    "In which year was Fabry disease enzyme therapy first approved?": ("Fabry ERT", "1999"),
}
ITEMS = [
    BenchmarkItem(item_id="q-exons", question=next(iter(SCRIPT)), gold="7", metadata={"task": "a"}),
    BenchmarkItem(
        item_id="q-disease",
        question=list(SCRIPT)[1],
        gold="Fabry disease",
        aliases=["Anderson-Fabry disease"],
        metadata={"task": "b", "hops": 2},
    ),
    BenchmarkItem(item_id="q-year", question=list(SCRIPT)[2], gold="2001", metadata={"task": "b"}),
]
EXPECTED = {"q-exons": "correct", "q-disease": "correct", "q-year": "incorrect"}
TURNS_PER_RUN = 2  # one tool call, then the answer


class LookupArgs(BaseModel):
    query: str


class Lookup(Tool):
    """A small real tool, so that trajectories carry a call and its observation."""

    name = "lookup"
    description = "Look a fact up."
    Arguments = LookupArgs

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0  # the most runs inside this tool at once

    async def run(self, arguments: LookupArgs) -> Observation:
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.02)  # long enough for other runs to arrive, were they let in
        self.running -= 1
        return Observation(text=f"notes on {arguments.query}", sources=["DOC:1"])


def _question(body: dict[str, Any]) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def agent_script(body: dict[str, Any]) -> Reply:
    """One lookup, then the scripted answer; the judge's requests are not handled here."""
    query, answer = SCRIPT[_question(body)]
    usage = {"prompt_tokens": 40, "completion_tokens": 5}
    if not any(m["role"] == "tool" for m in body["messages"]):
        return Reply.tools(("lookup", {"query": query}), content="Look it up.", usage=usage)
    return Reply.text(f"From the notes.\n<answer>{answer}</answer>", usage=usage)


def settings_for(server: FakeOpenAIServer, workspace: Path, **judge: Any) -> Settings:
    common = {"base_url": server.base_url, "retry_backoff_s": 0.01, "max_retries": 0}
    llm = {"agent": EndpointSettings(model="fake-model", **common)}
    llm["judge"] = EndpointSettings(model="judge-model", **{**common, **judge})
    return Settings(workspace=workspace, llm=llm)


def is_judge(body: dict[str, Any]) -> bool:
    return body.get("model") == "judge-model"


def evaluate(
    settings: Settings,
    items: list[BenchmarkItem] = ITEMS,
    *,
    judge: bool = False,
    on_result: Callable[[EvalResult], None] | None = None,
    cancel_after: int | None = None,
    tool: Lookup | None = None,
    **options: Any,
) -> EvalCounts:
    """``run_eval`` with the llm policy over ``<workspace>/eval/t``; the writers are closed
    whatever happens, as the CLI closes them."""
    ws = Workspace(settings.workspace)

    async def go() -> EvalCounts:
        written: list[EvalResult] = []
        main = asyncio.current_task()

        def seen(result: EvalResult) -> None:
            written.append(result)
            if on_result is not None:
                on_result(result)
            if cancel_after is not None and len(written) == cancel_after:
                main.cancel()  # type: ignore[union-attr] - a kill in the middle of the run

        async with LLMGateway(settings) as gateway:
            with (
                results_writer(ws.eval_dir("t") / "results.jsonl") as results,
                JsonlWriter(ws.trajectories_path("t")) as trajectories,
            ):
                return await run_eval(
                    items,
                    benchmark="toy",
                    results=results,
                    trajectories=trajectories,
                    policy_factory=llm_policies(gateway, "agent"),
                    toolbox=ToolBox([tool or Lookup()]),
                    grade_fn=make_grader(Judge(gateway, "judge") if judge else None),
                    on_result=seen,
                    **{"rollouts": 2, "workers": 2, **options},
                )

    return run(go())


def stored(settings: Settings) -> tuple[list[EvalResult], dict[str, Trajectory]]:
    ws = Workspace(settings.workspace)
    results = load_results(ws.eval_dir("t") / "results.jsonl")
    trajectories = list(read_jsonl(ws.trajectories_path("t"), Trajectory))
    by_id = {t.id: t for t in trajectories}
    assert len(by_id) == len(trajectories), "a trajectory was written twice"
    return results, by_id


def assert_complete(results: list[EvalResult], n_items: int = 3, rollouts: int = 2) -> None:
    pairs = Counter((r.item_id, r.rollout) for r in results)
    assert len(pairs) == n_items * rollouts and set(pairs.values()) == {1}, pairs


@pytest.fixture
def llm(fake_llm: FakeOpenAIServer, tmp_path: Path) -> Settings:
    fake_llm.default = agent_script
    return settings_for(fake_llm, tmp_path / "ws")


# --------------------------------------------------------------------------- llm policy


def test_every_item_and_rollout_is_run_once_graded_and_linked(llm, fake_llm) -> None:
    tool = Lookup()
    counts = evaluate(llm, workers=2, tool=tool)

    assert (counts.pairs, counts.written, counts.skipped, counts.failed) == (6, 6, 0, 0)
    assert (counts.correct, counts.incorrect, counts.unjudgeable) == (4, 2, 0)
    assert 1 <= tool.peak <= 2  # the semaphore bounds the runs at once
    assert len(fake_llm.chat_requests) == 6 * TURNS_PER_RUN
    results, trajectories = stored(llm)
    assert_complete(results)
    assert [(r.item_id, r.rollout) for r in results] == sorted(
        (r.item_id, r.rollout) for r in results
    )
    for result in results:
        assert result.verdict == EXPECTED[result.item_id]
        assert result.grader.startswith("rule:")
        trajectory = trajectories[result.trajectory_id]
        assert (trajectory.qa_id, trajectory.rollout) == (result.item_id, result.rollout)
        assert trajectory.final_answer == result.prediction == SCRIPT[result.question][1]
        assert trajectory.policy == "llm:agent" and trajectory.stats["tool_calls"] == 1
        assert (
            result.benchmark == "toy"
            and result.gold == {i.item_id: i.gold for i in ITEMS}[result.item_id]
        )
        assert result.usage["prompt_tokens"] == 80 and result.latency_s is not None
        assert result.metadata["run"]["termination"] == "answer"
        assert result.metadata["run"]["tool_calls"] == 1
    disease = next(r for r in results if r.item_id == "q-disease")
    assert disease.metadata["task"] == "b" and disease.metadata["hops"] == 2
    # Distinct rollouts are distinct records, each linked to its own trajectory.
    assert len({r.trajectory_id for r in results}) == 6


def test_the_judge_decides_what_rules_cannot(fake_llm, tmp_path) -> None:
    items = [
        BenchmarkItem(item_id="syn", question="Which enzyme is deficient?", gold="GLA"),
        BenchmarkItem(item_id="garbled", question="Which organ fails first?", gold="kidney"),
    ]
    answers = {
        "Which enzyme is deficient?": "alpha-galactosidase A",
        "Which organ fails first?": "the renal system",
    }
    fake_llm.default = lambda body: Reply.text(f"<answer>{answers[_question(body)]}</answer>")
    verdict = {"extracted_final_answer": "alpha-galactosidase A", "reasoning": "", "correct": "yes"}
    fake_llm.add_rule(
        lambda body: is_judge(body) and "alpha-galactosidase" in json.dumps(body["messages"]),
        Reply.text(json.dumps(verdict)),
    )
    # An explanation that mentions "vitamin A" is no verdict.
    fake_llm.add_rule(is_judge, Reply.text("A. The answer mentions vitamin A."))
    settings = settings_for(fake_llm, tmp_path / "ws")

    counts = evaluate(settings, items, judge=True, rollouts=1)

    results = {r.item_id: r for r in stored(settings)[0]}
    assert results["syn"].verdict == "correct" and results["syn"].grader == "llm:judge-model"
    assert results["syn"].metadata["run"]["judge"]["verdict"] == "correct"
    assert results["garbled"].verdict == "unjudgeable"
    assert "vitamin A" in results["garbled"].metadata["run"]["judge"]["raw"]
    assert (counts.correct, counts.unjudgeable) == (1, 1)


def test_a_judge_outage_writes_no_result_and_a_rerun_grades_the_stored_trajectory(
    fake_llm, tmp_path
) -> None:
    fake_llm.default = lambda body: Reply.text("<answer>the renal system</answer>")
    fake_llm.add_rule(is_judge, Reply.error(503), times=1)
    no = {"extracted_final_answer": "renal system", "reasoning": "organ system", "correct": "no"}
    fake_llm.add_rule(is_judge, Reply.text(json.dumps(no)))
    settings = settings_for(fake_llm, tmp_path / "ws")
    items = [BenchmarkItem(item_id="organ", question="Which organ fails first?", gold="kidney")]

    first = evaluate(settings, items, judge=True, rollouts=1)
    assert (first.failed, first.written) == (1, 0)
    assert "LLMCallError" in first.failures[0] or "503" in first.failures[0]
    assert stored(settings)[0] == [] and len(stored(settings)[1]) == 1
    agent_calls = sum(not is_judge(r.json) for r in fake_llm.chat_requests)

    second = evaluate(settings, items, judge=True, rollouts=1)
    assert (second.regraded, second.written, second.incorrect) == (1, 1, 1)
    assert sum(not is_judge(r.json) for r in fake_llm.chat_requests) == agent_calls
    (result,) = stored(settings)[0]
    assert result.grader == "llm:judge-model" and result.prediction == "the renal system"


def test_a_subset_then_the_whole_runs_each_pair_once(llm, fake_llm) -> None:
    first = evaluate(llm, limit=1)
    assert (first.pairs, first.written) == (2, 2)

    second = evaluate(llm)
    assert (second.pairs, second.skipped, second.written) == (6, 2, 4)
    assert len(fake_llm.chat_requests) == 6 * TURNS_PER_RUN
    assert_complete(stored(llm)[0])
    third = evaluate(llm, rollouts=3)  # one more rollout of each item: only those run
    assert (third.skipped, third.written) == (6, 3)
    assert_complete(stored(llm)[0], rollouts=3)


def test_a_killed_run_resumes_without_duplicates(llm, fake_llm) -> None:
    with pytest.raises(asyncio.CancelledError):
        evaluate(llm, workers=1, cancel_after=2)
    results, trajectories = stored(llm)
    assert len(results) == 2 and len(trajectories) >= 2

    counts = evaluate(llm, workers=1)
    assert counts.skipped == 2 and counts.written == 4
    results, trajectories = stored(llm)
    assert_complete(results)
    assert {r.trajectory_id for r in results} == set(trajectories)


def test_a_result_line_cut_by_a_crash_is_regraded_from_its_trajectory(llm, fake_llm) -> None:
    evaluate(llm)
    path = Workspace(llm.workspace).eval_dir("t") / "results.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 25])  # the last line loses its end (and newline)
    requests = len(fake_llm.chat_requests)

    counts = evaluate(llm)
    assert (counts.skipped, counts.regraded, counts.written) == (5, 1, 1)
    assert len(fake_llm.chat_requests) == requests  # graded from the stored trajectory
    results, trajectories = stored(llm)
    assert_complete(results)
    for result in results:
        assert result.prediction == trajectories[result.trajectory_id].final_answer


def test_a_timeout_is_recorded(fake_llm, tmp_path) -> None:
    slow = "Which drug was approved last?"
    items = [*ITEMS[:1], BenchmarkItem(item_id="slow", question=slow, gold="migalastat")]
    fake_llm.default = lambda body: Reply.hang(5) if _question(body) == slow else agent_script(body)
    settings = settings_for(fake_llm, tmp_path / "ws")

    limits = AgentLimits(answer_grace_s=0.2)
    counts = evaluate(settings, items, rollouts=1, timeout_s=0.3, limits=limits)

    assert (counts.timeouts, counts.correct, counts.incorrect) == (1, 1, 1)
    results, trajectories = stored(settings)
    late = next(r for r in results if r.item_id == "slow")
    assert late.verdict == "incorrect" and late.prediction is None
    assert late.metadata["run"]["termination"] == "timeout"
    assert trajectories[late.trajectory_id].termination == "timeout"
    assert "0.3 s time limit" in trajectories[late.trajectory_id].termination_detail


class Stubborn:
    """A policy that ignores the loop's cancellation once, so that only the guard ends it."""

    name = "stubborn"

    async def next_turn(self, messages: Any, tools: Any, *, rollout: int = 0) -> AssistantTurn:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(30)
        raise AssertionError("unreachable")


def test_the_guard_stops_a_run_that_outlives_its_time_limit(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runner, "GUARD_MARGIN_S", 0.1)
    ws = Workspace(tmp_path / "ws")
    item = BenchmarkItem(item_id="stuck", question="Anything?", gold="no")

    async def go() -> EvalCounts:
        with (
            results_writer(ws.eval_dir("g") / "results.jsonl") as results,
            JsonlWriter(ws.trajectories_path("g")) as trajectories,
        ):
            return await run_eval(
                [item],
                benchmark="toy",
                results=results,
                trajectories=trajectories,
                policy_factory=lambda item, rollout: Stubborn(),
                toolbox=ToolBox([]),
                limits=AgentLimits(answer_grace_s=0.1),
                timeout_s=0.1,
                rollouts=1,
            )

    counts = run(go())
    assert (counts.written, counts.timeouts, counts.incorrect) == (1, 1, 1)
    (trajectory,) = read_jsonl(ws.trajectories_path("g"), Trajectory)
    assert trajectory.termination == "timeout" and trajectory.stats["guard"] is True
    assert "evaluation runner stopped the run" in trajectory.termination_detail
    (result,) = load_results(ws.eval_dir("g") / "results.jsonl")
    assert result.trajectory_id == trajectory.id and result.grader == "rule:empty"


def test_bad_inputs_are_refused(llm, tmp_path) -> None:
    twice = [ITEMS[0], ITEMS[0].model_copy(update={"question": "again?"})]
    with pytest.raises(InputError, match="occurs twice"):
        evaluate(llm, twice)

    async def wrong_key() -> None:
        with (
            JsonlWriter(tmp_path / "r.jsonl") as results,
            JsonlWriter(tmp_path / "t.jsonl") as trajectories,
        ):
            await run_eval(
                ITEMS,
                benchmark="toy",
                results=results,
                trajectories=trajectories,
                policy_factory=lambda item, rollout: Stubborn(),
                toolbox=ToolBox([]),
            )

    with pytest.raises(ValueError, match="trajectory_id"):
        run(wrong_key())


def test_a_resumed_run_must_keep_its_settings(tmp_path) -> None:
    path = tmp_path / "eval" / "r" / "run.json"
    config = {"benchmark": "qa", "policy": "llm:agent", "model": "m1", "judge": "rules only"}
    check_run_config(path, config)
    check_run_config(path, dict(config))  # the same settings resume
    with pytest.raises(InputError, match="model: 'm1' then, 'm2' now"):
        check_run_config(path, {**config, "model": "m2"})


# --------------------------------------------------------------------------- path-guided


N_QUESTIONS = 4


def build_tiny_workspace(root: Path, n: int = N_QUESTIONS) -> Workspace:
    """The tiny bundle's graph and index, and ``n`` template questions in qa.jsonl."""
    from medresearcher.qa.batch import QABatchOptions, generate_qa
    from medresearcher.retrieval import build_index
    from medresearcher.sampling import GraphView

    ws = Workspace(root).ensure()
    with GraphStore(ws.kg_path) as store:
        import_records(store, bundle_dir("tiny"))
        build_index(iter_documents("tiny"), ws.index_dir)
        anchors = sorted(
            e.id for e in store.iter_entities() if e.id.startswith("ORPHA:") and e.attrs.get("rare")
        )
        with JsonlWriter(ws.qa_path) as out:
            options = QABatchOptions(n=n, workers=2)
            run(generate_qa(store, GraphView.from_store(store), anchors, options, out=out))
    return ws


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    yield build_tiny_workspace(tmp_path_factory.mktemp("eval-tiny") / "workspace")


def test_path_guided_on_the_tiny_workspace(tiny) -> None:
    settings = Settings(workspace=tiny.root)
    items = load_benchmark("qa", tiny.qa_path)
    records = {r.id: r for r in read_jsonl(tiny.qa_path, QARecord)}
    assert len(items) == N_QUESTIONS

    async def go() -> EvalCounts:
        toolbox = build_toolbox(settings, tiny)
        try:
            with (
                results_writer(tiny.eval_dir("pg") / "results.jsonl") as results,
                JsonlWriter(tiny.trajectories_path("pg")) as trajectories,
            ):
                return await run_eval(
                    items,
                    benchmark="qa",
                    results=results,
                    trajectories=trajectories,
                    policy_factory=path_guided_policies(records, settings),
                    toolbox=toolbox,
                    limits=AgentLimits(max_turns=path_guided_turns(records.values(), 12)),
                    rollouts=1,
                    workers=2,
                )
        finally:
            await toolbox.aclose()

    counts = run(go())
    assert counts.written == N_QUESTIONS and counts.failed == 0
    results = load_results(tiny.eval_dir("pg") / "results.jsonl")
    trajectories = {t.id: t for t in read_jsonl(tiny.trajectories_path("pg"), Trajectory)}
    assert [r.item_id for r in results] == sorted(records)
    for result in results:
        record, trajectory = records[result.item_id], trajectories[result.trajectory_id]
        assert trajectory.policy == "path_guided" and trajectory.qa_id == record.id
        assert result.prediction == trajectory.final_answer
        expected = grade_by_rules(trajectory.final_answer, record.answer, record.answer_aliases)
        assert (result.verdict == "correct") == expected.correct
        assert result.metadata["hops"] == record.hops
    assert counts.correct >= 1  # the walk reaches the answer on the tiny graph

    with pytest.raises(InputError, match="no QA record with id 'q-exons'"):
        path_guided_policies(records, settings)(ITEMS[0], 0)
