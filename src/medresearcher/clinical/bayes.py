"""Bayesian differential diagnosis, the ClinicalReasoningEngine of paper §2.2.

    P(D_j | s, c) ∝ Π_i P(s_i | D_j, c) · P(D_j | c)

over the closed set of diseases in a :class:`~medresearcher.clinical.model.DdxModel`, by
naive Bayes (findings independent given the disease), in log space, normalised so the
posteriors sum to 1. The terms:

- **present finding** s: P(s | D) is D's annotated frequency (Orphanet bin midpoint); a
  finding D is not annotated with gets the small *leak* probability (``DdxParams.leak``),
  so that one unexplained finding lowers a disease without ruling it out; a finding
  annotated *Excluded* for D gets ``excluded_p``, far below the leak: a strong negative.
- **absent finding**: 1 − P(s | D), so a missing hallmark (p ≈ 0.9) costs a factor ≈ 10.
- **prior** P(D): the prevalence-class prior of the bundle, floored at ``prior_floor``
  (diseases of unknown prevalence are rare, not impossible) and raised to ``prior_weight``.
- **context** c, as likelihood factors P(c | D) from the disease's Orphanet attributes,
  never as hard filters, because those attributes are incomplete:
  *onset* class (Antenatal … Elderly): ×1 when D lists it (or "All ages"), ×``onset_adjacent``
  when D lists a neighbouring class, ×``onset_mismatch`` otherwise; *age* in years: a patient
  of age A cannot have a disease whose every onset class starts after A (one year of slack):
  ×``age_mismatch``; *sex* F: X-linked recessive (only) ×``female_x_linked_recessive``
  (affected females are rarer than affected males, but occur: skewed X-inactivation,
  homozygosity), Y-linked ×``female_y_linked``. Diseases without the attribute get ×1.

Retrieved evidence enters through :func:`with_likelihood`, which returns a new model with
P(s | D) replaced or added and its source recorded. :func:`expected_information_gain`
ranks the findings not yet asked by how much, in expectation, observing them would reduce
the entropy of the posterior over the leading diseases.
:func:`medresearcher.clinical.differential.diagnose` puts it all into one record.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medresearcher.clinical.model import EXCLUDED, ONSET_CLASSES, DdxModel, LikelihoodOverride
from medresearcher.errors import InputError

__all__ = [
    "ONSET_CLASSES",
    "ClinicalContext",
    "DdxParams",
    "context_log_factor",
    "expected_information_gain",
    "finding_likelihood",
    "onset_class",
    "posterior",
    "with_likelihood",
]

# Youngest age (years) of each onset class, after Orphanet's definitions.
_ONSET_START = {
    "Antenatal": 0.0,
    "Neonatal": 0.0,
    "Infancy": 1 / 12,
    "Childhood": 2.0,
    "Adolescent": 12.0,
    "Adult": 19.0,
    "Elderly": 65.0,
}
_ONSET_WORDS = {
    "antenatal": "Antenatal", "prenatal": "Antenatal", "fetal": "Antenatal",
    "neonatal": "Neonatal", "newborn": "Neonatal", "birth": "Neonatal", "congenital": "Neonatal",
    "infancy": "Infancy", "infant": "Infancy", "infantile": "Infancy",
    "childhood": "Childhood", "child": "Childhood", "juvenile": "Childhood",
    "adolescent": "Adolescent", "adolescence": "Adolescent", "teen": "Adolescent",
    "adult": "Adult", "adulthood": "Adult",
    "elderly": "Elderly", "old": "Elderly",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DdxParams:
    """The engine's knobs; the module docstring says what each does."""

    leak: float = 0.015
    excluded_p: float = 0.001
    prior_floor: float = 5e-7
    prior_weight: float = 1.0
    onset_adjacent: float = 0.5
    onset_mismatch: float = 0.1
    age_mismatch: float = 0.05
    female_x_linked_recessive: float = 0.3
    female_y_linked: float = 0.01
    # How many leading diseases the information gain is computed over; None: the ones shown
    # (diagnose's top_k, at least 3).
    gain_over: int | None = None


class ClinicalContext(BaseModel):
    """c in P(D | s, c): what is known about the patient besides the findings."""

    model_config = ConfigDict(extra="forbid")

    age_years: float | None = Field(default=None, ge=0, le=130)
    sex: Literal["F", "M"] | None = None
    onset: str | None = Field(
        default=None, description="Onset class (Antenatal … Elderly, or e.g. 'childhood')."
    )


