"""Human Disease Ontology (release 2026-07-31): rare and infectious slims, linked to
Orphanet by ``ORDO:`` xrefs; symptoms, anatomy, pathogens and vectors from its reports."""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Iterator
from pathlib import Path

from bundle.graph import BundleGraph, slug
from medresearcher.schema import Document

SOURCE = "Disease Ontology 2026-07-31"
RELEASE_YEAR = 2026
# OBO xref prefixes → the CURIE prefixes we use (ORDO codes are Orphanet's ORPHAcodes).
XREF_PREFIX = {
    "ORDO": "ORPHA",
    "MIM": "OMIM",
    "MESH": "MESH",
    "ICD10CM": "ICD10CM",
    "GARD": "GARD",
    "UMLS_CUI": "UMLS",
    "NCI": "NCIT",
    "ICDO": "ICDO",
}
# Xrefs worth copying onto an Orphanet twin (the packets carry OMIM only).
TWIN_XREFS = ("MESH:", "ICD10CM:", "GARD:", "UMLS:")
_DEF = re.compile(r'^"((?:[^"\\]|\\.)*)"\s*\[(.*)\]\s*$')
_AXIOM = re.compile(r"^'([^']+)' some (?:'([^']+)'|([A-Za-z][\w\-]*))$")
_PMID = re.compile(r"(?:pubmed/|PMID:)(\d+)")


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def read_obo(path: Path) -> Iterator[dict[str, list[str]]]:
    """The ``[Term]`` stanzas of an OBO file as tag → values (obsolete terms skipped)."""
    stanza: dict[str, list[str]] | None = None
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if line.startswith("["):
                if stanza and "id" in stanza and stanza.get("is_obsolete") != ["true"]:
                    yield stanza
                stanza = {} if line == "[Term]" else None
            elif stanza is not None and ": " in line:
                tag, _, value = line.partition(": ")
                stanza.setdefault(tag, []).append(value)
    if stanza and "id" in stanza and stanza.get("is_obsolete") != ["true"]:
        yield stanza


