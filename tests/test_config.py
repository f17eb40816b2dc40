"""Config loading: precedence, validation messages that name file/line/key, endpoints."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from medresearcher.config import load_settings
from medresearcher.errors import ConfigError

CONFIG = """\
workspace = "ws"

[llm.agent]
base_url = "http://localhost:8000/v1"
model = "Qwen/Qwen2.5-7B-Instruct"
max_concurrency = 32

[llm.judge]
base_url = "https://openrouter.ai/api/v1"
model = "openai/gpt-4o-mini"
api_key_env = "JUDGE_KEY"
"""


def write(tmp_path: Path, text: str, name: str = "medresearcher.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(environ={})
    assert settings.workspace == Path("workspace")
    assert settings.llm == {}
    assert settings.cache.mode == "off"
    assert settings.source is None


def test_file_in_cwd_is_read_and_environment_overrides_it(tmp_path: Path) -> None:
    write(tmp_path, CONFIG)
    env = {
        "MEDRESEARCHER_LLM__AGENT__MAX_CONCURRENCY": "3",
        "MEDRESEARCHER_CACHE__MODE": "replay",
        "MEDRESEARCHER_LLM__AGENT__EXTRA_BODY": '{"top_k": 20}',
    }
    settings = load_settings(environ=env)
    assert settings.source == "medresearcher.toml"
    assert settings.llm["agent"].max_concurrency == 3
    assert settings.llm["agent"].extra_body == {"top_k": 20}
    assert settings.llm["judge"].max_concurrency == 8  # default kept
    assert settings.cache.mode == "replay"
    assert settings.workspace == Path("ws")


def test_overrides_come_last(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG)
    settings = load_settings(
        path, environ={"MEDRESEARCHER_WORKSPACE": "a"}, overrides={"workspace": "b"}
    )
    assert settings.workspace == Path("b")


def test_malformed_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[llm.agent]\nbase_url = http://x\n", name="bad.toml")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert "bad.toml" in str(err.value)
    assert "line 2" in str(err.value)


def test_invalid_value_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG.replace("max_concurrency = 32", "max_concurrency = 0"))
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert f"{path}:6: llm.agent.max_concurrency" in message
    assert "greater than or equal to 1" in message


def test_unknown_key_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG.replace("max_concurrency = 32", "max_concurrrency = 32"))
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert f"{path}:6: llm.agent.max_concurrrency: unknown key" in str(err.value)


def test_missing_key_points_at_its_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[llm.agent]\nbase_url = "http://x/v1"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert f"{path}:1: llm.agent.model: Field required" in str(err.value)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={"MEDRESEARCHER_LLM__AGENT__TOOL_DIALECT": "xml"})
    assert "environment variable MEDRESEARCHER_LLM__AGENT__TOOL_DIALECT" in str(err.value)
    assert "llm.agent.tool_dialect" in str(err.value)


def test_missing_explicit_file() -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found"):
        load_settings("nope.toml", environ={})


def test_unknown_endpoint_lists_the_known_ones(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, CONFIG, name="cfg.toml"), environ={})
    with pytest.raises(
        ConfigError, match="unknown LLM endpoint 'writer'; configured endpoints: agent, judge"
    ):
        settings.endpoint("writer")
    with pytest.raises(ConfigError, match=r"no endpoints are configured \(add an \[llm.agent\]"):
        load_settings(environ={}).endpoint("agent")


def test_api_key_comes_from_the_named_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(write(tmp_path, CONFIG), environ={})
    assert settings.endpoint("agent").api_key() == "EMPTY"
    with pytest.raises(ConfigError, match="JUDGE_KEY is not set"):
        settings.endpoint("judge").api_key()
    monkeypatch.setenv("JUDGE_KEY", "sk-judge-123456")
    assert settings.endpoint("judge").api_key() == "sk-judge-123456"


def test_the_shipped_example_config_is_valid(tmp_path: Path) -> None:
    text = (
        resources.files("medresearcher.resources")
        .joinpath("medresearcher.example.toml")
        .read_text()
    )
    settings = load_settings(write(tmp_path, text), environ={})
    assert set(settings.llm) == {"agent", "writer", "extractor", "judge", "rewriter"}
    assert settings.llm["writer"].tool_dialect == "hermes"
    assert settings.llm["judge"].api_key_env == "OPENROUTER_API_KEY"
