"""PharmacotherapyDB 1.0 (drug → common disease) and PubMedQA PQA-L abstracts."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

from bundle.graph import BundleGraph
from medresearcher.schema import Document

PHARMACO_SOURCE = "PharmacotherapyDB 1.0"
PUBMEDQA_SOURCE = "PubMedQA PQA-L"
PREDICATE = {"DM": "treats", "SYM": "palliates", "NOT": "not_indicated"}
PHRASE = {
    "DM": "is a disease-modifying therapy for",
    "SYM": "is a symptomatic therapy for",
    "NOT": "is not indicated for",
}


def _tsv(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def drug_id(drugbank: str) -> str:
    return f"DRUGBANK:{drugbank}"


def add_pharmacotherapy(graph: BundleGraph, folder: Path) -> list[Document]:
    """Drugs, the 97 common diseases, treats / palliates / not_indicated edges, and one
    catalogue sentence per indication for the corpus."""
    for row in _tsv(folder / "diseases.tsv.gz"):
        graph.entity(
            row["doid_id"], "disease", row["disease"], PHARMACO_SOURCE, attrs={"common": True}
        )
    for row in _tsv(folder / "drugs.tsv.gz"):
        graph.entity(drug_id(row["drugbank_id"]), "drug", row["drug"], PHARMACO_SOURCE)
    docs = []
    for row in _tsv(folder / "indications.tsv.gz"):
        drug, disease = drug_id(row["drugbank_id"]), row["doid_id"]
        clinical = {
            "category": row["category"],
            "n_curators": int(row["n_curators"]),
            "n_resources": int(row["n_resources"]),
        }
        graph.relate(drug, PREDICATE[row["category"]], disease, PHARMACO_SOURCE, clinical=clinical)
        curators = "curator" if row["n_curators"] == "1" else "curators"
        docs.append(
            Document(
                doc_id=f"PHARMACOTHERAPYDB:{row['drugbank_id']}-{disease}",
                title=f"{row['drug']} and {row['disease']}",
                text=f"{row['drug']} {PHRASE[row['category']]} {row['disease']} "
                f"(PharmacotherapyDB 1.0; {row['n_curators']} physician {curators}).",
                source="pharmacotherapydb",
                source_type="drug_catalog",
                year=2016,
                url=f"https://go.drugbank.com/drugs/{row['drugbank_id']}",
                entity_ids=[drug, disease],
                metadata=clinical,
            )
        )
    return docs


def pubmedqa_documents(folder: Path) -> list[Document]:
    """The 1,000 PQA-L abstracts: contexts and conclusion, year and MeSH.

    The question is left out on purpose: PubMedQA is also an evaluation set, and its
    question (a rewritten title) in the corpus would make known-item retrieval trivial
    and leak evaluation items into training data. The dataset has no real title offline.
    """
    with gzip.open(folder / "ori_pqal.json.gz", "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    docs = []
    for pmid, item in data.items():
        contexts = item["CONTEXTS"]
        labels = (item.get("LABELS") or []) + [""] * len(contexts)  # labels may be missing
        sections = [
            f"{label}: {text}" if label else text
            for label, text in zip(labels[: len(contexts)], contexts, strict=True)
        ]
        sections.append(f"CONCLUSIONS: {item['LONG_ANSWER']}")
        year = item.get("YEAR")
        docs.append(
            Document(
                doc_id=f"PMID:{pmid}",
                title=f"PubMed abstract {pmid}",
                text=" ".join(sections),
                source="pubmed",
                source_type="article",
                year=int(year) if year else None,
                url=f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/",
                metadata={"mesh": item.get("MESHES") or [], "dataset": PUBMEDQA_SOURCE},
            )
        )
    return docs
