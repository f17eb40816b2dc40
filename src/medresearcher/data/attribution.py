"""Every open dataset in the bundles, with its licence and the credit line to show.

One table, read by the bundle build (which writes ATTRIBUTION.md from it) and by
``medresearcher data info``. Orphanet's CC BY 4.0 credit line is required wherever its data
is shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["DATA_SOURCES", "DataSource", "attribution_markdown"]


@dataclass(frozen=True)
class DataSource:
    name: str
    release: str
    licence: str
    credit: str
    url: str
    used_for: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


DATA_SOURCES: tuple[DataSource, ...] = (
    DataSource(
        name="Orphanet ORPHApackets",
        release="December 2025 (commit cbae63b4)",
        licence="CC BY 4.0",
        credit="Source: Orphanet / ORPHApackets, release December 2025 (www.orpha.net), "
        "CC BY 4.0. The records here are derived (re-formatted) from it.",
        url="https://github.com/Orphanet/orphapacket",
        used_for="rare disorders, phenotypes with frequencies, genes, groups, inheritance, "
        "onset, prevalence; definitions in the corpus; phenotype likelihoods and priors",
    ),
    DataSource(
        name="Human Disease Ontology",
        release="2026-07-31 (commit 9fbefd66)",
        licence="CC0 1.0",
        credit="Schriml LM et al., Human Disease Ontology (disease-ontology.org); "
        "release 2026-07-31.",
        url="https://github.com/DiseaseOntology/HumanDiseaseOntology",
        used_for="rare and infectious slims, xrefs (MeSH, ICD-10-CM, GARD, UMLS), symptoms, "
        "anatomy, pathogens, transmission; definitions in the corpus",
    ),
    DataSource(
        name="PharmacotherapyDB",
        release="1.0 (commit 11d535ba)",
        licence="CC0 1.0",
        credit="Himmelstein DS et al., PharmacotherapyDB 1.0 (Thinklab / figshare 2016, "
        "doi:10.6084/m9.figshare.3103054).",
        url="https://github.com/dhimmel/indications",
        used_for="drug → common disease indications (treats, palliates, not_indicated)",
    ),
    DataSource(
        name="PubMedQA PQA-L",
        release="commit 1cbae8e9",
        licence="MIT",
        credit="Jin Q et al., PubMedQA: A Dataset for Biomedical Research Question "
        "Answering, EMNLP 2019. Abstract text comes from PubMed records whose copyright "
        "may rest with the publishers.",
        url="https://github.com/pubmedqa/pubmedqa",
        used_for="1,000 PubMed abstracts in the corpus (questions and labels left out)",
    ),
)


def attribution_markdown() -> str:
    """ATTRIBUTION.md: every source, its licence and its credit line."""
    lines = [
        "# Attribution",
        "",
        "The medresearcher demo bundles are derived from the open datasets below. Keep this",
        "file with the data, and show each source's credit line wherever its data is shown.",
        "",
    ]
    for source in DATA_SOURCES:
        lines += [
            f"## {source.name}",
            "",
            f"- Release: {source.release}",
            f"- Licence: {source.licence}",
            f"- Credit: {source.credit}",
            f"- Source: {source.url}",
            f"- Used for: {source.used_for}",
            "",
        ]
    return "\n".join(lines)
