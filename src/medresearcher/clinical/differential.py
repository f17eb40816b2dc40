"""The engine's answer: the ranked differential, the evidence for and against each disease,
and the next finding to check (paper §2.2, ClinicalReasoningEngine).

:func:`diagnose` wraps :func:`~medresearcher.clinical.bayes.posterior` and
:func:`~medresearcher.clinical.bayes.expected_information_gain` into one record that a tool,
the CLI or a UI can show as it is, with every likelihood's frequency and source.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from medresearcher.clinical.bayes import (
    ClinicalContext,
    DdxParams,
    _leading,
    _p_for,
    _posterior,
    context_log_factor,
    expected_information_gain,
)
from medresearcher.clinical.model import EXCLUDED, DdxModel

__all__ = ["Differential", "FindingEvidence", "NextFinding", "RankedDisease", "diagnose"]


class FindingEvidence(BaseModel):
    """One asked finding as it bears on one disease."""

    hpo_id: str
    term: str
    observed: Literal["present", "absent"]
    p_present: float = Field(description="P(finding present | disease) used.")
    frequency: str = Field(description="Orphanet frequency bin, 'not annotated' or evidence.")
    source: str
    log_lr: float = Field(description="ln of this finding's likelihood ratio vs. the leak.")


class RankedDisease(BaseModel):
    rank: int
    disease_id: str
    name: str
    posterior: float
    prior: float
    prior_basis: str
    supporting: list[FindingEvidence]
    against: list[FindingEvidence]
    context_factor: float = Field(description="P(c | D) up to a constant (1 = no effect).")


class NextFinding(BaseModel):
    hpo_id: str
    term: str
    expected_gain_bits: float
    p_present: dict[str, float] = Field(description="P(finding | D) for the leading diseases.")


class Differential(BaseModel):
    """The engine's answer: ranked diseases, what to check next, and where it all came from."""

    diseases: list[RankedDisease]
    next_findings: list[NextFinding]
    present: list[str]
    absent: list[str]
    terms: dict[str, str] = Field(default_factory=dict, description="HPO id → label.")
    unmatched: list[str] = Field(default_factory=list)
    context: ClinicalContext | None = None
    n_diseases: int
    sources: list[str]
    params: dict[str, float | int | None]
    elapsed_ms: float

    @property
    def next_finding(self) -> NextFinding | None:
        return self.next_findings[0] if self.next_findings else None


def diagnose(
    model: DdxModel,
    present: Sequence[str],
    absent: Sequence[str] = (),
    *,
    context: ClinicalContext | None = None,
    top_k: int = 5,
    params: DdxParams | None = None,
    unmatched: Sequence[str] = (),
) -> Differential:
    """Rank the diseases for HPO findings and explain each with evidence for and against.

    ``present``/``absent`` are HPO ids; ``unmatched`` (inputs no term matched) is carried
    into the result so that whoever shows it can say what was not used.
    """
    started = time.perf_counter()
    params = params or DdxParams()
    log_context = context_log_factor(model, context, params)
    post = _posterior(model, present, absent, log_context, params)
    context_factor = np.exp(log_context)
    over = params.gain_over or max(top_k, 3)
    leading = _leading(post, max(top_k, over))
    annotations = {int(r): model.annotations(int(r)) for r in leading}
    ranked = []
    for rank, row in enumerate(leading[: max(1, top_k)], start=1):
        row = int(row)
        supporting, against = _evidence(model, annotations[row], present, absent, params)
        prior = model.prior[row]
        ranked.append(
            RankedDisease(
                rank=rank,
                disease_id=model.disease_ids[row],
                name=model.disease_names[row],
                posterior=float(post[row]),
                prior=float(params.prior_floor if np.isnan(prior) else prior),
                prior_basis=model.prior_basis[row],
                supporting=supporting,
                against=against,
                context_factor=float(context_factor[row]),
            )
        )
    next_findings = [
        NextFinding(
            hpo_id=hpo_id,
            term=model.term(hpo_id),
            expected_gain_bits=gain,
            p_present={
                model.disease_ids[int(r)]: _p_for(annotations[int(r)], hpo_id, params)[0]
                for r in leading[:over]
            },
        )
        for hpo_id, gain in expected_information_gain(
            model, post, [*present, *absent], params, over=over
        )
    ]
    return Differential(
        diseases=ranked,
        next_findings=next_findings,
        present=list(present),
        absent=list(absent),
        terms={h: model.term(h) for h in [*present, *absent]},
        unmatched=list(unmatched),
        context=context,
        n_diseases=model.n_diseases,
        sources=list(model.credits),
        params=dataclasses.asdict(params),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


def _evidence(
    model: DdxModel,
    annotations: dict[str, tuple[float, str, str]],
    present: Sequence[str],
    absent: Sequence[str],
    params: DdxParams,
) -> tuple[list[FindingEvidence], list[FindingEvidence]]:
    """Split the asked findings into those for and against a disease (its ``annotations``).

    For: present and annotated; absent and Excluded. Against: present but unannotated
    (unexplained) or Excluded; absent though annotated. Absent and unannotated: neither.
    """
    supporting: list[FindingEvidence] = []
    against: list[FindingEvidence] = []
    for observed, ids in (("present", present), ("absent", absent)):
        for hpo_id in ids:
            p, frequency, source = _p_for(annotations, hpo_id, params)
            clipped = min(max(p, 1e-9), 1 - 1e-9)
            if observed == "present":
                log_lr = math.log(clipped / params.leak)
            else:
                log_lr = math.log((1 - clipped) / (1 - params.leak))
            item = FindingEvidence(
                hpo_id=hpo_id,
                term=model.term(hpo_id),
                observed=observed,  # type: ignore[arg-type]
                p_present=p,
                frequency=frequency,
                source=source,
                log_lr=log_lr,
            )
            unannotated = frequency == "not annotated"
            if observed == "present":
                (against if unannotated or frequency == EXCLUDED else supporting).append(item)
            elif frequency == EXCLUDED:
                supporting.append(item)
            elif not unannotated:
                against.append(item)
    supporting.sort(key=lambda e: -e.log_lr)
    against.sort(key=lambda e: e.log_lr)
    return supporting, against
