"""Trajectory filters: one clean trajectory passes every rule; one perturbation per rule fails
that rule and only it (issue 9 acceptance), and the verdicts land on the record."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from medresearcher.cli import traj_quality_cmd
from medresearcher.cli.state import CliState
from medresearcher.config import EndpointSettings, Settings
from medresearcher.schema import QARecord, Trajectory
from medresearcher.synthesis.filters import (
    RULES,
    FilterConfig,
    apply_filters,
    calls_paired,
    final_answer,
    judge_trajectory,
    language_share,
    no_scaffold_leak,
    no_unrecovered_error,
)
from medresearcher.workspace import read_jsonl
from tests.conftest import run
from tests.fakes.openai_server import Reply

QUESTION = (
    "Which gene is associated with the X-linked lysosomal storage disorder that presents with "
    "angiokeratoma and acroparesthesia?"
)
NAMES = {
    "ORPHA:324": ["Fabry disease", "Anderson-Fabry disease"],
    "HGNC:4296": ["GLA", "galactosidase alpha"],
}
# Small limits keep the perturbations small: the clean trajectory has 3 calls and ~1,000 tokens.
CONFIG = FilterConfig(max_tokens=3000, min_tool_calls=3)


def tool_schema(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


def call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def result(call_id: str, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


RETRIEVE = call("c1", "medical_retriever", query="X-linked lysosomal angiokeratoma acroparesthesia")
OBSERVATION_1 = (
    "1. Fabry disease [ORPHA:324] · reference · Score 0.91\n"
    "   An X-linked lysosomal storage disorder with angiokeratoma, acroparesthesia and corneal "
    "opacity."
)
OBSERVATION_2 = "[1] Fabry disease is caused by pathogenic variants in the GLA gene (corpus)."
OBSERVATION_3 = (
    "Source: Fabry disease — ORPHA:324 (reference)\nAssociated gene: GLA (galactosidase alpha)."
)


def record() -> QARecord:
    return QARecord(
        id="Q:fabry",
        question=QUESTION,
        answer="GLA",
        answer_id="HGNC:4296",
        answer_aliases=["galactosidase alpha"],
        chain=["ORPHA:324", "associated_gene", "HGNC:4296"],
        masked_chain=[["[MASK]", "associated_gene", "[MASK]"]],
        placeholders={"E1": "ORPHA:324", "E2": "HGNC:4296"},
        sample_id="S:fabry",
        strategy="test",
        hops=1,
        created_at="2026-01-01T00:00:00+00:00",
    )


def clean() -> Trajectory:
    """A valid guided trajectory: a search, two parallel calls, a tagged answer."""
    messages = [
        {"role": "system", "content": "You are MedResearcher."},
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": "The question describes an X-linked lysosomal storage disorder with "
            "angiokeratoma and acroparesthesia. I will search the medical retriever for these "
            "findings to identify the disorder.",
            "tool_calls": [RETRIEVE],
        },
        result("c1", OBSERVATION_1),
        {
            "role": "assistant",
            "content": "The evidence points to Fabry disease. Next I need the gene associated "
            "with Fabry disease, so I will search the web and read its record at the same time.",
            "tool_calls": [
                call("c2", "web_search", queries=["Fabry disease gene"]),
                call("c3", "document_read", url_or_id="ORPHA:324", goal="associated gene"),
            ],
        },
        result("c2", OBSERVATION_2),
        result("c3", OBSERVATION_3),
        {
            "role": "assistant",
            "content": "Both sources say Fabry disease is caused by variants in one gene, GLA, "
            "which answers the question.\n<answer>GLA</answer>",
        },
    ]
    return Trajectory(
        id="T:clean",
        qa_id="Q:fabry",
        policy="llm:agent",
        guidance="mtg",
        question=QUESTION,
        messages=messages,
        tools=[tool_schema(n) for n in ("web_search", "document_read", "medical_retriever")],
        final_answer="GLA",
        termination="answer",
        stats={"generation": {"language": "en"}},
        created_at="2026-01-01T00:00:00+00:00",
    )


def perturbed(change) -> Trajectory:
    data = copy.deepcopy(clean().model_dump())
    change(data)
    return Trajectory.model_validate(data)


def _forced(d: dict) -> None:
    d["termination"] = "max_turns"
    d["termination_detail"] = "8 model turns used; the limit is 8"


def _wrong_answer(d: dict) -> None:
    d["final_answer"] = "HEXA"
    d["messages"][-1]["content"] = "The sources point to one gene.\n<answer>HEXA</answer>"


def _unanswered_call(d: dict) -> None:
    del d["messages"][6]  # the result of c3


def _unrecovered_error(d: dict) -> None:
    d["messages"][6]["content"] = "Error: document_read timed out after 30 s"


def _too_long(d: dict) -> None:
    d["messages"][5]["content"] += "\n" + "Fabry disease is a lysosomal storage disorder. " * 400


def _too_few_calls(d: dict) -> None:
    d["messages"][4]["tool_calls"] = d["messages"][4]["tool_calls"][1:]
    del d["messages"][5]  # the web_search result


def _repeated_call(d: dict) -> None:
    again = [
        {
            "role": "assistant",
            "content": "Let me run the same search again to be sure of it.",
            "tool_calls": [{**RETRIEVE, "id": f"r{k}"}],
        }
        for k in (1, 2)
    ]
    extra = [m for k, a in enumerate(again, 1) for m in (a, result(f"r{k}", OBSERVATION_1))]
    d["messages"][4:4] = extra


def _leak(d: dict) -> None:
    d["messages"][2]["content"] += " The guidance says the gene is GLA."


def _chinese_turn(d: dict) -> None:
    d["messages"][4]["content"] = (
        "证据指向法布里病。接下来我需要找到与法布里病相关的基因，因此我将同时检索网络并阅读它的记录。"
    )


def _bare_call(d: dict) -> None:
    d["messages"][4]["content"] = ""


PERTURBATIONS = {
    "final_answer": _forced,
    "judge_correct": _wrong_answer,
    "calls_paired": _unanswered_call,
    "no_unrecovered_error": _unrecovered_error,
    "token_length": _too_long,
    "min_tool_calls": _too_few_calls,
    "no_repeated_call": _repeated_call,
    "no_scaffold_leak": _leak,
    "one_language": _chinese_turn,
    "thought_before_call": _bare_call,
}


def failed_rules(trajectory: Trajectory, config: FilterConfig = CONFIG) -> list[str]:
    judged = apply_filters(trajectory, record(), config, names_by_id=NAMES)
    return [reason["rule"] for reason in judged.filters["reasons"]]


def test_every_rule_has_a_perturbation() -> None:
    assert set(PERTURBATIONS) == set(RULES)


def test_the_clean_trajectory_passes_every_rule_and_the_verdict_is_recorded() -> None:
    judged = apply_filters(clean(), record(), CONFIG, names_by_id=NAMES)
    assert judged.filters == {"passed": True, "reasons": [], "rules": list(RULES)}
    assert judged.judge["verdict"] == "correct"
    assert judged.judge["grader"].startswith("rule:")
    assert clean().filters is None  # the input is not modified


@pytest.mark.parametrize("rule", list(PERTURBATIONS))
def test_each_perturbation_fails_its_rule_and_only_it(rule: str) -> None:
    trajectory = perturbed(PERTURBATIONS[rule])
    judged = apply_filters(trajectory, record(), CONFIG, names_by_id=NAMES)
    assert judged.filters["passed"] is False
    assert [r["rule"] for r in judged.filters["reasons"]] == [rule]
    assert judged.filters["reasons"][0]["detail"]  # a reason in words, never empty


def test_reasons_name_what_failed() -> None:
    reasons = {
        rule: apply_filters(perturbed(change), record(), CONFIG, names_by_id=NAMES).filters[
            "reasons"
        ][0]["detail"]
        for rule, change in PERTURBATIONS.items()
    }
    assert "max_turns" in reasons["final_answer"]
    assert "could not decide whether 'HEXA' is 'GLA'" in reasons["judge_correct"]
    assert "c3 (document_read) has no result" in reasons["calls_paired"]
    assert "document_read (c3)" in reasons["no_unrecovered_error"]
    assert "exceed the limit of 3000" in reasons["token_length"]
    assert reasons["min_tool_calls"] == "2 tool calls; at least 3 required"
    assert (
        "medical_retriever" in reasons["no_repeated_call"] and "× 3" in reasons["no_repeated_call"]
    )
    assert "guidance" in reasons["no_scaffold_leak"] and "GLA" in reasons["no_scaffold_leak"]
    assert "turn 2" in reasons["one_language"]
    assert "turn 2 (web_search, document_read)" in reasons["thought_before_call"]


def test_a_missing_answer_fails_final_answer() -> None:
    def no_answer(d: dict) -> None:
        d["final_answer"] = None
        d["termination"] = "error"
        d["termination_detail"] = "endpoint unreachable"

    reason = final_answer(perturbed(no_answer))
    assert reason == "no final answer (termination error: endpoint unreachable)"
    assert final_answer(perturbed(_forced), config=FilterConfig(allow_forced_answer=True)) is None


def test_rules_can_be_turned_off_and_limits_changed() -> None:
    long = perturbed(_too_long)
    assert failed_rules(long, CONFIG.model_copy(update={"max_tokens": 100_000})) == []
    only = CONFIG.model_copy(update={"rules": ["final_answer", "calls_paired"]})
    judged = apply_filters(perturbed(_wrong_answer), record(), only, names_by_id=NAMES)
    assert judged.filters["passed"] and judged.filters["rules"] == ["final_answer", "calls_paired"]
    assert judged.judge is None  # the grader did not run
    assert (
        failed_rules(
            perturbed(_repeated_call), FilterConfig(max_identical_calls=3, max_tokens=3000)
        )
        == []
    )


def test_pairing_catches_duplicate_late_and_unknown_results() -> None:
    def duplicate(d: dict) -> None:
        d["messages"].insert(7, result("c3", "again"))

    def unknown(d: dict) -> None:
        d["messages"][6]["tool_call_id"] = "c9"

    def reused_id(d: dict) -> None:
        d["messages"][4]["tool_calls"][0]["id"] = "c1"
        d["messages"][5]["tool_call_id"] = "c1"

    assert "c3 has a second result" in calls_paired(perturbed(duplicate))
    assert "unknown call 'c9'" in calls_paired(perturbed(unknown))
    assert "call id c1 is used twice" in calls_paired(perturbed(reused_id))
    # Parallel results in the other order are fine.
    swapped = perturbed(lambda d: d["messages"].__setitem__(slice(5, 7), d["messages"][6:4:-1]))
    assert calls_paired(swapped) is None


def test_an_error_recovered_by_a_later_call_of_the_same_tool_passes() -> None:
    def recovered(d: dict) -> None:
        d["messages"][3]["content"] = "Error: HTTP 503 from the retriever"
        retry = {
            "role": "assistant",
            "content": "The retriever failed; I will try it again.",
            "tool_calls": [{**RETRIEVE, "id": "c1b"}],
        }
        d["messages"][4:4] = [retry, result("c1b", OBSERVATION_1)]

    assert no_unrecovered_error(perturbed(recovered)) is None
    # The agent's own error flag counts too, even when the text does not say "Error".
    flagged = perturbed(lambda d: d["stats"].update(calls=[{"call_id": "c3", "error": True}]))
    assert "document_read (c3)" in no_unrecovered_error(flagged)


def test_the_leak_rule_takes_an_injected_detector_and_needs_a_record() -> None:
    seen = []

    def detector(trajectory, qa, names):
        seen.append((trajectory.id, qa.id, dict(names)))
        return ["message 2 (content): names 'GLA'"]

    reason = no_scaffold_leak(clean(), record(), names_by_id=NAMES, detector=detector)
    assert reason == "message 2 (content): names 'GLA'"
    assert seen == [("T:clean", "Q:fabry", NAMES)]
    assert no_scaffold_leak(clean(), None) == "no QA record: which entities are masked is unknown"


def test_language_share_counts_words_not_letters() -> None:
    share, units = language_share("我将检索与 Fragile nails 相关的疾病", "zh")
    assert units == 12 and share == pytest.approx(10 / 12)
    assert language_share("<answer>法布里病</answer> The answer is below.", "en") == (1.0, 4)
    zh = perturbed(_chinese_turn).model_copy(update={"stats": {"generation": {"language": "zh"}}})
    assert "one_language" in failed_rules(zh)  # now the English turns are off-language


def test_an_answer_the_rules_cannot_decide_is_undecided_without_a_judge() -> None:
    wrong = perturbed(_wrong_answer)
    judged = run(judge_trajectory(wrong, record()))
    assert judged.judge["verdict"] == "undecided" and judged.judge["grader"] == "rule:undecided"
    only_judge = FilterConfig(rules=["judge_correct"])
    [reason] = apply_filters(judged, record(), only_judge).filters["reasons"]
    assert "could not decide whether 'HEXA' is 'GLA'" in reason["detail"]
    lenient = FilterConfig(rules=["judge_correct"], accept_undecided=True)
    assert apply_filters(judged, record(), lenient).filters["passed"]
    assert run(judge_trajectory(clean(), record())).judge["verdict"] == "correct"


def test_the_llm_judge_decides_what_the_rules_cannot(fake_llm, tmp_path) -> None:
    from medresearcher.grading import Judge
    from medresearcher.llm import LLMGateway

    def verdict(correct: str, extracted: str) -> Reply:
        body = {
            "extracted_final_answer": extracted,
            "reasoning": "Compared with the gold.",
            "correct": correct,
            "confidence": 90,
        }
        return Reply.text(json.dumps(body))

    endpoint = EndpointSettings(base_url=fake_llm.base_url, model="judge-model", max_retries=0)
    settings = Settings(workspace=tmp_path / "ws", llm={"judge": endpoint})
    synonym = perturbed(lambda d: d.update(final_answer="alpha-galactosidase A"))

    async def judge_both() -> tuple[Trajectory, Trajectory]:
        async with LLMGateway(settings, cache_mode="off") as gateway:
            judge = Judge(gateway, "judge")
            fake_llm.enqueue(verdict("no", "HEXA"))
            wrong = await judge_trajectory(perturbed(_wrong_answer), record(), judge=judge)
            fake_llm.enqueue(verdict("yes", "alpha-galactosidase A"))
            right = await judge_trajectory(synonym, record(), judge=judge)
            return wrong, right

    wrong, right = run(judge_both())
    assert (wrong.judge["verdict"], wrong.judge["grader"]) == ("incorrect", "llm:judge-model")
    assert wrong.judge["judgement"]["extracted"] == "HEXA"
    [reason] = apply_filters(wrong, record(), CONFIG, names_by_id=NAMES).filters["reasons"]
    assert reason == {"rule": "judge_correct", "detail": "llm:judge-model: 'HEXA' is not 'GLA'"}
    assert right.judge["verdict"] == "correct"
    assert apply_filters(right, record(), CONFIG, names_by_id=NAMES).filters["passed"]
    assert len(fake_llm.chat_requests) == 2  # the clear cases never reach the judge


# -- the command ------------------------------------------------------------------------------


def invoke_quality(*args: str, workspace: Path, config: Path | None = None):
    """``traj filter|rewrite|stats`` in-process, mounted as the ``traj`` app mounts them."""
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = CliState(config_path=config, workspace=workspace)

    for name in ("filter", "rewrite", "stats"):
        app.command(name)(getattr(traj_quality_cmd, name))
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_the_filter_command_splits_the_run_resumably_with_a_table(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "trajectories").mkdir(parents=True)
    (workspace / "qa.jsonl").write_text(record().model_dump_json() + "\n", encoding="utf-8")
    run_file = workspace / "trajectories" / "r1.jsonl"
    batch = [clean()] + [
        perturbed(PERTURBATIONS[rule]).model_copy(update={"id": f"T:{rule}"})
        for rule in ("calls_paired", "thought_before_call")
    ]
    run_file.write_text("".join(t.model_dump_json() + "\n" for t in batch), encoding="utf-8")
    result = invoke_quality(
        "filter", "r1", "--min-tool-calls", "3", "--max-tokens", "3000", workspace=workspace
    )
    assert result.exit_code == 0, result.output
    passed = list(read_jsonl(workspace / "trajectories" / "r1.filtered.jsonl", Trajectory))
    rejected = list(read_jsonl(workspace / "trajectories" / "r1.rejected.jsonl", Trajectory))
    assert [t.id for t in passed] == ["T:clean"]
    assert sorted(t.filters["reasons"][0]["rule"] for t in rejected) == [
        "calls_paired",
        "thought_before_call",
    ]
    assert "in all 1 of 3 passed" in result.output
    assert re.search(r"calls_paired\s*│\s*1\s*│\s*33%", result.output)
    assert "no knowledge graph" in result.output  # the leak rule says what it cannot see

    run_file.write_text(
        run_file.read_text()
        + perturbed(_bare_call).model_copy(update={"id": "T:late"}).model_dump_json()
        + "\n",
        encoding="utf-8",
    )
    again = invoke_quality("filter", "r1", "--min-tool-calls", "3", workspace=workspace)
    assert again.exit_code == 0, again.output
    assert "1 trajectories filtered now; in all 1 of 4 passed" in again.output


def test_the_filter_command_explains_missing_inputs(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    missing = invoke_quality("filter", "nope", workspace=workspace)
    assert "nope.jsonl does not exist" in str(missing.exception)
    (workspace / "trajectories").mkdir(parents=True)
    (workspace / "trajectories" / "r1.jsonl").write_text(clean().model_dump_json() + "\n")
    no_qa = invoke_quality("filter", "r1", workspace=workspace)
    assert "--skip judge_correct,no_scaffold_leak" in str(no_qa.exception)
    skipped = invoke_quality(
        "filter", "r1", "--skip", "judge_correct,no_scaffold_leak", workspace=workspace
    )
    assert skipped.exit_code == 0, skipped.output
    bad = invoke_quality("filter", "r1", "--rules", "final_answer,bogus", workspace=workspace)
    assert "unknown rule(s) bogus" in str(bad.exception)


def test_the_filter_command_asks_the_judge_only_what_rules_cannot_decide(
    fake_llm, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    (workspace / "trajectories").mkdir(parents=True)
    (workspace / "qa.jsonl").write_text(record().model_dump_json() + "\n", encoding="utf-8")
    synonym = clean().model_copy(update={"id": "T:synonym", "final_answer": "alpha-Gal A gene"})
    lines = clean().model_dump_json() + "\n" + synonym.model_dump_json() + "\n"
    (workspace / "trajectories" / "r1.jsonl").write_text(lines, encoding="utf-8")
    config = tmp_path / "medresearcher.toml"
    config.write_text(
        f'[llm.judge]\nbase_url = "{fake_llm.base_url}"\nmodel = "judge-model"\nmax_retries = 0\n'
    )
    body = {"extracted_final_answer": "alpha-Gal A", "reasoning": "Same gene.", "correct": "yes"}
    fake_llm.default = Reply.text(json.dumps(body))
    result = invoke_quality(
        "filter",
        "r1",
        "--judge",
        "judge",
        "--min-tool-calls",
        "3",
        workspace=workspace,
        config=config,
    )
    assert result.exit_code == 0, result.output
    passed = {
        t.id: t for t in read_jsonl(workspace / "trajectories" / "r1.filtered.jsonl", Trajectory)
    }
    assert set(passed) == {"T:clean", "T:synonym"}
    assert passed["T:synonym"].judge["grader"] == "llm:judge-model"
    assert passed["T:clean"].judge["grader"].startswith("rule:")
    assert len(fake_llm.chat_requests) == 1
