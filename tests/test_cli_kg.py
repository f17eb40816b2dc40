"""``medresearcher kg`` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from medresearcher.data import bundle_manifest
from tests.test_cli import cli


def test_demo_import_stats_show_and_export(tmp_path: Path) -> None:
    assert cli("kg", "import", "--demo", cwd=tmp_path).returncode == 0
    stats = json.loads(cli("kg", "stats", "--json", cwd=tmp_path).stdout)
    counts = bundle_manifest("demo")["counts"]
    assert (stats["entities"], stats["relations"]) == (counts["entities"], counts["relations"])
    again = cli("kg", "import", "--demo", cwd=tmp_path)  # twice: nothing changes
    assert json.loads(cli("kg", "stats", "--json", cwd=tmp_path).stdout) == stats, again.stderr

    shown = cli("kg", "show", "ORPHA:324", "--limit", "0", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "Fabry disease" in text and "GLA" in text and "HGNC:4296" in text
    assert "Very frequent (99-80%)" in text and "Renal insufficiency" in text
    assert "inheritance: X-linked" in text
    assert cli("kg", "show", "OMIM:301500", cwd=tmp_path).stdout.startswith("Fabry disease")
    missing = cli("kg", "show", "ORPHA:0", cwd=tmp_path)
    assert missing.returncode == 1 and "no entity 'ORPHA:0'" in missing.stderr

    out = tmp_path / "graph.json"
    assert cli("kg", "export", str(out), "--format", "d3", cwd=tmp_path).returncode == 0
    assert len(json.loads(out.read_text())["nodes"]) == counts["entities"]


def test_mine_rare_then_walk_only_expansion(tmp_path: Path) -> None:
    empty = cli("kg", "mine-rare", "--bundle", "tiny", cwd=tmp_path)
    assert empty.returncode == 1 and "kg import --demo" in empty.stderr
    assert cli("kg", "import", "--bundle", "tiny", cwd=tmp_path).returncode == 0
    mined = cli("kg", "mine-rare", "--bundle", "tiny", "--tau", "1e-4", cwd=tmp_path)
    assert mined.returncode == 0, mined.stderr
    assert "Rate scale: 1 mention =" in mined.stdout
    seeds_path = tmp_path / "workspace" / "seeds.jsonl"
    seeds = [json.loads(line) for line in seeds_path.read_text().splitlines()]
    assert seeds and all(s["rate"] < 1e-4 and s["filter"] == "not run" for s in seeds)

    no_model = cli("kg", "expand", "--seeds", str(seeds_path), cwd=tmp_path)
    assert no_model.returncode == 1
    assert "discovery needs an LLM endpoint" in no_model.stderr
    seed_file = tmp_path / "seed.txt"
    seed_file.write_text("ORPHA:324\n")
    walked = cli(
        "kg", "expand", "--seeds", str(seed_file), "--discover", "off", "--steps", "4", cwd=tmp_path
    )
    assert walked.returncode == 0, walked.stderr
    assert "4 steps (4 walks" in walked.stdout
    log = tmp_path / "workspace" / "runs" / "kg-expand.steps.jsonl"
    steps = [json.loads(line) for line in log.read_text().splitlines()]
    assert [s["action"] for s in steps] == ["walk"] * 4
    assert steps[0]["from"] == "ORPHA:324"
