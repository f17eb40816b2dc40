"""The ClinicalReasoningEngine's tables as arrays: priors, likelihoods, disease context.

:class:`DdxModel` holds, once, everything a query needs: P(D_j) for every disease, the
annotated P(s_i | D_j) as a sparse matrix stored both by phenotype (to score a finding
over all diseases in one vector operation) and by disease (to list a disease's findings),
and each disease's onset classes and inheritance modes. Evidence retrieved later is laid
over the table as :class:`LikelihoodOverride` entries (see
:func:`medresearcher.clinical.bayes.with_likelihood`), never written into it, so the
bundle's numbers and their source stay recoverable.

:func:`load_clinical_knowledge` reads a data bundle into a model and a
:class:`~medresearcher.clinical.findings.PhenotypeVocabulary` (about 2 s for the demo
bundle); everything downstream is pure.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medresearcher.clinical.findings import PhenotypeVocabulary
from medresearcher.data import (
    DiseasePrior,
    PhenotypeLikelihood,
    bundle_manifest,
    disease_priors,
    iter_entities,
    phenotype_likelihoods,
)

__all__ = [
    "EXCLUDED",
    "HPO_CREDIT",
    "ONSET_CLASSES",
    "ClinicalKnowledge",
    "DdxModel",
    "LikelihoodOverride",
    "build_model",
    "load_clinical_knowledge",
]

EXCLUDED = "Excluded (0%)"
# Orphanet's age-of-onset classes, youngest first.
ONSET_CLASSES = ("Antenatal", "Neonatal", "Infancy", "Childhood", "Adolescent", "Adult", "Elderly")
HPO_CREDIT = (
    "Phenotype terms: Human Phenotype Ontology (hpo.jax.org), Köhler S et al., as used in "
    "Orphanet's phenotype annotations."
)


@dataclass(frozen=True)
class LikelihoodOverride:
    """P(finding present | disease) from retrieved evidence, with where it came from."""

    p: float
    source: str
    frequency: str = "from evidence"


@dataclass(frozen=True, eq=False)
class DdxModel:
    """Priors and likelihoods over a closed set of diseases, as numpy arrays.

    Rows are diseases (``disease_ids``), columns phenotypes (``hpo_ids``). The sparse
    annotation matrix is kept twice: ``col_*`` (CSC: per phenotype, the diseases annotated
    with it) and ``row_*`` (CSR: per disease, its phenotypes); ``*_freq`` index
    ``frequency_labels``. ``onset_matrix`` (diseases × :data:`ONSET_CLASSES`) says which
    onset classes each disease lists; a disease listing "All ages" lists them all;
    ``x_linked_recessive_only`` and ``y_linked_only`` flag inheritance for the sex factor. Use
    :func:`build_model`, not the constructor.
    """

    disease_ids: tuple[str, ...]
    disease_names: tuple[str, ...]
    prior: np.ndarray
    prior_basis: tuple[str, ...]
    onsets: tuple[frozenset[str], ...]
    inheritance: tuple[frozenset[str], ...]
    hpo_ids: tuple[str, ...]
    hpo_terms: tuple[str, ...]
    frequency_labels: tuple[str, ...]
    col_ptr: np.ndarray
    col_rows: np.ndarray
    col_p: np.ndarray
    col_freq: np.ndarray
    row_ptr: np.ndarray
    row_cols: np.ndarray
    row_p: np.ndarray
    row_freq: np.ndarray
    onset_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 7), dtype=bool))
    x_linked_recessive_only: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    y_linked_only: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    annotation_source: str = "Orphanet"
    credits: tuple[str, ...] = ()
    overrides: Mapping[tuple[int, str], LikelihoodOverride] = field(default_factory=dict)
    disease_index: Mapping[str, int] = field(default_factory=dict)
    hpo_index: Mapping[str, int] = field(default_factory=dict)

    @property
    def n_diseases(self) -> int:
        return len(self.disease_ids)

    def term(self, hpo_id: str) -> str:
        """The label of ``hpo_id`` (the id itself when the table does not know it)."""
        col = self.hpo_index.get(hpo_id)
        return self.hpo_terms[col] if col is not None else hpo_id

    def column(self, hpo_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Diseases annotated with ``hpo_id``: (row indices, p_present, frequency codes)."""
        col = self.hpo_index.get(hpo_id)
        if col is None:
            empty = np.empty(0, dtype=np.int32)
            return empty, np.empty(0), empty
        lo, hi = self.col_ptr[col], self.col_ptr[col + 1]
        return self.col_rows[lo:hi], self.col_p[lo:hi], self.col_freq[lo:hi]

    def annotations(self, row: int) -> dict[str, tuple[float, str, str]]:
        """A disease's findings: hpo_id → (p_present, frequency label, source)."""
        lo, hi = self.row_ptr[row], self.row_ptr[row + 1]
        found = {
            self.hpo_ids[c]: (float(p), self.frequency_labels[f], self.annotation_source)
            for c, p, f in zip(
                self.row_cols[lo:hi], self.row_p[lo:hi], self.row_freq[lo:hi], strict=True
            )
        }
        for (r, hpo_id), override in self.overrides.items():
            if r == row:
                found[hpo_id] = (override.p, override.frequency, override.source)
        return found


