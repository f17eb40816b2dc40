"""Behaviour statistics (paper §4.1) on crafted trajectories, and the PNG chart."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from medresearcher.schema import Trajectory
from medresearcher.synthesis.stats import (
    call_records,
    is_error_observation,
    summarise,
    write_chart,
)


def crafted(
    name: str,
    calls: list[tuple[str, bool]],
    *,
    termination: str = "answer",
    filters: dict[str, Any] | None = None,
    guidance: str = "none",
) -> Trajectory:
    """A trajectory making ``calls`` (tool name, failed?) one per turn, then answering."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Which gene?"}]
    for k, (tool, failed) in enumerate(calls, start=1):
        call = {"id": f"c{k}", "type": "function", "function": {"name": tool, "arguments": "{}"}}
        messages.append({"role": "assistant", "content": "thinking", "tool_calls": [call]})
        text = "Error: HTTP 503" if failed else "some evidence"
        messages.append({"role": "tool", "tool_call_id": f"c{k}", "content": text})
    messages.append({"role": "assistant", "content": "<answer>GLA</answer>"})
    return Trajectory(
        id=f"T:{name}",
        policy="llm:agent",
        guidance=guidance,
        question="Which gene?",
        messages=messages,
        final_answer="GLA" if termination == "answer" else None,
        termination=termination,
        filters=filters,
        created_at="2026-01-01T00:00:00+00:00",
    )


def rejected(*rules: str) -> dict[str, Any]:
    return {"passed": False, "reasons": [{"rule": r, "detail": "x"} for r in rules]}


PASSED = {"passed": True, "reasons": []}

SET = [
    # medical first, switches to general, recovers from a retriever error: 4 calls
    crafted(
        "a",
        [
            ("medical_retriever", True),
            ("medical_retriever", False),
            ("web_search", False),
            ("document_read", False),
        ],
        filters=PASSED,
        guidance="mtg",
    ),
    # medical only, 2 calls
    crafted("b", [("medical_retriever", False), ("clinical_reasoning", False)], filters=PASSED),
    # general first, switches, an unrecovered web_search error: 3 calls
    crafted(
        "c",
        [("web_search", True), ("medical_retriever", False), ("document_read", False)],
        filters=rejected("no_unrecovered_error", "judge_correct"),
    ),
    # no calls, ran out of turns
    crafted("d", [], termination="max_turns", filters=rejected("final_answer", "judge_correct")),
]


def test_the_numbers_of_paper_section_4_1() -> None:
    summary = summarise(SET)
    assert summary.trajectories == 4
    assert summary.tool_calls_total == 9
    assert summary.tool_calls_mean == pytest.approx(9 / 4)
    assert summary.tool_calls_median == 2.5
    assert summary.tool_calls_histogram == {0: 1, 2: 1, 3: 1, 4: 1}
    assert summary.tool_calls_by_tool == {
        "medical_retriever": 4,
        "web_search": 2,
        "document_read": 2,
        "clinical_reasoning": 1,
    }
    assert summary.first_tool == {"medical_retriever": 2, "web_search": 1, "none": 1}
    assert summary.start_medical_retriever == pytest.approx(2 / 4)
    assert summary.switching == pytest.approx(2 / 4)  # a and c; b stays medical
    assert summary.with_errors == pytest.approx(2 / 4)
    assert summary.error_recovery == pytest.approx(1 / 4)  # only a retried successfully
    assert summary.recovery_given_error == pytest.approx(1 / 2)
    assert summary.terminations == {"answer": 3, "max_turns": 1}
    assert summary.guidance == {"none": 3, "mtg": 1}
    assert (summary.filtered, summary.passed, summary.rejected) == (4, 2, 2)
    assert summary.rejections_by_rule == {
        "judge_correct": 2,
        "no_unrecovered_error": 1,
        "final_answer": 1,
    }


def test_rejections_can_come_from_another_set_and_an_empty_set_is_zero() -> None:
    unfiltered = [t.model_copy(update={"filters": None}) for t in SET]
    summary = summarise(unfiltered, filtered=SET[2:])
    assert (summary.filtered, summary.rejected) == (2, 2)
    assert summarise(unfiltered).filtered == 0
    empty = summarise([])
    assert (empty.trajectories, empty.tool_calls_mean, empty.recovery_given_error) == (0, 0.0, None)


def test_call_records_read_errors_from_text_and_from_the_agents_flags() -> None:
    trajectory = SET[0].model_copy(
        update={
            "stats": {
                "calls": [
                    {"turn": 3, "call_id": "c3", "error": True},
                    {"turn": 2, "call_id": None, "name": None, "error": True},
                ]
            }
        }
    )
    records = call_records(trajectory)
    assert [(r.name, r.error) for r in records] == [
        ("medical_retriever", True),
        ("medical_retriever", False),
        (None, True),  # the malformed call of turn 2, after that turn's calls
        ("web_search", True),  # flagged by the agent although its text reads fine
        ("document_read", False),
    ]
    assert is_error_observation("错误：超时") and not is_error_observation("No error found")


def test_the_chart_is_a_png(tmp_path: Path) -> None:
    path = write_chart(summarise(SET), tmp_path / "charts" / "stats.png", title="demo")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    empty = write_chart(summarise([]), tmp_path / "empty.png")
    assert empty.read_bytes()[:4] == b"\x89PNG"


def test_the_summary_is_json_ready() -> None:
    data = json.loads(summarise(SET).model_dump_json())
    assert data["tool_calls_histogram"] == {"0": 1, "2": 1, "3": 1, "4": 1}


def test_the_stats_command_prints_the_table_and_writes_the_chart(tmp_path: Path) -> None:
    from tests.test_synthesis_filters import invoke_quality

    folder = tmp_path / "ws" / "trajectories"
    folder.mkdir(parents=True)
    raw = [t.model_copy(update={"filters": None}) for t in SET]
    (folder / "r1.jsonl").write_text("".join(t.model_dump_json() + "\n" for t in raw))
    (folder / "r1.filtered.jsonl").write_text("".join(t.model_dump_json() + "\n" for t in SET[:2]))
    (folder / "r1.rejected.jsonl").write_text("".join(t.model_dump_json() + "\n" for t in SET[2:]))
    png = tmp_path / "out" / "chart.png"
    result = invoke_quality("stats", "r1", "--png", str(png), workspace=tmp_path / "ws")
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    # all 4 | the 2 that passed | the paper
    assert re.search(r"start with medical_retriever\s*│\s*50%\s*│\s*100%\s*│\s*78%", result.output)
    assert re.search(r"recover from an error\s*│\s*25%\s*│\s*50%\s*│\s*34%", result.output)
    assert re.search(r"judge_correct\s*│\s*2", result.output)

    as_json = invoke_quality("stats", "r1", "--json", workspace=tmp_path / "ws")
    payload = json.loads(as_json.output)
    assert payload["all"]["tool_calls_total"] == 9 and payload["passed"]["trajectories"] == 2
    assert Path(payload["chart"]).name == "r1.stats.png"
