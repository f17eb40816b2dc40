"""``medresearcher qa`` as a user runs it: generate, stats, show, check, tag, calibrate.

The tiny bundle's graph is imported in-process once; every command runs in a child process.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from medresearcher.data import bundle_dir
from medresearcher.kg import GraphStore
from medresearcher.kg.io import import_records
from medresearcher.qa.specialties import SPECIALTIES
from medresearcher.schema import QARecord
from medresearcher.workspace import Workspace, list_runs, read_jsonl
from tests.test_cli import cli


def _tiny_workspace(folder: Path) -> Workspace:
    ws = Workspace(folder / "workspace").ensure()
    with GraphStore(ws.kg_path) as store:
        import_records(store, bundle_dir("tiny"))
    return ws


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[QARecord], str]:
    """A workspace where ``qa generate --n 5`` ran: its folder, records and output."""
    folder = tmp_path_factory.mktemp("cli-qa")
    ws = _tiny_workspace(folder)
    result = cli("qa", "generate", "--n", "5", "--workers", "2", "--seed", "4", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder, list(read_jsonl(ws.qa_path, QARecord)), result.stdout


def _words(text: str) -> str:
    return " ".join(text.split())


def test_generate_writes_n_questions_and_a_manifest(generated) -> None:
    folder, records, stdout = generated
    assert len(records) == 5 and len({r.id for r in records}) == 5
    passed = sum(r.passed for r in records)
    assert f"5 new questions in workspace/qa.jsonl (0 already there; {passed} passed" in stdout
    assert all("near_duplicate" in r.checks and "unique_answer" in r.checks for r in records)
    samples = (folder / "workspace" / "samples.jsonl").read_text().splitlines()
    assert {json.loads(line)["id"] for line in samples} >= {r.sample_id for r in records}
    runs = [m for m in list_runs(Workspace(folder / "workspace")) if "qa-generate" in m["command"]]
    assert runs and runs[-1]["status"] == "ok" and runs[-1]["counts"]["written"] == 5


def test_stats_json_equals_the_file(generated) -> None:
    folder, records, _ = generated
    result = cli("qa", "stats", "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    specialties = Counter(s for r in records for s in (r.specialties or ["(untagged)"]))
    failed = Counter(n for r in records for n, c in r.checks.items() if not c.passed)
    assert stats["questions"] == len(records) == 5
    assert stats["passed_all_checks"] == sum(r.passed for r in records)
    assert stats["hops"] == {str(k): v for k, v in Counter(r.hops for r in records).items()}
    assert stats["paradigm"] == dict(Counter(r.paradigm for r in records))
    assert stats["specialty"] == dict(specialties)
    assert stats["language"] == {"en": 5} and stats["writer"] == {"template": 5}
    assert stats["failed_checks"] == dict(failed)


@pytest.mark.slow  # child processes
def test_show_prints_question_answer_chain_cheat_sheet_and_checks(generated) -> None:
    folder, records, _ = generated
    record = records[-1]
    result = cli("qa", "show", record.id, cwd=folder)
    assert result.returncode == 0, result.stderr
    shown = _words(result.stdout)
    assert _words(record.question) in shown
    assert f"answer: {record.answer}" in shown
    assert f"({record.chain[0]})" in shown and f"({record.chain[-1]})" in shown
    for number, step in enumerate(record.cheat_sheet, start=1):
        assert _words(f"{number}. {step}") in shown
    for name, check in record.checks.items():
        assert re.search(rf"│ {name} +│ {'pass' if check.passed else 'fail'} ", result.stdout)
    as_json = cli("qa", "show", record.id, "--json", cwd=folder)
    assert QARecord.model_validate_json(as_json.stdout) == record

    missing = cli("qa", "show", "Q:nope", cwd=folder)
    assert missing.returncode == 1 and "no question 'Q:nope'" in missing.stderr


def test_an_unknown_strategy_is_one_red_line_and_writes_nothing(tmp_path: Path) -> None:
    _tiny_workspace(tmp_path)
    result = cli("qa", "generate", "--strategy", "nonsense", "--n", "3", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: unknown sampling strategy 'nonsense'; known: max_chain, augmented_chain, "
        "community_core_path, dual_core_bridge, mixed"
    ]
    assert not (tmp_path / "workspace" / "qa.jsonl").exists()
    assert not (tmp_path / "workspace" / "samples.jsonl").exists()


def test_calibrate_without_a_panel_explains_what_to_configure(generated) -> None:
    folder, _, _ = generated
    result = cli("qa", "calibrate", cwd=folder)
    assert result.returncode == 1
    message = _words(result.stderr)
    assert message.startswith("error: calibration needs a panel of reference models")
    assert "--panel" in message and "calibration_panel" in message
    assert not (folder / "workspace" / "qa.calibrated.jsonl").exists()


def test_tag_prints_the_twelve_specialties(generated) -> None:
    folder, records, _ = generated
    assert len(SPECIALTIES) == 12
    result = cli("qa", "tag", "--write", cwd=folder)
    assert result.returncode == 0, result.stderr
    rows = dict(re.findall(r"│ (\S.*?) +│ (\d+) +│", result.stdout))
    assert set(rows) == {*SPECIALTIES, "(none)"}
    # The writer tagged each record from the KG when it wrote it: the same counts.
    expected = Counter(s for r in records for s in (r.specialties or ["(none)"]))
    assert {k: int(v) for k, v in rows.items() if int(v)} == dict(expected)
    tagged = list(read_jsonl(folder / "workspace" / "qa.tagged.jsonl", QARecord))
    assert [(r.id, r.specialties) for r in tagged] == [(r.id, r.specialties) for r in records]


@pytest.mark.slow  # child processes
def test_check_writes_checked_records_and_catches_an_edit(generated) -> None:
    folder, records, _ = generated
    result = cli("qa", "check", cwd=folder)
    assert result.returncode == 0, result.stderr
    checked = list(read_jsonl(folder / "workspace" / "qa.checked.jsonl", QARecord))
    assert [(r.id, r.checks) for r in checked] == [(r.id, r.checks) for r in records]
    assert "5 questions checked" in result.stdout

    # A hand edit that gives the answer away is caught on the next check.
    target = next(r for r in records if len(r.answer) >= 3)  # shorter names are not matched
    leaky = target.model_copy(
        update={"question": f"{target.question} (Hint: it is {target.answer}.)"}
    )
    others = [r for r in records if r.id != target.id]
    edited = folder / "workspace" / "edited.jsonl"
    edited.write_text(
        "\n".join(r.model_dump_json() for r in [leaky, *others]) + "\n", encoding="utf-8"
    )
    result = cli("qa", "check", "--file", str(edited), cwd=folder)
    assert result.returncode == 0, result.stderr
    again = {r.id: r for r in read_jsonl(folder / "workspace" / "edited.checked.jsonl", QARecord)}
    assert again[leaky.id].checks["answer_not_in_question"].passed is False
    assert all(again[r.id].checks == r.checks for r in others)
    assert re.search(r"│ answer_not_in_question +│ 1 ", result.stdout)
