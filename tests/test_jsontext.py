"""Reading model-written JSON, and the progress display batches use."""

from __future__ import annotations

import pytest
from rich.console import Console

from medresearcher.llm.jsontext import extract_json_object, remove_trailing_commas
from medresearcher.workspace import progress_bar


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": [1, 2,],}\n```', {"a": [1, 2]}),
        ('Sure! Here it is: {"a": "x}y"} Hope that helps {"b": 2}', {"a": "x}y"}),
        ('noise {not json} then {"a": {"b": 1}}', {"a": {"b": 1}}),
    ],
)
def test_extract_json_object(text: str, expected: dict) -> None:
    assert extract_json_object(text) == expected


def test_extract_json_object_reports_when_there_is_none() -> None:
    with pytest.raises(ValueError, match="no JSON object found"):
        extract_json_object("I think it is Fabry disease.")


def test_trailing_commas_inside_strings_are_kept() -> None:
    assert remove_trailing_commas('{"q": "a,}", "r": [1,],}') == '{"q": "a,}", "r": [1]}'


def test_progress_bar_shows_count_rate_and_eta() -> None:
    console = Console(record=True, width=120, force_terminal=False)
    with progress_bar(console) as progress:
        task = progress.add_task("writing questions", total=40)
        progress.advance(task, 10)
    text = console.export_text()
    assert "writing questions" in text
    assert "10/40" in text
    assert "it/s" in text or "s/it" in text
    assert "eta" in text
