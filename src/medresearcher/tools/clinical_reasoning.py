"""``clinical_reasoning``: the ClinicalReasoningEngine as an agent tool (paper §2.2).

The agent states findings in words ("splenomegaly", "no jaundice") or HP ids; the tool
reads them as HPO terms, ranks the bundle's diseases by naive-Bayes posterior
P(D | s, c) ∝ Π P(s_i | D, c) · P(D | c) (see :mod:`medresearcher.clinical.bayes`), and
answers with the differential, the findings for and against each disease, the finding most
worth checking next, what it could not read, and its sources.

Retrieved evidence updates the engine two ways: per call, through ``likelihood_updates``
(a paper says 40 % of patients with D have s), or for the life of the tool (one agent run)
through :meth:`ClinicalReasoningTool.update_likelihood`. The bundle's tables are read once
per process and shared by every instance.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import asdict
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medresearcher.clinical import (
    DISCLAIMER,
    ClinicalContext,
    ClinicalKnowledge,
    DdxModel,
    DdxParams,
    Differential,
    FindingEvidence,
    FindingMatch,
    UnmatchedFinding,
    diagnose,
    load_clinical_knowledge,
    onset_class,
    read_findings,
    with_likelihood,
)
from medresearcher.errors import InputError
from medresearcher.tools.base import Observation, Tool

__all__ = ["ClinicalReasoningTool", "LikelihoodUpdate", "format_differential"]

_SEXES = {"f": "F", "female": "F", "woman": "F", "girl": "F", "m": "M", "male": "M", "man": "M",
          "boy": "M"}  # fmt: skip


class LikelihoodUpdate(BaseModel):
    """P(finding | disease) reported by a source the agent found."""

    model_config = ConfigDict(extra="forbid")

    disease_id: str = Field(description="Orphanet id (ORPHA:558) or exact disease name.")
    finding: str = Field(description="The finding: HPO label, plain words or HP id.")
    p_present: float = Field(ge=0.0, le=1.0, description="Fraction of patients with it.")
    source: str = Field(min_length=1, description="Where the number comes from (PMID, URL).")


class ClinicalReasoningArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    present_findings: list[str] = Field(
        min_length=1,
        description="Findings the patient has, as HPO terms, plain words or HP ids, e.g. "
        "['splenomegaly', 'recurrent fever', 'HP:0001903'].",
    )
    absent_findings: list[str] = Field(
        default_factory=list, description="Findings checked and found absent."
    )
    age: float | None = Field(default=None, ge=0, le=130, description="Age in years.")
    sex: Literal["F", "M"] | None = Field(default=None, description="F or M.")
    onset: str | None = Field(
        default=None,
        description="Age at onset: Antenatal, Neonatal, Infancy, Childhood, Adolescent, "
        "Adult, Elderly, or years.",
    )
    top_k: int = Field(default=5, ge=1, le=20, description="How many diseases to return.")
    likelihood_updates: list[LikelihoodUpdate] = Field(
        default_factory=list,
        description="Frequencies from retrieved evidence that replace or add to the table's.",
    )

    @field_validator("sex", mode="before")
    @classmethod
    def _sex(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _SEXES.get(value.strip().lower(), value)
        return value

    @field_validator("onset")
    @classmethod
    def _onset(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return onset_class(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None


class ClinicalReasoningTool(Tool):
    """Bayesian differential diagnosis over the demo bundle's rare diseases."""

    name: ClassVar[str] = "clinical_reasoning"
    description: ClassVar[str] = (
        "Bayesian differential diagnosis over the rare diseases of the data bundle (~4,300 "
        "in the demo; Orphanet phenotype "
        "frequencies, HPO terms). Give the findings present (and those checked and absent), "
        "optionally age, sex and onset; returns the most probable diseases with posteriors, "
        "the findings for and against each, and the most informative finding to check next. "
        "Pass frequencies found in the literature as likelihood_updates."
    )
    Arguments: ClassVar[type[BaseModel]] = ClinicalReasoningArguments
    timeout_s: float = 60.0

    _cache: ClassVar[dict[str, ClinicalKnowledge]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, bundle: str = "demo", params: DdxParams | None = None) -> None:
        self.bundle = bundle
        self.params = params or DdxParams()
        self._model: DdxModel | None = None  # this instance's model, with its updates

    def knowledge(self) -> ClinicalKnowledge:
        """The bundle's model and vocabulary, read once per process (about 2 s)."""
        with self._lock:
            if self.bundle not in self._cache:
                self._cache[self.bundle] = load_clinical_knowledge(self.bundle)
            return self._cache[self.bundle]

    def model(self) -> DdxModel:
        return self._model if self._model is not None else self.knowledge().model

    def update_likelihood(self, disease_id: str, finding: str, p: float, source: str) -> None:
        """Set P(finding | disease) from evidence for every later call of this instance."""
        self._model = _apply(self.knowledge(), self.model(), disease_id, finding, p, source)

    async def run(self, arguments: Any) -> Observation:
        args: ClinicalReasoningArguments = arguments
        knowledge = await asyncio.to_thread(self.knowledge)
        try:
            return self.reason(knowledge, args)
        except InputError as exc:  # the agent's mistake: tell it, no traceback in the log
            return Observation(text=f"Error: {exc}", error=True)

    def reason(self, knowledge: ClinicalKnowledge, args: ClinicalReasoningArguments) -> Observation:
        """The synchronous body of :meth:`run` (fast: a few milliseconds)."""
        present, absent, unmatched = read_findings(
            args.present_findings, args.absent_findings, knowledge.vocabulary
        )
        if not present and not absent:
            return Observation(
                text="Error: none of the findings matched an HPO term. "
                + _unmatched_line(unmatched),
                payload={"unmatched": [u.text for u in unmatched]},
                error=True,
            )
        model = self.model()
        for update in args.likelihood_updates:
            model = _apply(
                knowledge, model, update.disease_id, update.finding, update.p_present, update.source
            )
        present_ids = [m.hpo_id for m in present]
        absent_ids = [m.hpo_id for m in absent]
        context = None
        if args.age is not None or args.sex or args.onset:
            context = ClinicalContext(age_years=args.age, sex=args.sex, onset=args.onset)
        result = diagnose(
            model,
            present_ids,
            absent_ids,
            context=context,
            top_k=args.top_k,
            params=self.params,
            unmatched=[u.text for u in unmatched],
        )
        payload = result.model_dump(mode="json")
        payload["findings"] = [{**asdict(m), "observed": "present"} for m in present] + [
            {**asdict(m), "observed": "absent"} for m in absent
        ]
        cited = {e.source for d in result.diseases for e in d.supporting + d.against}
        sources = [d.disease_id for d in result.diseases] + sorted(
            cited - {"leak", model.annotation_source}
        )
        return Observation(
            text=format_differential(
                result, present + absent, unmatched, table=model.annotation_source
            ),
            payload=payload,
            sources=sources,
        )


