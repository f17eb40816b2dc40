"""The command line, run as a user runs it: real process, real exit codes, real output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

from medresearcher import __version__
from tests.fakes.openai_server import FakeOpenAIServer, Reply


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run ``medresearcher ARGS`` in a child process; returns the completed process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDRESEARCHER_")}
    full_env.update(env or {})
    full_env["COLUMNS"] = "200"  # no wrapping, so tests can match whole lines
    return subprocess.run(
        [sys.executable, "-m", "medresearcher", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        # A guard against a hung child, not a speed check: the demo takes ~50 s alone and
        # several times that on a machine shared with other jobs.
        timeout=300,
    )


def config_for(tmp_path: Path, server: FakeOpenAIServer | str, **extra: str) -> Path:
    base_url = server if isinstance(server, str) else server.base_url
    lines = ["[llm.agent]", f'base_url = "{base_url}"', 'model = "fake-model"', "max_retries = 0"]
    lines += [f"{k} = {v}" for k, v in extra.items()]
    path = tmp_path / "medresearcher.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"medresearcher {__version__}"


def test_help_explains_the_commands() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("demo", "config", "llm", "runs"):
        assert command in result.stdout


def test_config_show_without_a_file(tmp_path: Path) -> None:
    result = cli("config", "show", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "built-in defaults" in result.stdout
    assert "none configured" in result.stdout
    data = json.loads(cli("config", "show", "--json", cwd=tmp_path).stdout)
    assert data["llm"] == {} and data["workspace"] == "workspace"


def test_config_init_writes_a_valid_example(tmp_path: Path) -> None:
    assert cli("config", "init", cwd=tmp_path).returncode == 0
    shown = json.loads(cli("config", "show", "--json", cwd=tmp_path).stdout)
    assert set(shown["llm"]) == {"agent", "writer", "extractor", "judge", "rewriter"}
    again = cli("config", "init", cwd=tmp_path)
    assert again.returncode == 1 and "exists" in again.stdout


def test_llm_ping_round_trip_is_recorded_as_a_run(tmp_path: Path, fake_llm) -> None:
    fake_llm.default = Reply.text("pong", usage={"prompt_tokens": 12, "completion_tokens": 1})
    config_for(tmp_path, fake_llm)
    result = cli("llm", "ping", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pong" in result.stdout
    assert "12 in / 1 out" in result.stdout
    assert fake_llm.chat_requests[0].json["max_tokens"] == 8

    listed = cli("runs", "list", "--json", cwd=tmp_path)
    runs = json.loads(listed.stdout)
    assert [r["command"] for r in runs] == ["llm-ping"]
    manifest = json.loads(cli("runs", "show", runs[0]["run_id"], cwd=tmp_path).stdout)
    assert manifest["status"] == "ok"
    assert manifest["usage"]["agent"]["prompt_tokens"] == 12
    assert manifest["config"]["llm"]["agent"]["base_url"] == fake_llm.base_url
    assert manifest["versions"]["medresearcher"] == __version__
    assert manifest["ended_at"] and manifest["duration_s"] >= 0
    assert (tmp_path / "workspace" / "runs" / runs[0]["run_id"] / "log.txt").is_file()


def test_unknown_endpoint_lists_the_known_ones(tmp_path: Path, fake_llm) -> None:
    config_for(tmp_path, fake_llm)
    result = cli("llm", "ping", "--endpoint", "judge", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: unknown LLM endpoint 'judge'; configured endpoints: agent"
    )


def test_unreachable_endpoint_is_one_clear_line(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    config_for(tmp_path, url)
    result = cli("llm", "ping", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: endpoint 'agent' ({url}): failed: cannot connect")
    manifest = json.loads(cli("runs", "list", "--json", cwd=tmp_path).stdout)[0]
    assert manifest["status"] == "failed"
    assert "cannot connect" in manifest["error"]


def test_malformed_config_names_file_and_key(tmp_path: Path, fake_llm) -> None:
    config_for(tmp_path, fake_llm, tool_dialect='"xml"')
    result = cli("config", "show", cwd=tmp_path)
    assert result.returncode == 1
    assert "medresearcher.toml:5: llm.agent.tool_dialect" in result.stderr
    assert "Traceback" not in result.stderr


def test_runs_show_of_an_unknown_run(tmp_path: Path) -> None:
    result = cli("runs", "show", "nope", cwd=tmp_path)
    assert result.returncode == 1
    assert "no run 'nope'" in result.stderr
    result = cli("runs", "show", "../../etc", cwd=tmp_path)
    assert result.returncode == 1
    assert "invalid run name" in result.stderr


def test_demo_runs_offline_and_explains_itself(tmp_path: Path) -> None:
    result = cli("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Research software, not clinical advice" in result.stdout
    assert "none configured, so this demo runs offline" in result.stdout
    runs = json.loads(cli("runs", "list", "--json", cwd=tmp_path).stdout)
    assert runs[-1]["command"] == "demo" and runs[-1]["status"] == "ok"
    # Every offline stage left its output behind.
    ws = tmp_path / "workspace"
    for made in (
        "qa.jsonl",
        "trajectories/demo.jsonl",
        "export/demo/openai.jsonl",
        "export/demo/verl_rl.parquet",
        "eval/demo-eval/report.html",
        "eval/demo-eval/metrics.json",
    ):
        assert (ws / made).is_file(), made
    # The held-back evaluation's report shows exactly metrics.json, with its plots inline.
    html = (ws / "eval/demo-eval/report.html").read_text(encoding="utf-8")
    metrics = json.loads((ws / "eval/demo-eval/metrics.json").read_text(encoding="utf-8"))
    cells = re.findall(r'data-metric="([^"]*)" data-value="([^"]*)"', html)
    assert cells
    for path, value in cells:
        shown = metrics
        for part in json.loads(unescape(path)):
            shown = shown[part]
        assert shown == json.loads(unescape(value)), path
    plots = sorted(p.name for p in (ws / "eval/demo-eval").glob("*.png"))
    assert plots and html.count('src="data:image/png;base64,') == len(plots)


@pytest.mark.parametrize("flag", ["--workspace", "-w"])
def test_workspace_option_moves_the_artefacts(tmp_path: Path, flag: str) -> None:
    # A light command that writes a stage output: the demo itself runs once, above.
    assert cli(flag, "elsewhere", "kg", "import", "--bundle", "tiny", cwd=tmp_path).returncode == 0
    assert (tmp_path / "elsewhere" / "kg.sqlite").is_file()
    assert not (tmp_path / "workspace").exists()


def test_help_constants_copied_into_the_cli_match_the_library() -> None:
    # The CLI keeps copies so that `--help` need not import pyarrow or the openai SDK.
    from medresearcher.cli import tools_cmd, traj_cmd, traj_export_cmd
    from medresearcher.synthesis.augment import DEFAULT_RATE
    from medresearcher.synthesis.export import FORMATS
    from medresearcher.tools import TOOL_NAMES

    assert traj_cmd._DEFAULT_AUGMENT_RATE == DEFAULT_RATE
    for name in TOOL_NAMES:
        assert name in tools_cmd._TOOL_NAMES_HELP
    for name in FORMATS:
        assert name in traj_export_cmd._FORMATS_HELP
