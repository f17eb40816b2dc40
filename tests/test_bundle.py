"""The embedded bundles: facts a clinician would check, loaders, and a reproducible build."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from medresearcher.data import (
    bundle_dir,
    bundle_manifest,
    disease_priors,
    iter_documents,
    iter_entities,
    iter_relations,
    phenotype_likelihoods,
)
from medresearcher.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FABRY = "ORPHA:324"


@pytest.fixture(scope="module")
def demo() -> dict:
    """The demo bundle's records about Fabry disease (read once: the bundle is large)."""
    entities = {e.id: e for e in iter_entities("demo")}
    relations = [r for r in iter_relations("demo") if FABRY in (r.subj, r.obj)]
    return {"entities": entities, "relations": relations}


def test_fabry_disease_with_its_gene_phenotypes_and_inheritance(demo: dict) -> None:
    fabry = demo["entities"][FABRY]
    assert fabry.name == "Fabry disease"
    assert fabry.type == "disease"
    assert "Anderson-Fabry disease" in fabry.aliases
    assert any("X-linked" in mode for mode in fabry.attrs["inheritance"])
    assert "OMIM:301500" in fabry.xrefs
    assert "angiokeratoma" in fabry.description

    genes = [r for r in demo["relations"] if r.pred == "associated_gene"]
    assert [(r.obj, demo["entities"][r.obj].name) for r in genes] == [("HGNC:4296", "GLA")]
    assert genes[0].clinical["association_type"] == "Disease-causing germline mutation(s) in"

    phenotypes = {r.obj: r for r in demo["relations"] if r.pred == "has_phenotype"}
    assert len(phenotypes) >= 50
    renal = phenotypes["HP:0000083"]
    assert demo["entities"]["HP:0000083"].name == "Renal insufficiency"
    assert renal.clinical["frequency"] == "Very frequent (99-80%)"
    assert (renal.clinical["freq_low"], renal.clinical["freq_high"]) == (0.8, 0.99)
    assert renal.source == "Orphanet ORPHApackets 2025-12"

    parents = {r.obj for r in demo["relations"] if r.pred == "subclass_of" and r.subj == FABRY}
    assert "ORPHA:79225" in parents  # a lysosomal-disease group (hierarchy hop)


def test_fabry_is_linked_to_its_disease_ontology_twin(demo: dict) -> None:
    twins = [r.subj for r in demo["relations"] if r.pred == "same_as" and r.obj == FABRY]
    assert twins == ["DOID:14499"]
    assert demo["entities"]["DOID:14499"].name == "Fabry disease"
    assert "DOID:14499" in demo["entities"][FABRY].xrefs
    assert any(x.startswith("MESH:") for x in demo["entities"][FABRY].xrefs)


def test_excluded_phenotypes_become_lacks_phenotype_edges() -> None:
    lacks = [r for r in iter_relations("demo") if r.pred == "lacks_phenotype"]
    assert lacks
    assert all(r.clinical["frequency"] == "Excluded (0%)" for r in lacks)


def test_drugs_treat_common_diseases() -> None:
    entities = {e.id: e for e in iter_entities("tiny")}
    treats = [r for r in iter_relations("tiny") if r.pred == "treats"]
    pairs = {(entities[r.subj].name, entities[r.obj].name) for r in treats}
    assert ("Donepezil", "Alzheimer's disease") in pairs
    assert all(r.clinical["category"] == "DM" for r in treats)


def test_phenotype_likelihoods_and_priors_follow_the_frequency_bins() -> None:
    rows = {(r.disease_id, r.hpo_id): r for r in phenotype_likelihoods("tiny")}
    assert rows[(FABRY, "HP:0000083")].p_present == pytest.approx(0.895)
    assert {r.p_present for r in rows.values()} <= {0.98, 0.895, 0.545, 0.17, 0.025, 0.01}
    priors = disease_priors("tiny")
    assert priors[FABRY].prevalence_class == "1-5 / 10 000"
    assert priors[FABRY].prior == pytest.approx(3e-4)
    assert priors[FABRY].basis == "Point prevalence, Europe"


def test_corpus_documents_carry_source_and_links() -> None:
    docs = {d.doc_id: d for d in iter_documents("tiny")}
    fabry = docs[FABRY]
    assert fabry.source == "orphanet" and fabry.source_type == "reference"
    assert fabry.url == "https://www.orpha.net/en/disease/detail/324"
    assert "Inheritance: X-linked" in fabry.text
    twin = docs["DOID:14499"]
    assert set(twin.entity_ids) == {"DOID:14499", FABRY}
    abstracts = [d for d in docs.values() if d.doc_id.startswith("PMID:")]
    assert abstracts and all("CONCLUSIONS:" in d.text for d in abstracts)


def test_manifest_counts_match_the_files() -> None:
    manifest = bundle_manifest("tiny")
    entities = list(iter_entities("tiny"))
    assert manifest["counts"]["entities"] == len(entities)
    assert manifest["counts"]["relations"] == sum(1 for _ in iter_relations("tiny"))
    assert manifest["counts"]["documents"] == sum(1 for _ in iter_documents("tiny"))
    assert {s["licence"] for s in manifest["licences"]} == {"CC BY 4.0", "CC0 1.0", "MIT"}
    ids = [e.id for e in entities]
    assert len(ids) == len(set(ids))


def test_bundle_sizes_stay_within_budget() -> None:
    for name, limit in (("demo", 15e6), ("tiny", 1e6)):
        folder = bundle_dir(name)
        size = sum(p.stat().st_size for p in folder.iterdir())
        assert size < limit, (name, size)
        assert (folder / "ATTRIBUTION.md").read_text().count("Licence:") == 4


def test_an_unknown_bundle_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a data bundle"):
        bundle_dir(tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data (the build's input) is absent")
def test_the_build_is_deterministic(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "build_demo_bundle.py"),
            "--data",
            str(SHARED_DATA),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for name in ("demo", "tiny"):
        committed = bundle_dir(name)
        files = sorted(p.name for p in committed.iterdir())
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == files
        _, mismatch, errors = filecmp.cmpfiles(committed, tmp_path / name, files, shallow=False)
        assert (mismatch, errors) == ([], []), f"{name}: rebuilt files differ: {mismatch}"
