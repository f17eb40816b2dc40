"""Orphanet (ORPHApackets Dec 2025 TSVs): rare disorders, phenotypes, genes, groups.

Selection (../shared/docs/medical-data.md §3a): disorders with a definition, at least 5
annotated phenotypes and at least one gene of their own or of a subtype, of a clinical
disorder type. Categories and groups enter as parents (``subclass_of``).
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from pathlib import Path

from bundle.graph import BundleGraph
from medresearcher.schema import Document

SOURCE = "Orphanet ORPHApackets 2025-12"
RELEASE_YEAR = 2025
CLINICAL_TYPES = {
    "Disease",
    "Malformation syndrome",
    "Clinical syndrome",
    "Clinical subtype",
    "Etiological subtype",
    "Morphological anomaly",
    "Biological anomaly",
}
MIN_PHENOTYPES = 5
# Probability that a finding is present, from Orphanet's frequency bins (§3c). Never 0 or
# 1: one missing "obligate" finding must not veto a diagnosis outright.
P_PRESENT = {
    "Obligate (100%)": 0.98,
    "Very frequent (99-80%)": 0.895,
    "Frequent (79-30%)": 0.545,
    "Occasional (29-5%)": 0.17,
    "Very rare (<4-1%)": 0.025,
    "Excluded (0%)": 0.01,
}
# Disease priors from prevalence classes (§3c).
PRIOR_BY_CLASS = {
    ">1 / 1000": 2e-3,
    "6-9 / 10 000": 7.5e-4,
    "1-5 / 10 000": 3e-4,
    "1-9 / 100 000": 5e-5,
    "1-9 / 1 000 000": 5e-6,
    "<1 / 1 000 000": 5e-7,
}
UNKNOWN_PRIOR = 1e-6


@dataclass
class Disorder:
    code: str
    label: str
    disorder_type: str
    definition: str
    synonyms: list[str]
    parents: list[tuple[str, str]]
    children: list[str]
    omim: list[tuple[str, str]]  # (OMIM:id, mapping relation)
    inheritance: list[str]
    onset: list[str]
    prevalences: list[dict[str, str]]
    phenotypes: list[dict[str, str]] = field(default_factory=list)
    genes: list[dict[str, str]] = field(default_factory=list)


def _split(value: str, sep: str = " | ") -> list[str]:
    return [part.strip() for part in value.split(sep) if part.strip()]


def _rows(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def read_disorders(folder: Path) -> dict[str, Disorder]:
    disorders: dict[str, Disorder] = {}
    for row in _rows(folder / "orphanet_disorders.tsv.gz"):
        omim = []
        for xref in _split(row["xrefs"]):
            ident, _, relation = xref.partition("[")
            omim.append((ident, relation.rstrip("]")))
        prevalences = []
        for item in _split(row["prevalences"], " ;; "):
            parts = (item.split("|") + [""] * 5)[:5]
            prevalences.append(
                dict(zip(("type", "class", "mean", "geography", "source"), parts, strict=True))
            )
        disorders[row["orpha_code"]] = Disorder(
            code=row["orpha_code"],
            label=row["label"],
            disorder_type=row["disorder_type"],
            definition=row["definition"].strip(),
            synonyms=_split(row["synonyms"]),
            parents=list(
                zip(_split(row["parent_codes"]), _split(row["parent_labels"]), strict=True)
            ),
            children=_split(row["child_codes"]),
            omim=omim,
            inheritance=[
                i for i in _split(row["inheritance"]) if i not in {"Not applicable", "Unknown"}
            ],
            onset=[o for o in _split(row["age_of_onset"]) if o != "Unknown"],
            prevalences=prevalences,
        )
    for row in _rows(folder / "orphanet_disease_phenotype_freq.tsv.gz"):
        if row["orpha_code"] in disorders:
            disorders[row["orpha_code"]].phenotypes.append(row)
    for row in _rows(folder / "orphanet_disease_gene.tsv.gz"):
        if row["orpha_code"] in disorders and row["hgnc_id"]:
            disorders[row["orpha_code"]].genes.append(row)
    return disorders


def subtype_genes(disorders: dict[str, Disorder], code: str) -> list[tuple[str, dict[str, str]]]:
    """Genes of the disorder's subtypes, walking child codes (cycle-safe), with their subtype."""
    found: list[tuple[str, dict[str, str]]] = []
    seen = {code}
    stack = list(disorders[code].children)
    while stack:
        child = stack.pop()
        if child in seen or child not in disorders:
            continue
        seen.add(child)
        found.extend((child, gene) for gene in disorders[child].genes)
        stack.extend(disorders[child].children)
    return sorted(found, key=lambda pair: (pair[1]["hgnc_id"], pair[0]))


