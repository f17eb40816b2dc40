"""Shared fixtures: the fake model server, settings pointing at it, a clean environment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from medresearcher.config import EndpointSettings, Settings
from tests.fakes.fixtures import fake_llm  # noqa: F401 - a fixture, used by name
from tests.fakes.openai_server import FakeOpenAIServer
from tests.graph_fixtures import graph_backend, graph_store, make_graph_store  # noqa: F401

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer's MEDRESEARCHER_* variables or ./medresearcher.toml leak into a test."""
    import os

    for name in list(os.environ):
        if name.startswith("MEDRESEARCHER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with one endpoint ``agent`` on a given server; keyword overrides per test.

    Backoff is shortened so retry tests take milliseconds; tests about waiting set it.
    """

    def make(server: FakeOpenAIServer | str, **endpoint: Any) -> Settings:
        base_url = server if isinstance(server, str) else server.base_url
        fields = {
            "base_url": base_url,
            "model": "fake-model",
            "retry_backoff_s": 0.01,
            "max_retries": 2,
            "timeout_s": 5.0,
            **endpoint,
        }
        return Settings(workspace=tmp_path / "ws", llm={"agent": EndpointSettings(**fields)})

    return make


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion (tests stay plain functions; no plugin needed)."""
    return asyncio.run(coro)
