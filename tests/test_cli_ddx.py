"""``medresearcher ddx``, run as a user runs it: a real process, its output and exit code."""

from __future__ import annotations

import json

from tests.test_cli import cli


def test_ddx_prints_a_ranked_table_with_next_step_unmatched_and_credits() -> None:
    result = cli(
        "ddx",
        "fever, enlarged spleen; no jaundice, xyzzy plugh",
        "--absent",
        "hepatomegaly",
        "--age",
        "30",
        "--sex",
        "F",
        "--top",
        "4",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "read 'enlarged spleen' as Splenomegaly (HP:0001744, synonym)" in out
    assert "differential: Fever, Splenomegaly; absent: Jaundice, Hepatomegaly" in out
    for column in ("disease", "id", "posterior", "supporting", "against"):
        assert column in out
    ranks = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert ranks == ["1", "2", "3", "4"]
    assert "next finding to check:" in out and "bits" in out
    assert "unmatched, not used: 'xyzzy plugh'" in out
    assert "Research software, not clinical advice." in out
    assert "Orphanet" in out and "Human Phenotype Ontology" in out


def test_ddx_json_on_the_tiny_bundle() -> None:
    result = cli(
        "ddx",
        "arachnodactyly, ectopia lentis, aortic root aneurysm, tall stature",
        "--bundle",
        "tiny",
        "--onset",
        "childhood",
        "--top",
        "3",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["diseases"][0]["disease_id"] == "ORPHA:558"  # Marfan syndrome
    assert len(data["diseases"]) == 3
    assert 0 < sum(d["posterior"] for d in data["diseases"]) <= 1.0 + 1e-9
    assert data["context"]["onset"] == "Childhood"
    assert [f["observed"] for f in data["findings"]] == ["present"] * 4
    assert data["next_findings"] and data["next_findings"][0]["expected_gain_bits"] > 0
    assert data["disclaimer"] == "Research software, not clinical advice."


def test_ddx_refuses_input_it_cannot_use() -> None:
    nothing = cli("ddx", "xyzzy plugh", "--bundle", "tiny")
    assert nothing.returncode == 1
    assert "none of the findings matched an HPO term" in nothing.stderr
    bad_sex = cli("ddx", "fever", "--sex", "X", "--bundle", "tiny")
    assert bad_sex.returncode == 1 and "--sex" in bad_sex.stderr
