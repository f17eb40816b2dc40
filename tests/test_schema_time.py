"""``created_at`` follows SOURCE_DATE_EPOCH, so two runs can write byte-identical records."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from medresearcher.errors import ConfigError
from medresearcher.schema import utc_now


def test_source_date_epoch_fixes_the_creation_time(monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764000000")
    assert utc_now() == datetime(2025, 11, 24, 16, 0, tzinfo=timezone.utc)
    assert utc_now() == utc_now()


def test_without_it_the_clock_is_read(monkeypatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    before = datetime.now(timezone.utc)
    assert before <= utc_now() <= datetime.now(timezone.utc)


def test_a_malformed_value_is_a_config_error(monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        utc_now()
