"""``medresearcher agent ask``, run as a user runs it, against the fake model server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medresearcher.schema import Trajectory
from tests.fakes.openai_server import Reply
from tests.test_cli import config_for

# The real root app and its error handling, with the agent group added if the package does
# not register it yet.
_ENTRY = (
    "from medresearcher.cli import agent_cmd, app, main\n"
    "if all(group.name != 'agent' for group in app.registered_groups):\n"
    "    app.add_typer(agent_cmd.app, name='agent')\n"
    "main()\n"
)


def agent_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDRESEARCHER_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-c", _ENTRY, "agent", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.slow  # loads the bundle's phenotype tables for the real clinical_reasoning tool
def test_ask_shows_each_step_and_writes_the_record(tmp_path: Path, fake_llm) -> None:
    findings = {"present_findings": ["angiokeratoma", "acroparesthesia", "corneal opacity"]}
    fake_llm.enqueue(
        Reply.tools(
            ("clinical_reasoning", findings),
            ("web_search", {"queries": ["angiokeratoma acroparesthesia"]}),
            content="Rank diseases by these findings and search the corpus.",
            usage={"prompt_tokens": 50, "completion_tokens": 7},
        ),
        Reply.text(
            "The differential puts Fabry disease first.\n<answer>Fabry disease</answer>",
            usage={"prompt_tokens": 80, "completion_tokens": 9},
        ),
    )
    config_for(tmp_path, fake_llm)
    out = tmp_path / "record.json"
    result = agent_cli(
        "ask", "Which disease fits angiokeratoma, acroparesthesia and corneal opacity?",
        "--tools", "clinical_reasoning,web_search", "--json-out", str(out),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    shown = result.stdout
    assert "Question Which disease fits angiokeratoma" in shown
    assert "thought Rank diseases by these findings and search the corpus." in shown
    assert '→ clinical_reasoning {"present_findings": ["angiokeratoma",' in shown
    assert "← clinical_reasoning Differential diagnosis" in shown
    assert "sources: ORPHA:324" in shown
    # No index in this workspace: the search fails as an observation, and the run goes on.
    assert "← web_search" in shown and "medresearcher index build" in shown
    assert "Answer: Fabry disease" in shown
    assert "termination: answer · 2 turns · 2 tool calls (1 errors) · tokens 130 in / 16 out" in (
        shown
    )
    assert shown.rstrip().endswith("Research software, not clinical advice.")

    record = Trajectory.model_validate_json(out.read_text(encoding="utf-8"))
    assert record.final_answer == "Fabry disease" and record.policy == "llm:agent"
    roles = [m["role"] for m in record.messages]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert "Fabry disease (ORPHA:324)" in record.messages[3]["content"]
    sent_tools = {t["function"]["name"] for t in fake_llm.chat_requests[0].json["tools"]}
    assert sent_tools == {"clinical_reasoning", "web_search"}

    runs = sorted((tmp_path / "workspace" / "runs").glob("*agent-ask*/manifest.json"))
    manifest = json.loads(runs[0].read_text(encoding="utf-8"))
    assert manifest["status"] == "ok" and manifest["termination"] == "answer"
    assert manifest["usage"]["agent"]["prompt_tokens"] == 130


def test_a_spent_turn_budget_is_reported(tmp_path: Path, fake_llm) -> None:
    fake_llm.add_rule(
        lambda body: bool(body.get("tools")) or len(body["messages"]) < 4,
        Reply.tools(("web_search", {"queries": ["Fabry"]}), content="Search again."),
    )
    fake_llm.add_rule(lambda body: True, Reply.text("<answer>GLA</answer>"))
    config_for(tmp_path, fake_llm)
    result = agent_cli("ask", "Which gene?", "--tools", "none", "--max-turns", "1", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "budget spent max_turns: 1 model turns used" in result.stdout
    assert "final answer (forced)" in result.stdout
    assert "termination: max_turns" in result.stdout


def test_without_an_endpoint_it_says_how_to_configure_one(tmp_path: Path) -> None:
    result = agent_cli("ask", "Which gene causes Fabry disease?", cwd=tmp_path)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: no model endpoint is configured")
    assert "[llm.agent]" in lines[0] and "medresearcher config init" in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_model_error_fails_with_one_line(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    config_for(tmp_path, url)
    result = agent_cli("ask", "Which gene?", "--tools", "none", cwd=tmp_path)

    assert result.returncode == 1
    assert "stopped" in result.stdout and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: endpoint 'agent'")
