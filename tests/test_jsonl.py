"""The resumable JSONL writer: skip done ids, drop cut lines, survive SIGKILL."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from medresearcher.errors import InputError
from medresearcher.workspace import JsonlWriter, read_jsonl


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_written_ids_are_skipped_on_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "out" / "qa.jsonl"
    with JsonlWriter(path) as out:
        assert out.write({"id": "a", "x": 1})
        assert not out.write({"id": "a", "x": 2})
    with JsonlWriter(path) as out:
        assert "a" in out
        assert out.write({"id": "b", "x": 3})
        assert not out.write({"id": "a", "x": 4})
        assert out.written == 1
    assert [json.loads(line)["x"] for line in lines_of(path)] == [1, 3]


def test_a_line_cut_by_a_crash_is_dropped_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        '{"id": "a"}\n{"id": "b"}\n{"id": "c", "question": "Which enz', encoding="utf-8"
    )
    with caplog.at_level(logging.WARNING), JsonlWriter(path) as out:
        assert set(out.ids) == {"a", "b"}
        out.write({"id": "c", "question": "Which enzyme?"})
    assert "qa.jsonl:3: dropping a line cut by an earlier crash" in caplog.text
    assert [json.loads(line)["id"] for line in lines_of(path)] == ["a", "b", "c"]
    assert all(line.endswith("\n") for line in lines_of(path))


def test_a_complete_bad_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"qa.jsonl:2:1: not valid JSON: Expecting value"):
        JsonlWriter(path).open()
    path.write_text('{"id": "a"}\n{"name": "b"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"qa.jsonl:2: record has no 'id' field"):
        JsonlWriter(path).open()


def test_a_second_writer_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    with JsonlWriter(path), pytest.raises(InputError, match="another process is writing"):
        JsonlWriter(path).open()


class Item(BaseModel):
    id: str
    hops: int


def test_read_jsonl_validates_and_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"id": "a", "hops": 3}\n{"id": "b", "hops": "many"}\n', encoding="utf-8")
    reader = read_jsonl(path, Item)
    assert next(reader) == Item(id="a", hops=3)
    with pytest.raises(InputError, match=r"qa.jsonl:2: hops: Input should be a valid integer"):
        next(reader)


def test_read_jsonl_skips_a_cut_last_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"id": "a", "hops": 3}\n{"id": "b", "ho', encoding="utf-8")
    assert [r["id"] for r in read_jsonl(path)] == ["a"]


# A batch job: writes ids 0..N-1 through JsonlWriter. With "torn", once it has written half
# the batch it also writes half of the next line straight to the file descriptor and waits
# to be killed: the on-disk state of a crash in the middle of a write.
BATCH = textwrap.dedent(
    """
    import os, sys, time
    from medresearcher.workspace import JsonlWriter
    path, total, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with JsonlWriter(path) as out:
        for i in range(total):
            rid = f"item-{i:04d}"
            if rid in out:
                continue
            if mode == "torn" and out.written == total // 2:
                os.write(out._file.fileno(), b'{"id": "' + rid.encode() + b'", "text": "cut he')
                time.sleep(60)
            out.write({"id": rid, "text": "x" * 2000})
            time.sleep(0.002)
    print("done", flush=True)
    """
)


def run_batch(path: Path, total: int, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", BATCH, str(path), str(total), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_lines(path: Path, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {count} lines")


@pytest.mark.parametrize("mode", ["plain", "torn"])
def test_sigkill_mid_batch_then_rerun_gives_every_id_once_and_no_cut_line(
    tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "batch.jsonl"
    total = 200
    first = run_batch(path, total, mode)
    wait_for_lines(path, 40 if mode == "plain" else total // 2)
    if mode == "torn":
        time.sleep(0.2)  # let it write the half line
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    killed_at = path.read_bytes()
    assert killed_at.count(b"\n") < total
    if mode == "torn":
        assert not killed_at.endswith(b"\n")  # the crash really left a cut line

    second = run_batch(path, total, "plain")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert out.strip() == "done"
    if mode == "torn":
        assert "dropping a line cut by an earlier crash" in err

    records = [json.loads(line) for line in lines_of(path)]  # every line parses
    ids = [r["id"] for r in records]
    assert sorted(ids) == [f"item-{i:04d}" for i in range(total)]
    assert len(ids) == len(set(ids))
    assert all(r["text"] == "x" * 2000 for r in records)
