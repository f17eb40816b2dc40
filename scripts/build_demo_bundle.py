"""Build the embedded demo bundles from ../shared/data, reproducibly.

    python scripts/build_demo_bundle.py [--data ../shared/data] [--out src/medresearcher/data]

Writes ``demo/`` (the KG slice, corpus, phenotype likelihoods and priors of
../shared/docs/medical-data.md §3) and ``tiny/`` (about 40 well-known rare diseases and some
common distractors, for fast tests). The same input gives byte-identical output: records
are sorted, gzip headers carry no time or name, and the manifest records input hashes.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bundle import misc, ontology, orphanet
from bundle.graph import BundleGraph
from bundle.output import sha256, write_json, write_jsonl_gz, write_tsv_gz

from medresearcher.data.attribution import DATA_SOURCES, attribution_markdown
from medresearcher.schema import Document

ROOT = Path(__file__).resolve().parents[1]
BUNDLE_FORMAT = 1
INPUTS = (
    "orphanet/orphanet_disorders.tsv.gz",
    "orphanet/orphanet_disease_phenotype_freq.tsv.gz",
    "orphanet/orphanet_disease_gene.tsv.gz",
    "disease_ontology/DO_rare_slim.obo.gz",
    "disease_ontology/DO_infectious_disease_slim.obo.gz",
    "disease_ontology/HumanDO.tsv.gz",
    "disease_ontology/disease-symptom.tsv.gz",
    "disease_ontology/DO-subClassOf-anonymous.tsv.gz",
    "disease_ontology/DO-ICDO-anatomy.tsv.gz",
    "pharmacotherapydb/diseases.tsv.gz",
    "pharmacotherapydb/drugs.tsv.gz",
    "pharmacotherapydb/indications.tsv.gz",
    "pubmedqa/ori_pqal.json.gz",
)
# medical-data.md §3's well-known rare diseases, less four with no gene in Orphanet
# (Kawasaki, Erdheim-Chester, myasthenia gravis, Addison: outside the slice), plus
# Tay-Sachs, cystinosis, SMA, ADPKD, osteogenesis imperfecta, Friedreich ataxia, HAE 1 ...
TINY_RARE = (
    558,
    324,
    355,
    365,
    100,
    905,
    586,
    98896,
    399,
    716,
    774,
    805,
    636,
    342,
    803,
    797,
    117,
    3287,
    79276,
    337,
    646,
    63,
    98878,
    232,
    231214,
    447,
    3452,
    90291,
    778,
    845,
    213,
    70,
    730,
    666,
    95,
    100050,
)
# ... and common diseases as distractors (PharmacotherapyDB DOIDs).
TINY_COMMON = (
    "DOID:9352",
    "DOID:10763",
    "DOID:2841",
    "DOID:10652",
    "DOID:14330",
    "DOID:7148",
    "DOID:1826",
    "DOID:6364",
    "DOID:2377",
    "DOID:8893",
    "DOID:3083",
    "DOID:13189",
    "DOID:11476",
    "DOID:5419",
    "DOID:1612",
)
TINY_ABSTRACTS = 40
LIKELIHOOD_HEADER = ("disease_id", "hpo_id", "hpo_term", "frequency", "p_present")
PRIOR_HEADER = ("disease_id", "name", "prevalence_class", "prior", "basis")


def build(data: Path) -> tuple[BundleGraph, list[tuple[str, ...]], list[tuple[str, ...]]]:
    disorders = orphanet.read_disorders(data / "orphanet")
    slice_codes = orphanet.select_slice(disorders)
    graph = BundleGraph()
    orphanet.add_to_graph(graph, disorders, slice_codes)
    terms = ontology.add_slims(graph, data / "disease_ontology")
    twins = ontology.link_orphanet_twins(graph, terms)
    pharmaco_docs = misc.add_pharmacotherapy(graph, data / "pharmacotherapydb")
    ontology.add_symptoms(graph, data / "disease_ontology")
    ontology.add_axioms(graph, data / "disease_ontology", terms)
    dropped = graph.prune_dangling()
    if dropped:
        print(f"dropped {dropped} relations with a missing end", file=sys.stderr)
    docs: list[Document] = [
        *orphanet.documents(disorders),
        *ontology.documents(graph, terms, twins),
        *misc.pubmedqa_documents(data / "pubmedqa"),
        *pharmaco_docs,
    ]
    for doc in docs:
        graph.document(doc)
    return graph, orphanet.likelihood_rows(disorders), orphanet.prior_rows(disorders)


def tiny(graph: BundleGraph, likelihoods: list, priors: list) -> tuple[BundleGraph, list, list]:
    """The neighbourhood of the tiny disease set: its entities, their edges, their documents."""
    core = {f"ORPHA:{code}" for code in TINY_RARE} | set(TINY_COMMON)
    missing = sorted(core - set(graph.entities))
    if missing:
        raise SystemExit(f"tiny bundle: not in the demo graph: {', '.join(missing)}")
    keep = set(core)
    for rel in graph.relations.values():
        if rel.subj in core or rel.obj in core:
            keep.update((rel.subj, rel.obj))
    small = BundleGraph()
    small.entities = {k: v for k, v in graph.entities.items() if k in keep}
    small.relations = {
        k: r
        for k, r in graph.relations.items()
        if (r.subj in core or r.obj in core) and r.subj in keep and r.obj in keep
    }
    abstracts = sorted(d for d in graph.documents if d.startswith("PMID:"))[:TINY_ABSTRACTS]
    small.documents = {
        k: d for k, d in graph.documents.items() if set(d.entity_ids) & core or k in abstracts
    }
    return (small, [r for r in likelihoods if r[0] in core], [r for r in priors if r[0] in core])


def write_bundle(
    folder: Path,
    name: str,
    graph: BundleGraph,
    likelihoods: list,
    priors: list,
    inputs: dict[str, str],
) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    entities = [graph.entities[k] for k in sorted(graph.entities)]
    relations = [graph.relations[k] for k in sorted(graph.relations)]
    documents = [graph.documents[k] for k in sorted(graph.documents)]
    write_jsonl_gz(folder / "entities.jsonl.gz", entities)
    write_jsonl_gz(folder / "relations.jsonl.gz", relations)
    write_jsonl_gz(folder / "corpus.jsonl.gz", documents)
    write_tsv_gz(folder / "phenotype_likelihoods.tsv.gz", LIKELIHOOD_HEADER, likelihoods)
    write_tsv_gz(folder / "disease_priors.tsv.gz", PRIOR_HEADER, priors)
    (folder / "ATTRIBUTION.md").write_text(attribution_markdown(), encoding="utf-8")
    files = (
        "entities.jsonl.gz",
        "relations.jsonl.gz",
        "corpus.jsonl.gz",
        "phenotype_likelihoods.tsv.gz",
        "disease_priors.tsv.gz",
    )
    manifest = {
        "name": name,
        "format": BUNDLE_FORMAT,
        "inputs": inputs,
        "files": {f: sha256(folder / f) for f in files},
        "counts": {
            "entities": len(entities),
            "rare_disorders": sum(
                1 for e in entities if e.id.startswith("ORPHA:") and e.attrs.get("rare")
            ),
            "entities_by_type": dict(sorted(Counter(e.type for e in entities).items())),
            "entities_by_source": dict(sorted(Counter(e.source for e in entities).items())),
            "relations": len(relations),
            "relations_by_predicate": dict(sorted(Counter(r.pred for r in relations).items())),
            "relations_by_source": dict(sorted(Counter(r.source for r in relations).items())),
            "documents": len(documents),
            "documents_by_source_type": dict(
                sorted(Counter(d.source_type for d in documents).items())
            ),
            "documents_by_source": dict(sorted(Counter(d.source for d in documents).items())),
            "phenotype_likelihoods": len(likelihoods),
            "disease_priors": len(priors),
        },
        "licences": [s.to_dict() for s in DATA_SOURCES],
    }
    write_json(folder / "manifest.json", manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "medresearcher" / "data")
    args = parser.parse_args(argv)
    missing = [name for name in INPUTS if not (args.data / name).is_file()]
    if missing:
        parser.error(f"missing input files under {args.data}: {', '.join(missing)}")
    inputs = {name: sha256(args.data / name) for name in INPUTS}
    graph, likelihoods, priors = build(args.data)
    for name, parts in (
        ("demo", (graph, likelihoods, priors)),
        ("tiny", tiny(graph, likelihoods, priors)),
    ):
        manifest = write_bundle(args.out / name, name, *parts, inputs=inputs)
        size = sum((args.out / name / f).stat().st_size for f in manifest["files"])
        counts = manifest["counts"]
        print(
            f"{name}: {counts['entities']} entities, {counts['relations']} relations, "
            f"{counts['documents']} documents, {size / 1e6:.2f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
