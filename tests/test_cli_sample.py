"""``medresearcher sample`` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import cli


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sample")
    assert cli("kg", "import", "--bundle", "tiny", cwd=folder).returncode == 0
    return folder


@pytest.mark.parametrize(
    "strategy", ["max_chain", "augmented_chain", "community_core_path", "dual_core_bridge", "mixed"]
)
def test_each_strategy_writes_reproducible_samples(workspace: Path, strategy: str) -> None:
    args = ("sample", "--strategy", strategy, "--n", "4", "--max-hops", "4", "--seed", "3")
    first = cli(*args, "--out", f"{strategy}-a", cwd=workspace)
    assert first.returncode == 0, first.stderr
    second = cli(*args, "--out", f"{strategy}-b", cwd=workspace)
    a = (workspace / "workspace" / f"{strategy}-a.jsonl").read_text()
    b = (workspace / "workspace" / f"{strategy}-b.jsonl").read_text()
    assert second.returncode == 0 and a == b  # the same seed gives the same samples
    samples = [json.loads(line) for line in a.splitlines()]
    assert len(samples) == 4 and all(s["hops"] >= 1 for s in samples)
    if strategy == "max_chain":  # the longest chain honours the length asked for
        assert all(s["hops"] == 4 for s in samples)
    again = cli(*args, "--out", f"{strategy}-a", cwd=workspace)
    assert "0 new samples" in again.stdout  # resumable: nothing written twice


def test_sample_show_draws_the_chain(workspace: Path) -> None:
    cli("sample", "--n", "2", "--seed", "1", "--out", "samples", cwd=workspace)
    first = json.loads((workspace / "workspace" / "samples.jsonl").read_text().splitlines()[0])
    shown = cli("sample", "show", first["id"], cwd=workspace)
    assert shown.returncode == 0, shown.stderr
    assert f"({first['chain'][0]})" in shown.stdout and "unique answer" in shown.stdout
    missing = cli("sample", "show", "S:nope", cwd=workspace)
    assert missing.returncode == 1 and "no sample 'S:nope'" in missing.stderr
