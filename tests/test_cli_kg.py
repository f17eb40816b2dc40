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