def build_model(
    likelihoods: Iterable[PhenotypeLikelihood],
    priors: Mapping[str, DiseasePrior],
    *,
    diseases: Mapping[str, Mapping[str, object]] | None = None,
    annotation_source: str = "Orphanet",
    credits: Iterable[str] = (),
) -> DdxModel:
    """Arrange the bundle's tables as a :class:`DdxModel`.

    The diseases are those with at least one annotation; a disease missing from
    ``priors`` gets a NaN prior (the posterior's prior floor replaces it). ``diseases``
    maps disease ids to their entity ``attrs`` (``onset``, ``inheritance``). When one
    (disease, phenotype) pair is annotated twice, the higher frequency is kept.
    """
    best: dict[tuple[str, str], PhenotypeLikelihood] = {}
    terms: dict[str, str] = {}
    for row in likelihoods:
        key = (row.disease_id, row.hpo_id)
        terms.setdefault(row.hpo_id, row.hpo_term)
        if key not in best or row.p_present > best[key].p_present:
            best[key] = row
    disease_ids = tuple(sorted({d for d, _ in best}, key=_curie_order))
    hpo_ids = tuple(sorted(terms, key=_curie_order))
    disease_index = {d: i for i, d in enumerate(disease_ids)}
    hpo_index = {h: i for i, h in enumerate(hpo_ids)}
    labels = tuple(sorted({r.frequency for r in best.values()}))
    label_index = {label: i for i, label in enumerate(labels)}

    rows = np.fromiter((disease_index[d] for d, _ in best), dtype=np.int32, count=len(best))
    cols = np.fromiter((hpo_index[h] for _, h in best), dtype=np.int32, count=len(best))
    p = np.fromiter((r.p_present for r in best.values()), dtype=np.float64, count=len(best))
    freq = np.fromiter(
        (label_index[r.frequency] for r in best.values()), dtype=np.int16, count=len(best)
    )
    by_col = np.lexsort((rows, cols))
    by_row = np.lexsort((cols, rows))
    col_ptr = np.searchsorted(cols[by_col], np.arange(len(hpo_ids) + 1))
    row_ptr = np.searchsorted(rows[by_row], np.arange(len(disease_ids) + 1))

    attrs = diseases or {}
    onsets = tuple(_as_set(attrs.get(d, {}).get("onset")) for d in disease_ids)
    onset_matrix = np.array(
        [[c in o or "All ages" in o for c in ONSET_CLASSES] for o in onsets], dtype=bool
    ).reshape(len(disease_ids), len(ONSET_CLASSES))
    inheritance = tuple(_as_set(attrs.get(d, {}).get("inheritance")) for d in disease_ids)
    return DdxModel(
        disease_ids=disease_ids,
        disease_names=tuple(priors[d].name if d in priors else d for d in disease_ids),
        prior=np.array([priors[d].prior if d in priors else np.nan for d in disease_ids]),
        prior_basis=tuple(
            f"{priors[d].prevalence_class} ({priors[d].basis})" if d in priors else "none"
            for d in disease_ids
        ),
        onsets=onsets,
        inheritance=inheritance,
        hpo_ids=hpo_ids,
        hpo_terms=tuple(terms[h] for h in hpo_ids),
        frequency_labels=labels,
        onset_matrix=onset_matrix,
        x_linked_recessive_only=np.array(
            [m == {"X-linked recessive"} for m in inheritance], dtype=bool
        ),
        y_linked_only=np.array([m == {"Y-linked"} for m in inheritance], dtype=bool),
        col_ptr=col_ptr.astype(np.int64),
        col_rows=rows[by_col],
        col_p=p[by_col],
        col_freq=freq[by_col],
        row_ptr=row_ptr.astype(np.int64),
        row_cols=cols[by_row],
        row_p=p[by_row],
        row_freq=freq[by_row],
        annotation_source=annotation_source,
        credits=tuple(credits),
        disease_index=disease_index,
        hpo_index=hpo_index,
    )


@dataclass(frozen=True)
class ClinicalKnowledge:
    """What the engine reads from a bundle: the model and the phenotype vocabulary."""

    model: DdxModel
    vocabulary: PhenotypeVocabulary
    bundle: str


@functools.lru_cache(maxsize=4)
def load_clinical_knowledge(bundle: str | Path = "demo") -> ClinicalKnowledge:
    """Read a bundle's phenotype likelihoods, priors and entities (about 2 s for demo).

    Cached per bundle for the life of the process: the result is read-only.

    The vocabulary is every HPO term of the likelihood table and every phenotype entity,
    with the entities' aliases as synonyms. Disease onset and inheritance come from the
    disease entities' attrs; diseases without an entity have no context data.
    """
    likelihoods = phenotype_likelihoods(bundle)
    priors = disease_priors(bundle)
    disease_attrs: dict[str, dict[str, object]] = {}
    phenotype_terms: list[tuple[str, str, list[str]]] = []
    annotation_source = "Orphanet"
    for entity in iter_entities(bundle):
        if entity.type == "phenotype":
            phenotype_terms.append((entity.id, entity.name, entity.aliases))
        elif entity.type == "disease" and entity.id.startswith("ORPHA:"):
            disease_attrs[entity.id] = entity.attrs
            annotation_source = entity.source
    manifest = bundle_manifest(bundle)
    credits = [
        entry["credit"]
        for entry in manifest.get("licences", [])
        if "phenotype" in entry.get("used_for", "") and entry.get("credit")
    ]
    model = build_model(
        likelihoods,
        priors,
        diseases=disease_attrs,
        annotation_source=annotation_source,
        credits=[*credits, HPO_CREDIT],
    )
    usage = Counter(row.hpo_id for row in likelihoods)
    table_terms = [(h, t, []) for h, t in zip(model.hpo_ids, model.hpo_terms, strict=True)]
    vocabulary = PhenotypeVocabulary.build([*table_terms, *phenotype_terms], usage=usage)
    return ClinicalKnowledge(model, vocabulary, str(bundle))


def _as_set(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(str(v) for v in value if v)  # type: ignore[union-attr]


def _curie_order(curie: str) -> tuple[str, int, str]:
    prefix, _, local = curie.partition(":")
    return (prefix, int(local) if local.isdigit() else -1, local)
