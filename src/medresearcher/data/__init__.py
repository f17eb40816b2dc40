"""The embedded data bundles: a knowledge-graph slice, a corpus, and DDx tables.

Two bundles ship with the package, built reproducibly from open data by
``scripts/build_demo_bundle.py``:

- ``demo`` — the default offline world: ~2,400 rare disorders with phenotypes, genes and
  groups (Orphanet), Disease Ontology slims, drugs (PharmacotherapyDB), a 12,900-document
  corpus, phenotype likelihoods and disease priors;
- ``tiny`` — about 40 well-known rare diseases and some common ones, for fast tests.

Every loader also accepts a path to a folder laid out the same way.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from medresearcher.errors import InputError
from medresearcher.schema import Document, Entity, Relation
from medresearcher.workspace.jsonl import read_jsonl

__all__ = [
    "BUNDLES",
    "DiseasePrior",
    "PhenotypeLikelihood",
    "bundle_dir",
    "bundle_manifest",
    "disease_priors",
    "iter_documents",
    "iter_entities",
    "iter_relations",
    "phenotype_likelihoods",
]

BUNDLES = ("demo", "tiny")


@dataclass(frozen=True)
class PhenotypeLikelihood:
    """P(phenotype present | disease), from Orphanet's frequency bin (medical-data.md §3c)."""

    disease_id: str
    hpo_id: str
    hpo_term: str
    frequency: str
    p_present: float


@dataclass(frozen=True)
class DiseasePrior:
    """P(disease) from its Orphanet prevalence class; ``basis`` says which estimate."""

    disease_id: str
    name: str
    prevalence_class: str
    prior: float
    basis: str


def bundle_dir(bundle: str | Path = "demo") -> Path:
    """The folder of a named bundle, or ``bundle`` itself when it is a folder."""
    if isinstance(bundle, Path) or bundle not in BUNDLES:
        path = Path(bundle)
        if not (path / "manifest.json").is_file():
            raise InputError(
                f"{path}: not a data bundle (no manifest.json); named bundles: {', '.join(BUNDLES)}"
            )
        return path
    return Path(str(resources.files("medresearcher.data").joinpath(bundle)))


def bundle_manifest(bundle: str | Path = "demo") -> dict[str, Any]:
    """Counts, input hashes and licences written by the build."""
    path = bundle_dir(bundle) / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8"))


def iter_entities(bundle: str | Path = "demo") -> Iterator[Entity]:
    return read_jsonl(bundle_dir(bundle) / "entities.jsonl.gz", Entity)


def iter_relations(bundle: str | Path = "demo") -> Iterator[Relation]:
    return read_jsonl(bundle_dir(bundle) / "relations.jsonl.gz", Relation)


def iter_documents(bundle: str | Path = "demo") -> Iterator[Document]:
    return read_jsonl(bundle_dir(bundle) / "corpus.jsonl.gz", Document)


def phenotype_likelihoods(bundle: str | Path = "demo") -> list[PhenotypeLikelihood]:
    return [
        PhenotypeLikelihood(
            r["disease_id"], r["hpo_id"], r["hpo_term"], r["frequency"], float(r["p_present"])
        )
        for r in _tsv(bundle_dir(bundle) / "phenotype_likelihoods.tsv.gz")
    ]


def disease_priors(bundle: str | Path = "demo") -> dict[str, DiseasePrior]:
    return {
        r["disease_id"]: DiseasePrior(
            r["disease_id"], r["name"], r["prevalence_class"], float(r["prior"]), r["basis"]
        )
        for r in _tsv(bundle_dir(bundle) / "disease_priors.tsv.gz")
    }


def _tsv(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))