def onset_class(value: str) -> str:
    """An Orphanet onset class from a class name, a word ("infantile") or an age in years."""
    text = value.strip().lower()
    try:
        years = float(text)
    except ValueError:
        for word in text.replace("-", " ").split():
            if word in _ONSET_WORDS:
                return _ONSET_WORDS[word]
        raise InputError(
            f"onset {value!r}: not an onset class; use one of {', '.join(ONSET_CLASSES)} "
            "or an age in years"
        ) from None
    if years < 0:
        raise InputError(f"onset {value!r}: an age of onset cannot be negative")
    return next(c for c in reversed(ONSET_CLASSES[1:]) if years >= _ONSET_START[c])


def finding_likelihood(model: DdxModel, hpo_id: str, params: DdxParams = DdxParams()) -> np.ndarray:
    """P(``hpo_id`` present | D) for every disease: annotated, Excluded, or the leak."""
    p = np.full(model.n_diseases, params.leak)
    rows, p_present, freq = model.column(hpo_id)
    p[rows] = p_present
    excluded = [i for i, label in enumerate(model.frequency_labels) if label == EXCLUDED]
    if excluded and len(rows):
        p[rows[np.isin(freq, excluded)]] = params.excluded_p
    for (row, override_id), override in model.overrides.items():
        if override_id == hpo_id:
            p[row] = override.p
    return np.clip(p, 1e-9, 1 - 1e-9)


def _log_prior(model: DdxModel, params: DdxParams) -> np.ndarray:
    prior = np.where(np.isnan(model.prior), params.prior_floor, model.prior)
    return params.prior_weight * np.log(np.maximum(prior, params.prior_floor))


def context_log_factor(
    model: DdxModel, context: ClinicalContext | None, params: DdxParams = DdxParams()
) -> np.ndarray:
    """log P(c | D) for every disease, up to a constant (see the module docstring)."""
    factor = np.zeros(model.n_diseases)
    if context is None:
        return factor
    listed = model.onset_matrix
    known = listed.any(axis=1) & ~listed.all(axis=1)  # some classes, and not "All ages"
    if context.onset:
        rank = ONSET_CLASSES.index(onset_class(context.onset))
        near = listed[:, max(rank - 1, 0)] | listed[:, min(rank + 1, len(ONSET_CLASSES) - 1)]
        miss = known & ~listed[:, rank]
        factor[miss & near] += math.log(params.onset_adjacent)
        factor[miss & ~near] += math.log(params.onset_mismatch)
    if context.age_years is not None:
        starts = np.array([_ONSET_START[c] for c in ONSET_CLASSES])
        earliest = np.where(listed, starts, np.inf).min(axis=1)
        factor[known & (earliest > context.age_years + 1)] += math.log(params.age_mismatch)
    if context.sex == "F":
        factor[model.x_linked_recessive_only] += math.log(params.female_x_linked_recessive)
        factor[model.y_linked_only] += math.log(params.female_y_linked)
    return factor


def _log_joint(
    model: DdxModel,
    present: Iterable[str],
    absent: Iterable[str],
    log_context: np.ndarray,
    params: DdxParams,
) -> np.ndarray:
    log_p = _log_prior(model, params) + log_context
    for hpo_id in present:
        log_p += np.log(finding_likelihood(model, hpo_id, params))
    for hpo_id in absent:
        log_p += np.log1p(-finding_likelihood(model, hpo_id, params))
    return log_p


def posterior(
    model: DdxModel,
    present: Sequence[str],
    absent: Sequence[str] = (),
    context: ClinicalContext | None = None,
    params: DdxParams = DdxParams(),
) -> np.ndarray:
    """P(D_j | s, c) for every disease of ``model`` (same order), summing to 1.

    ``present`` and ``absent`` are HPO ids; an id in both is an :class:`InputError`.
    """
    return _posterior(model, present, absent, context_log_factor(model, context, params), params)


def _posterior(
    model: DdxModel,
    present: Sequence[str],
    absent: Sequence[str],
    log_context: np.ndarray,
    params: DdxParams,
) -> np.ndarray:
    both = set(present) & set(absent)
    if both:
        named = ", ".join(f"{model.term(h)} ({h})" for h in sorted(both))
        raise InputError(f"findings both present and absent: {named}")
    log_p = _log_joint(model, present, absent, log_context, params)
    log_p -= log_p.max()
    post = np.exp(log_p)
    return post / post.sum()


