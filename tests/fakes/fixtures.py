"""Pytest fixtures around the fake OpenAI server.

Kept separate from ``openai_server.py`` so that module stays importable (and runnable as a
benchmark process) without pytest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai_server import FakeOpenAIServer


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAIServer]:
    """A started fake server, stopped after the test so no port or thread leaks between tests."""
    with FakeOpenAIServer() as server:
        yield server
