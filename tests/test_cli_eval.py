"""``medresearcher eval run | ask`` as a user runs them (issue 10 §3, §6).

Offline: the path-guided policy on a tiny workspace, with the real tools and the rules grader.
With a model: ``eval ask`` against the fake model server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medresearcher.schema import EvalResult, QARecord, Trajectory
from medresearcher.workspace import Workspace, list_runs, read_jsonl
from tests.fakes.openai_server import Reply
from tests.test_cli import config_for
from tests.test_eval_runner import build_tiny_workspace

# The real root app and its error handling, with the eval group added if the package does not
# register it yet.
_ENTRY = (
    "from medresearcher.cli import app, eval_cmd, main\n"
    "if all(group.name != 'eval' for group in app.registered_groups):\n"
    "    app.add_typer(eval_cmd.app, name='eval')\n"
    "main()\n"
)
N_QUESTIONS = 3


def eval_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDRESEARCHER_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-c", _ENTRY, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return build_tiny_workspace(tmp_path_factory.mktemp("cli-eval") / "ws", N_QUESTIONS)


@pytest.mark.slow  # two runs of the real tools, and the report's plots
def test_path_guided_eval_run_writes_results_and_resumes(tiny) -> None:
    folder = tiny.root.parent
    args = ("-w", str(tiny.root), "eval", "run", "--benchmark", "qa", "--file", str(tiny.qa_path))
    result = eval_cli(*args, "--policy", "path_guided", "--rollouts", "1", cwd=folder)

    assert result.returncode == 0, result.stderr
    name = "qa-qa-path_guided"
    results = list(read_jsonl(tiny.eval_dir(name) / "results.jsonl", EvalResult))
    records = {r.id: r for r in read_jsonl(tiny.qa_path, QARecord)}
    assert sorted(r.item_id for r in results) == sorted(records)
    trajectories = {t.id: t for t in read_jsonl(tiny.trajectories_path(name), Trajectory)}
    assert {r.trajectory_id for r in results} == set(trajectories)
    correct = sum(r.verdict == "correct" for r in results)
    shown = result.stdout
    assert f"eval run {name}: {N_QUESTIONS} items × 1 rollouts of qa" in shown
    assert "grading rules only" in shown
    assert re.search(rf"accuracy \(avg pass@1\) +│ {correct / N_QUESTIONS:.1%} ", shown)
    assert f"medresearcher eval report {name}" in shown
    assert (tiny.eval_dir(name) / "report.html").is_file()
    metrics = json.loads((tiny.eval_dir(name) / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["accuracy"]["avg_pass@1"] == pytest.approx(correct / N_QUESTIONS)
    (manifest,) = [m for m in list_runs(tiny) if m["command"] == "eval-run"]
    assert manifest["status"] == "ok" and manifest["counts"]["written"] == N_QUESTIONS
    assert manifest["eval"]["run"] == name

    again = eval_cli(*args, "--policy", "path_guided", "--rollouts", "1", cwd=folder)
    assert again.returncode == 0, again.stderr
    assert f"│ {N_QUESTIONS} (0 now, {N_QUESTIONS} before) " in again.stdout
    assert len(list(read_jsonl(tiny.eval_dir(name) / "results.jsonl", EvalResult))) == N_QUESTIONS


def test_the_llm_policy_without_an_endpoint_is_a_clear_error(tmp_path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text("", encoding="utf-8")
    result = eval_cli("eval", "run", "--benchmark", "qa", "--file", str(qa), cwd=tmp_path)

    assert result.returncode == 1
    assert "error: no model endpoint is configured, and the llm policy needs one" in (
        " ".join(result.stderr.split())
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "workspace" / "eval").exists()


def test_path_guided_only_evaluates_qa_records(tmp_path) -> None:
    data = tmp_path / "items.jsonl"
    data.write_text('{"question": "Q?", "answer": "A"}\n', encoding="utf-8")
    result = eval_cli(
        "eval", "run", "--benchmark", "jsonl", "--file", str(data), "--policy", "path_guided",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--policy path_guided follows QA records: use --benchmark qa" in result.stderr


def test_eval_ask_runs_the_agent_step_by_step_and_grades(tmp_path, fake_llm) -> None:
    fake_llm.enqueue(
        Reply.text(
            "The X-linked lysosomal disease with angiokeratomas.\n<answer>FABRY DISEASE</answer>",
            usage={"prompt_tokens": 30, "completion_tokens": 8},
        )
    )
    config_for(tmp_path, fake_llm)
    result = eval_cli(
        "eval", "ask", "Which disease shows angiokeratomas and acroparesthesia?",
        "--gold", "Fabry disease", "--tools", "none",
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    shown = result.stdout
    assert "Question Which disease shows angiokeratomas" in shown
    assert "Gold Fabry disease" in shown
    assert "Answer: FABRY DISEASE" in shown  # the agent's step printer
    assert "Verdict: correct (grader rule:exact)" in shown
    assert "termination: answer · 1 turns · 0 tool calls · tokens 30 in / 8 out" in shown
    (manifest,) = [m for m in list_runs(Workspace(tmp_path / "workspace"))]
    assert manifest["command"] == "eval-ask" and manifest["verdict"] == "correct"


@pytest.mark.slow  # three runs of the command
def test_eval_run_with_the_llm_policy(tmp_path, fake_llm) -> None:
    data = tmp_path / "items.jsonl"
    rows = [
        {"id": "a", "q": "Gene of Fabry disease?", "a": "GLA"},
        {"id": "b", "q": "2+2?", "a": "4"},
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    fake_llm.default = Reply.text("<answer>GLA</answer>")
    config_for(tmp_path, fake_llm)
    args = ("eval", "run", "-b", "jsonl", "-f", str(data), "--rollouts", "2", "--tools", "none")
    fields = ("--question-field", "q", "--answer-field", "a", "--id-field", "id")
    result = eval_cli(*args, *fields, "--run", "toy", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    ws = Workspace(tmp_path / "workspace")
    results = list(read_jsonl(ws.eval_dir("toy") / "results.jsonl", EvalResult))
    verdicts = sorted((r.item_id, r.rollout, r.verdict) for r in results)
    assert verdicts == [
        ("a", 0, "correct"), ("a", 1, "correct"), ("b", 0, "incorrect"), ("b", 1, "incorrect")
    ]  # fmt: skip
    assert {r.metadata["run"]["policy"] for r in results} == {"llm:agent"}
    assert len(fake_llm.chat_requests) == 4
    assert "policy agent, grading rules only" in result.stdout

    # Resuming the run on other items would mix two experiments in one results file.
    data.write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    other = eval_cli(*args, *fields, "--run", "toy", cwd=tmp_path)
    assert other.returncode == 1
    assert "this evaluation run was started with other settings (items: '2 items" in other.stderr
