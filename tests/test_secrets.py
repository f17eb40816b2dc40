"""An API key set in the environment is used, and written nowhere: not in the workspace,
the logs, the manifests, or anything a command prints."""

from __future__ import annotations

import logging
from pathlib import Path

from medresearcher.config import EndpointSettings, Settings
from medresearcher.secrets import RedactingFilter, redact_url, redacted_settings
from tests.fakes.openai_server import Reply
from tests.test_cli import cli

KEY = "sk-or-v1-THIS-IS-A-SECRET-0123456789abcdef"


def test_the_key_reaches_the_server_and_nothing_else(tmp_path: Path, fake_llm) -> None:
    # The server echoes the key in an error, as some providers do: that text must be masked too.
    fake_llm.enqueue(Reply.text("pong"), Reply.error(401, message=f"invalid key {KEY}"))
    (tmp_path / "medresearcher.toml").write_text(
        '[cache]\nmode = "read-write"\n'
        f'[llm.agent]\nbase_url = "{fake_llm.base_url}"\nmodel = "fake-model"\n'
        'api_key_env = "PROVIDER_API_KEY"\nmax_retries = 0\n',
        encoding="utf-8",
    )
    env = {"PROVIDER_API_KEY": KEY}
    outputs = [
        cli("-vv", "llm", "ping", env=env, cwd=tmp_path),
        cli("-vv", "llm", "ping", env=env, cwd=tmp_path),  # fails with the echoed key
        cli("config", "show", env=env, cwd=tmp_path),
        cli("config", "show", "--json", env=env, cwd=tmp_path),
        cli("-vv", "demo", env=env, cwd=tmp_path),
        cli("runs", "list", env=env, cwd=tmp_path),
    ]
    assert [r.returncode for r in outputs] == [0, 1, 0, 0, 0, 0]
    # The key was really in use: the server saw it on both calls.
    assert {r.headers["authorization"] for r in fake_llm.chat_requests} == {f"Bearer {KEY}"}
    # The debug log really was verbose, so the absence below means something.
    assert "HTTP Request: POST" in outputs[0].stderr

    run_ids = [line.split()[0] for line in outputs[-1].stdout.splitlines() if "-llm-ping-" in line]
    outputs += [cli("runs", "show", run_id, env=env, cwd=tmp_path) for run_id in run_ids]
    for result in outputs:
        assert KEY not in result.stdout + result.stderr, result.args
    assert "invalid key ***" in outputs[1].stderr

    files = [p for p in (tmp_path / "workspace").rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in files)
    assert any(p.name == "log.txt" and p.stat().st_size > 0 for p in files)
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


def test_redacted_settings_masks_url_credentials_and_secret_fields(monkeypatch) -> None:
    monkeypatch.setenv("MY_KEY", KEY)
    settings = Settings(
        llm={
            "a": EndpointSettings(
                base_url="https://user:hunter22@proxy.example/v1",
                model="m",
                api_key_env="MY_KEY",
                extra_body={"api_key": "inline-secret", "note": f"key={KEY}"},
            )
        }
    )
    data = redacted_settings(settings)["llm"]["a"]
    assert data["base_url"] == "https://***@proxy.example/v1"
    assert data["api_key_env"] == "MY_KEY"
    assert data["extra_body"] == {"api_key": "***", "note": "key=***"}
    assert redact_url("http://localhost:8000/v1") == "http://localhost:8000/v1"


def test_the_logging_filter_masks_messages_and_tracebacks(caplog) -> None:
    logger = logging.getLogger("test.secrets")
    logger.addFilter(RedactingFilter({KEY}))
    try:
        with caplog.at_level(logging.INFO):
            logger.info("calling with %s", KEY)
            try:
                raise RuntimeError(f"bad key {KEY}")
            except RuntimeError:
                logger.exception("failed")
    finally:
        logger.filters.clear()
    assert KEY not in caplog.text
    assert "calling with ***" in caplog.text
    assert "bad key ***" in caplog.text


def test_every_replica_url_is_redacted() -> None:
    settings = Settings(
        llm={
            "pool": EndpointSettings(
                base_url=["https://u:pw1@h1.example/v1", "https://u:pw2@h2.example/v1"],
                model="m",
            )
        }
    )
    data = redacted_settings(settings)["llm"]["pool"]
    assert data["base_urls"] == ["https://***@h1.example/v1", "https://***@h2.example/v1"]
    assert "pw1" not in str(data) and "pw2" not in str(data)