def select_slice(disorders: dict[str, Disorder]) -> list[str]:
    """The rare disorders of the KG slice (§3a), sorted by code."""
    chosen = []
    for code, d in disorders.items():
        present = [p for p in d.phenotypes if p["frequency_label"] != "Excluded (0%)"]
        if (
            d.definition
            and d.disorder_type in CLINICAL_TYPES
            and len(present) >= MIN_PHENOTYPES
            and (d.genes or subtype_genes(disorders, code))
        ):
            chosen.append(code)
    return sorted(chosen, key=lambda c: int(c.split(":")[1]))


def prevalence_class(d: Disorder) -> tuple[str | None, dict[str, str] | None]:
    """The most representative prevalence class: point prevalence, worldwide first."""

    def rank(p: dict[str, str]) -> tuple[int, int]:
        kind = (
            0 if p["type"] == "Point prevalence" else 1 if p["type"] == "Prevalence at birth" else 2
        )
        geo = {"Worldwide": 0, "Europe": 1}.get(p["geography"], 2)
        return kind, geo

    known = [p for p in d.prevalences if p["class"] in PRIOR_BY_CLASS]
    if not known:
        return None, None
    best = min(known, key=rank)
    return best["class"], best


def disorder_text(d: Disorder) -> str:
    parts = [d.definition]
    if d.synonyms:
        parts.append("Synonyms: " + "; ".join(d.synonyms) + ".")
    facts = []
    if d.inheritance:
        facts.append("Inheritance: " + ", ".join(d.inheritance))
    if d.onset:
        facts.append("Onset: " + ", ".join(d.onset))
    klass, _ = prevalence_class(d)
    if klass:
        facts.append("Prevalence: " + klass)
    if facts:
        parts.append("; ".join(facts) + ".")
    return " ".join(parts)


def add_to_graph(
    graph: BundleGraph, disorders: dict[str, Disorder], slice_codes: list[str]
) -> None:
    """Slice disorders with their phenotypes, genes and parent groups."""
    for code in slice_codes:
        d = disorders[code]
        klass, _ = prevalence_class(d)
        attrs = {
            "disorder_type": d.disorder_type,
            "inheritance": d.inheritance,
            "onset": d.onset,
            "prevalence_class": klass,
            "prevalence": [p for p in d.prevalences if p["class"]],
            "xref_mapping": {ident: rel for ident, rel in d.omim},
            "n_phenotypes": len({p["hpo_id"] for p in d.phenotypes}),
            "rare": True,
        }
        graph.entity(
            code,
            "disease",
            d.label,
            SOURCE,
            aliases=d.synonyms,
            xrefs=[ident for ident, _ in d.omim],
            attrs=attrs,
            description=d.definition,
        )
        for p in d.phenotypes:
            graph.entity(p["hpo_id"], "phenotype", p["hpo_term"], SOURCE)
            excluded = p["frequency_label"] == "Excluded (0%)"
            clinical = {"frequency": p["frequency_label"], "frequency_hpo": p["frequency_hpo_term"]}
            if not excluded:
                clinical.update(
                    freq_low=float(p["freq_low"]),
                    freq_high=float(p["freq_high"]),
                    freq_mid=float(p["freq_mid"]),
                )
            graph.relate(
                code,
                "lacks_phenotype" if excluded else "has_phenotype",
                p["hpo_id"],
                SOURCE,
                clinical=clinical,
            )
        own = [(None, g) for g in d.genes]
        via = [] if d.genes else subtype_genes(disorders, code)
        for subtype, g in own + via:
            graph.entity(
                g["hgnc_id"],
                "gene",
                g["gene_symbol"],
                SOURCE,
                aliases=[g["gene_name"]],
                xrefs=[g["omim_gene"]] if g["omim_gene"] else [],
                attrs={"symbol": g["gene_symbol"], "full_name": g["gene_name"]},
            )
            clinical = {"association_type": g["association_type"]}
            if subtype:
                clinical["via_subtype"] = subtype
            graph.relate(code, "associated_gene", g["hgnc_id"], SOURCE, clinical=clinical)
        for parent_code, parent_label in d.parents:
            parent = disorders.get(parent_code)
            if parent is None:
                continue
            graph.entity(
                parent_code,
                "disease" if parent.disorder_type in CLINICAL_TYPES else "category",
                parent_label,
                SOURCE,
                description=parent.definition or None,
                attrs={"disorder_type": parent.disorder_type},
            )
            graph.relate(code, "subclass_of", parent_code, SOURCE)