def with_likelihood(
    model: DdxModel,
    disease_id: str,
    hpo_id: str,
    p: float,
    source: str,
    *,
    frequency: str = "from evidence",
) -> DdxModel:
    """A new model where P(``hpo_id`` | ``disease_id``) = ``p``, citing ``source``.

    This is how retrieved evidence updates the engine (§2.2): a paper reporting that 40 %
    of patients have a finding the table lacks adds it; one reporting a different rate
    replaces the table's. The original model is unchanged.
    """
    if disease_id not in model.disease_index:
        raise InputError(f"likelihood update: unknown disease {disease_id!r}")
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise InputError(f"likelihood update: p must be in [0, 1], got {p}")
    if not source.strip():
        raise InputError("likelihood update: the evidence's source is required")
    overrides = dict(model.overrides)
    overrides[(model.disease_index[disease_id], hpo_id)] = LikelihoodOverride(p, source, frequency)
    return dataclasses.replace(model, overrides=overrides)


def _p_for(
    annotations: dict[str, tuple[float, str, str]], hpo_id: str, params: DdxParams
) -> tuple[float, str, str]:
    """(P(present | D), frequency label, source) from one disease's ``annotations``."""
    found = annotations.get(hpo_id)
    if found is None:
        return params.leak, "not annotated", "leak"
    p, frequency, source = found
    return (params.excluded_p if frequency == EXCLUDED else p), frequency, source


def expected_information_gain(
    model: DdxModel,
    post: np.ndarray,
    asked: Iterable[str],
    params: DdxParams = DdxParams(),
    *,
    over: int | None = None,
    limit: int = 3,
) -> list[tuple[str, float]]:
    """The findings most worth checking next, as (hpo_id, expected gain in bits), best first.

    Over the ``over`` leading diseases (default ``params.gain_over``, else 5), with the
    posterior renormalised among them, each finding annotated for one of them and not yet
    asked is scored by the mutual information between its presence and the diagnosis:
    H(D) − Σ_{x∈{+,−}} P(x)·H(D | x). A finding that all of them share (or all lack) at the
    same frequency gains nothing; one that splits them gains most.
    """
    top = _leading(post, over or params.gain_over or 5)
    if len(top) < 2:
        return []
    q = post[top] / post[top].sum()
    candidates, matrix = _candidate_matrix(model, top, set(asked), params)
    if not candidates:
        return []
    p_yes = q @ matrix
    post_yes = q[:, None] * matrix / p_yes
    post_no = q[:, None] * (1 - matrix) / (1 - p_yes)
    gain = _entropy(q[:, None]) - p_yes * _entropy(post_yes) - (1 - p_yes) * _entropy(post_no)
    order = np.argsort(-np.round(gain, 12), kind="stable")  # ties: candidates' (id) order
    return [(candidates[i], float(gain[i])) for i in order[:limit]]


def _candidate_matrix(
    model: DdxModel, top: np.ndarray, asked: set[str], params: DdxParams
) -> tuple[list[str], np.ndarray]:
    """The findings annotated for the ``top`` diseases and not ``asked``, and the matrix
    P(finding | disease) (rows: ``top``; columns: the findings), from the CSR arrays."""
    spans = [slice(model.row_ptr[r], model.row_ptr[r + 1]) for r in top]
    cols = np.concatenate([model.row_cols[s] for s in spans])
    p = np.concatenate([model.row_p[s] for s in spans])
    freq = np.concatenate([model.row_freq[s] for s in spans])
    which = np.repeat(np.arange(len(top)), [s.stop - s.start for s in spans])
    excluded = [i for i, label in enumerate(model.frequency_labels) if label == EXCLUDED]
    p = np.where(np.isin(freq, excluded), params.excluded_p, p)
    ids = [model.hpo_ids[c] for c in np.unique(cols)]
    top_rows = {int(r): i for i, r in enumerate(top)}
    extra = {h for (r, h), _ in model.overrides.items() if r in top_rows}
    candidates = sorted(set(ids) | extra, key=lambda h: (h not in model.hpo_index, h))
    position = {h: j for j, h in enumerate(candidates)}
    matrix = np.full((len(top), len(candidates)), params.leak)
    matrix[which, [position[model.hpo_ids[c]] for c in cols]] = p
    for (row, hpo_id), override in model.overrides.items():
        if row in top_rows:
            matrix[top_rows[row], position[hpo_id]] = override.p
    keep = [j for j, h in enumerate(candidates) if h not in asked]
    return [candidates[j] for j in keep], np.clip(matrix[:, keep], 1e-9, 1 - 1e-9)


def _leading(post: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest posteriors, largest first (ties: model order)."""
    n = min(n, len(post))
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-post, n - 1)[:n] if n < len(post) else np.arange(len(post))
    return part[np.lexsort((part, -post[part]))]


def _entropy(dist: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(dist > 0, -dist * np.log2(dist), 0.0)
    return terms.sum(axis=0)