def format_differential(
    result: Differential,
    matches: list[FindingMatch] | None = None,
    unmatched: list[UnmatchedFinding] | None = None,
    *,
    table: str = "Orphanet",
) -> str:
    """The differential as plain text for a model to read; ``table`` is the likelihood
    table's source, named once under Sources rather than after every finding."""
    lines = [
        f"Differential diagnosis (naive Bayes over {result.n_diseases:,} rare diseases; "
        f"{DISCLAIMER.lower().rstrip('.')}).",
    ]
    read = [f"'{m.text}' → {m.label} ({m.hpo_id})" for m in matches or [] if m.method != "exact"]
    present, absent = (
        ", ".join(f"{result.terms.get(h, h)} ({h})" for h in ids) or "none"
        for ids in (result.present, result.absent)
    )
    lines.append(f"Findings present: {present}; absent: {absent}.")
    if read:
        lines.append("Read as: " + "; ".join(read) + ".")
    if result.context is not None:
        ctx = result.context
        parts = [f"age {ctx.age_years:g}" if ctx.age_years is not None else "", ctx.sex or ""]
        parts.append(f"onset {ctx.onset}" if ctx.onset else "")
        lines.append("Context: " + ", ".join(p for p in parts if p) + ".")
    for disease in result.diseases:
        lines.append(
            f"{disease.rank}. {disease.name} ({disease.disease_id}): posterior "
            f"{disease.posterior:.3f}"
        )
        if disease.supporting:
            lines.append(
                "   for: " + "; ".join(_evidence_text(e, table) for e in disease.supporting)
            )
        if disease.against:
            lines.append(
                "   against: " + "; ".join(_evidence_text(e, table) for e in disease.against)
            )
    if (nxt := result.next_finding) is not None:
        spread = ", ".join(f"{d} {p:.3g}" for d, p in nxt.p_present.items())
        lines.append(
            f"Next finding to check: {nxt.term} ({nxt.hpo_id}), expected gain "
            f"{nxt.expected_gain_bits:.2f} bits; P(present | disease): {spread}."
        )
    if unmatched:
        lines.append(_unmatched_line(unmatched))
    lines.append("Sources:")
    lines += [f"- {credit}" for credit in result.sources]
    lines.append(f"{DISCLAIMER} Posteriors are relative to the diseases in the bundle.")
    return "\n".join(lines)


def _evidence_text(evidence: FindingEvidence, table_source: str) -> str:
    """``Fever present (Very frequent (99-80%))``; a source only when not the table's."""
    cited = "" if evidence.source in ("leak", table_source) else f", {evidence.source}"
    return f"{evidence.term} {evidence.observed} ({evidence.frequency}{cited})"


def _unmatched_line(unmatched: list[UnmatchedFinding]) -> str:
    parts = []
    for item in unmatched:
        near = ", ".join(f"{label} ({hpo_id})" for hpo_id, label in item.suggestions)
        parts.append(f"'{item.text}'" + (f" (nearest: {near})" if near else ""))
    return "Unmatched findings, not used: " + "; ".join(parts) + "."


def _apply(
    knowledge: ClinicalKnowledge, model: DdxModel, disease: str, finding: str, p: float, source: str
) -> DdxModel:
    disease_id = disease if disease in model.disease_index else _disease_by_name(model, disease)
    match = knowledge.vocabulary.match(finding)
    if isinstance(match, UnmatchedFinding):
        raise InputError(f"likelihood update: finding {finding!r} matches no HPO term")
    return with_likelihood(model, disease_id, match.hpo_id, p, source)


def _disease_by_name(model: DdxModel, name: str) -> str:
    wanted = name.strip().lower()
    for disease_id, disease_name in zip(model.disease_ids, model.disease_names, strict=True):
        if disease_name.lower() == wanted:
            return disease_id
    raise InputError(f"likelihood update: unknown disease {name!r} (use an ORPHA id)")