# The phenotype bins a researcher would call hallmark signs.
HALLMARK_FREQUENCIES = ("Obligate (100%)", "Very frequent (99-80%)", "Frequent (79-30%)")


def document_fields(disorders: dict[str, Disorder], d: Disorder) -> dict[str, str]:
    """What a researcher describes a disorder by, as separate fields (issue: enriched
    documents): the definition text often lacks the gene symbols, which sit on subtypes,
    and the hallmark signs, which sit in the phenotype table."""
    genes: dict[str, str] = {g["gene_symbol"]: g["gene_name"] for g in d.genes}
    for _, g in subtype_genes(disorders, d.code):
        genes.setdefault(g["gene_symbol"], g["gene_name"])
    hallmarks = [
        p["hpo_term"]
        for band in HALLMARK_FREQUENCIES
        for p in d.phenotypes
        if p["frequency_label"] == band
    ]
    # The rarer signs, for readers (document_read) rather than the index: the retriever's
    # field weights leave this field out, so it changes no ranking.
    others = [
        p["hpo_term"]
        for p in d.phenotypes
        if p["frequency_label"] not in (*HALLMARK_FREQUENCIES, "Excluded (0%)")
    ]
    fields = {
        "names": "; ".join([d.label, *d.synonyms]),
        "genes": "; ".join(f"{symbol} ({name})" for symbol, name in sorted(genes.items())),
        "phenotypes": "; ".join(dict.fromkeys(hallmarks)),
        "other_phenotypes": "; ".join(h for h in dict.fromkeys(others) if h not in hallmarks),
        "excluded_phenotypes": "; ".join(
            dict.fromkeys(
                p["hpo_term"] for p in d.phenotypes if p["frequency_label"] == "Excluded (0%)"
            )
        ),
        "inheritance": "; ".join(d.inheritance),
        "onset": "; ".join(d.onset),
        "groups": "; ".join(label for _, label in d.parents),
    }
    return {name: text for name, text in fields.items() if text}


def documents(disorders: dict[str, Disorder]) -> list[Document]:
    """Every Orphanet definition, with synonyms, inheritance, onset and prevalence, and the
    enriched fields of :func:`document_fields`."""
    docs = []
    for code, d in disorders.items():
        if not d.definition:
            continue
        number = code.split(":")[1]
        docs.append(
            Document(
                doc_id=code,
                title=d.label,
                text=disorder_text(d),
                source="orphanet",
                source_type="reference",
                year=RELEASE_YEAR,
                url=f"https://www.orpha.net/en/disease/detail/{number}",
                entity_ids=[code],
                fields=document_fields(disorders, d),
                metadata={"disorder_type": d.disorder_type},
            )
        )
    return docs


def likelihood_rows(disorders: dict[str, Disorder]) -> list[tuple[str, ...]]:
    """disease × HPO term → P(present), for every annotated disorder (§3c)."""
    rows = []
    for code, d in disorders.items():
        for p in d.phenotypes:
            rows.append(
                (
                    code,
                    p["hpo_id"],
                    p["hpo_term"],
                    p["frequency_label"],
                    f"{P_PRESENT[p['frequency_label']]:g}",
                )
            )
    return sorted(set(rows))


def prior_rows(disorders: dict[str, Disorder]) -> list[tuple[str, ...]]:
    """P(disease) from its prevalence class, for every disorder with phenotype annotations."""
    rows = []
    for code, d in disorders.items():
        if not d.phenotypes:
            continue
        klass, best = prevalence_class(d)
        prior = PRIOR_BY_CLASS.get(klass, UNKNOWN_PRIOR) if klass else UNKNOWN_PRIOR
        basis = f"{best['type']}, {best['geography']}" if best else "unknown"
        rows.append((code, d.label, klass or "Unknown", f"{prior:g}", basis))
    return sorted(rows)