def _tsv(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [{k.strip('"'): (v or "").strip('"') for k, v in row.items()} for row in rows]


def _definition(values: list[str]) -> tuple[str, list[str]]:
    if not values:
        return "", []
    match = _DEF.match(values[0])
    if not match:
        return _unescape(values[0].strip('"')), []
    refs = [
        _unescape(r.strip()).removeprefix("url:") for r in match.group(2).split(",") if r.strip()
    ]
    return _unescape(match.group(1)), refs


def _xrefs(values: list[str]) -> list[str]:
    out = []
    for value in values:
        prefix, _, local = value.split(" ")[0].partition(":")
        if prefix in XREF_PREFIX and local:
            out.append(f"{XREF_PREFIX[prefix]}:{local}")
    return out


def add_slims(graph: BundleGraph, folder: Path) -> dict[str, dict]:
    """Rare and infectious slim terms with is_a parents; returns id → term info."""
    labels = {row["id"]: row["label"] for row in _tsv(folder / "HumanDO.tsv.gz")}
    terms: dict[str, dict] = {}
    for name, subset in (
        ("DO_rare_slim.obo.gz", "rare"),
        ("DO_infectious_disease_slim.obo.gz", "infectious"),
    ):
        for stanza in read_obo(folder / name):
            term_id = stanza["id"][0]
            info = terms.setdefault(term_id, {"stanza": stanza, "subsets": set()})
            info["subsets"].add(subset)
    for term_id, info in sorted(terms.items()):
        stanza = info["stanza"]
        definition, refs = _definition(stanza.get("def", []))
        synonyms = [
            _unescape(s.split('" ')[0].strip('"'))
            for s in stanza.get("synonym", [])
            if " EXACT" in s
        ]
        graph.entity(
            term_id,
            "disease",
            stanza["name"][0],
            SOURCE,
            aliases=synonyms,
            xrefs=_xrefs(stanza.get("xref", [])),
            description=definition or None,
            attrs={
                "do_subsets": sorted(info["subsets"]),
                "rare": "rare" in info["subsets"],
                "infectious": "infectious" in info["subsets"],
            },
        )
        info.update(definition=definition, references=refs)
        for parent in stanza.get("is_a", []):
            parent_id = parent.split(" ! ")[0].strip()
            parent_name = (
                parent.split(" ! ")[1] if " ! " in parent else labels.get(parent_id, parent_id)
            )
            graph.entity(parent_id, "disease", parent_name, SOURCE)
            graph.relate(term_id, "subclass_of", parent_id, SOURCE)
    return terms


def link_orphanet_twins(graph: BundleGraph, terms: dict[str, dict]) -> dict[str, list[str]]:
    """``same_as`` edges DOID → ORPHA between twins; returns DOID → Orphanet ids.

    A twin is found by, in this order: DO's ``ORDO:`` xref; an OMIM id that Orphanet maps
    to the disorder as Exact (E); the same name (case-insensitive). Many famous diseases
    (Fabry among them) carry no ``ORDO:`` xref in DO, so the xref alone misses them.
    The basis is kept on the edge; xrefs are copied both ways.
    """
    by_omim: dict[str, set[str]] = {}
    by_name: dict[str, set[str]] = {}
    for entity in graph.entities.values():
        if not entity.id.startswith("ORPHA:") or not entity.attrs.get("rare"):
            continue
        for omim, relation in entity.attrs.get("xref_mapping", {}).items():
            if relation == "E":
                by_omim.setdefault(omim, set()).add(entity.id)
        by_name.setdefault(entity.name.casefold(), set()).add(entity.id)
    twins: dict[str, list[str]] = {}
    for term_id in sorted(terms):
        do_entity = graph.entities[term_id]
        found: dict[str, str] = {}
        for xref in do_entity.xrefs:
            if xref.startswith("ORPHA:") and xref in graph.entities:
                found.setdefault(xref, "ORDO xref")
        for xref in do_entity.xrefs:
            for orpha in sorted(by_omim.get(xref, ())):
                found.setdefault(orpha, "OMIM exact mapping")
        for orpha in sorted(by_name.get(do_entity.name.casefold(), ())):
            found.setdefault(orpha, "same name")
        for orpha, basis in sorted(found.items()):
            twin = graph.entities[orpha]
            graph.relate(term_id, "same_as", orpha, SOURCE, clinical={"mapping": basis})
            extra = [term_id] + [x for x in do_entity.xrefs if x.startswith(TWIN_XREFS)]
            twin.xrefs.extend(x for x in extra if x not in twin.xrefs)
            if orpha not in do_entity.xrefs:
                do_entity.xrefs.append(orpha)
        if found:
            twins[term_id] = sorted(found)
    return twins


def add_symptoms(graph: BundleGraph, folder: Path) -> None:
    """DO disease → Symptom Ontology edges (no frequencies: DO does not give them)."""
    labels = {row["id"]: row["label"] for row in _tsv(folder / "HumanDO.tsv.gz")}
    for row in _tsv(folder / "disease-symptom.tsv.gz"):
        disease = row["disease_id"]
        graph.entity(disease, "disease", labels.get(disease, row["disease_label"]), SOURCE)
        graph.entity(row["symptom_id"], "symptom", row["symptom_label"], SOURCE)
        graph.relate(disease, "has_symptom", row["symptom_id"], SOURCE)


def add_axioms(graph: BundleGraph, folder: Path, terms: dict[str, dict]) -> None:
    """Location, pathogen, vector and inheritance facts from DO's logical axioms."""
    anatomy_ids: dict[str, str] = {}
    for row in _tsv(folder / "DO-ICDO-anatomy.tsv.gz"):
        if row["anatomy_id"]:
            anatomy_ids[row["anatomy_label"].lower()] = row["anatomy_id"]
            if row["id"] in graph.entities:
                graph.entity(row["anatomy_id"], "anatomy", row["anatomy_label"], SOURCE)
                graph.relate(row["id"], "located_in", row["anatomy_id"], SOURCE)
    for row in _tsv(folder / "DO-subClassOf-anonymous.tsv.gz"):
        disease = row["ID"]
        if disease not in graph.entities:
            continue
        infectious = "infectious" in terms.get(disease, {}).get("subsets", ())
        for axiom in row["SubClass Of [ANON]"].split("|"):
            match = _AXIOM.match(axiom.strip())
            if not match:
                continue  # compound class expressions: not single facts
            prop, target = match.group(1), match.group(2) or match.group(3)
            if prop == "disease has location":
                anatomy = anatomy_ids.get(target.lower(), f"ANAT:{slug(target)}")
                graph.entity(anatomy, "anatomy", target, SOURCE)
                graph.relate(disease, "located_in", anatomy, SOURCE)
            elif prop == "has material basis in" and target.endswith("inheritance"):
                inheritance = graph.entities[disease].attrs.setdefault("inheritance", [])
                if target not in inheritance:
                    inheritance.append(target)
            elif prop == "has material basis in" and infectious:
                pathogen = f"PATHOGEN:{slug(target)}"
                graph.entity(pathogen, "pathogen", target, SOURCE)
                graph.relate(disease, "caused_by", pathogen, SOURCE)
            elif prop == "transmitted by":
                route = f"TRANSMISSION:{slug(target)}"
                graph.entity(route, "transmission", target, SOURCE)
                graph.relate(disease, "transmitted_by", route, SOURCE)


def documents(
    graph: BundleGraph, terms: dict[str, dict], twins: dict[str, list[str]]
) -> list[Document]:
    """DO definitions; ``entity_ids`` also names the Orphanet twin, so that retrieval can
    count both records as one disease."""
    related = _related_names(graph)
    docs = []
    for term_id in sorted(terms):
        info = terms[term_id]
        if not info["definition"]:
            continue
        entity = graph.entities[term_id]
        fields = {"names": "; ".join([entity.name, *entity.aliases])}
        for field, names in related.get(term_id, {}).items():
            fields[field] = "; ".join(names)
        if entity.attrs.get("inheritance"):
            fields["inheritance"] = "; ".join(entity.attrs["inheritance"])
        pmids = sorted({m for ref in info["references"] for m in _PMID.findall(ref)})
        docs.append(
            Document(
                doc_id=term_id,
                title=entity.name,
                text=info["definition"],
                source="disease_ontology",
                source_type="reference",
                year=RELEASE_YEAR,
                url=f"https://disease-ontology.org/?id={term_id}",
                entity_ids=[term_id, *twins.get(term_id, [])],
                fields=fields,
                metadata={
                    "references": info["references"],
                    "pmids": pmids,
                    "subsets": sorted(info["subsets"]),
                },
            )
        )
    return docs


# What a DO term's page shows beside its definition: its symptoms, sites, pathogens and
# routes (DO axioms), its parent terms, and the drugs PharmacotherapyDB lists for it. These
# are the graph's own edges, so an agent can check each one in the record it came from.
_OUTGOING = {
    "has_symptom": "symptoms",
    "located_in": "anatomy",
    "caused_by": "pathogens",
    "transmitted_by": "transmission",
    "subclass_of": "groups",
}
_INCOMING = {
    "treats": "treatments",
    "palliates": "palliative_treatments",
    "not_indicated": "not_indicated_drugs",
}


def _related_names(graph: BundleGraph) -> dict[str, dict[str, list[str]]]:
    related: dict[str, dict[str, list[str]]] = {}
    for subj, pred, obj, _source in sorted(graph.relations):
        if pred in _OUTGOING and obj in graph.entities:
            names = related.setdefault(subj, {}).setdefault(_OUTGOING[pred], [])
            name = graph.entities[obj].name
        elif pred in _INCOMING and subj in graph.entities:
            names = related.setdefault(obj, {}).setdefault(_INCOMING[pred], [])
            name = graph.entities[subj].name
        else:
            continue
        if name not in names:
            names.append(name)
    return related
