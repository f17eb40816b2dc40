"""The clinical_reasoning tool through the ToolBox, as the agent loop calls it."""

from __future__ import annotations

import json

import pytest

from medresearcher.tools.base import Observation, ToolBox
from medresearcher.tools.clinical_reasoning import ClinicalReasoningTool
from tests.conftest import run


@pytest.fixture(scope="module")
def box() -> ToolBox:
    return ToolBox([ClinicalReasoningTool()])


def call(box: ToolBox, **arguments) -> Observation:
    return run(box.call("clinical_reasoning", json.dumps(arguments)))


def test_schema_names_the_findings_and_context() -> None:
    schema = ClinicalReasoningTool().schema()["function"]
    assert schema["name"] == "clinical_reasoning"
    properties = schema["parameters"]["properties"]
    assert {"present_findings", "absent_findings", "age", "sex", "onset", "top_k"} <= set(
        properties
    )
    assert schema["parameters"]["required"] == ["present_findings"]


def test_a_differential_with_reasons_next_step_sources_and_disclaimer(box) -> None:
    observation = call(
        box,
        present_findings=["fever, enlarged spleen", "hepatomegally"],
        absent_findings=["no jaundice"],
        age=30,
        sex="female",
        top_k=3,
    )
    assert not observation.error
    text = observation.text
    assert "1. " in text and "3. " in text and "4. " not in text
    assert "posterior" in text and "for: Splenomegaly present" in text
    assert "'enlarged spleen' → Splenomegaly (HP:0001744)" in text
    assert "absent: Jaundice (HP:0000952)" in text
    assert "Next finding to check:" in text
    assert "not clinical advice" in text and "Orphanet" in text
    payload = observation.payload
    assert len(payload["diseases"]) == 3
    assert observation.sources == [d["disease_id"] for d in payload["diseases"]]
    posteriors = [d["posterior"] for d in payload["diseases"]]
    assert posteriors == sorted(posteriors, reverse=True) and 0 < sum(posteriors) <= 1.0
    assert payload["context"] == {"age_years": 30.0, "sex": "F", "onset": None}
    methods = {f["label"]: f["method"] for f in payload["findings"]}
    assert methods == {
        "Fever": "exact",
        "Splenomegaly": "synonym",
        "Hepatomegaly": "fuzzy",
        "Jaundice": "exact",
    }


def test_unmatched_findings_are_reported_and_all_unmatched_is_an_error(box) -> None:
    partly = call(box, present_findings=["splenomegaly", "xyzzy plugh"])
    assert not partly.error
    assert "Unmatched findings, not used: 'xyzzy plugh'" in partly.text
    assert partly.payload["unmatched"] == ["xyzzy plugh"]
    nothing = call(box, present_findings=["xyzzy plugh"])
    assert nothing.error and "none of the findings matched" in nothing.text


def test_bad_context_and_contradictions_are_error_observations(box) -> None:
    assert call(box, present_findings=["fever"], onset="whenever").error
    assert call(box, present_findings=["fever"], sex="X").error
    both = call(box, present_findings=["fever"], absent_findings=["fever"])
    assert both.error and "both present and absent" in both.text


def test_retrieved_evidence_updates_the_likelihoods_per_call(box) -> None:
    findings = ["fever", "splenomegaly"]
    before = call(box, present_findings=findings, top_k=20).payload["diseases"]
    assert "ORPHA:905" not in [d["disease_id"] for d in before[:3]]  # Wilson disease
    update = {
        "disease_id": "Wilson disease",
        "finding": "fever",
        "p_present": 0.9,
        "source": "PMID:0000001",
    }
    after = call(box, present_findings=findings, top_k=3, likelihood_updates=[update])
    wilson = next(d for d in after.payload["diseases"] if d["disease_id"] == "ORPHA:905")
    fever = next(e for e in wilson["supporting"] if e["term"] == "Fever")
    assert (fever["p_present"], fever["source"]) == (0.9, "PMID:0000001")
    assert "PMID:0000001" in after.sources and "PMID:0000001" in after.text
    again = call(box, present_findings=findings, top_k=3).payload["diseases"]
    assert [d["disease_id"] for d in again] == [d["disease_id"] for d in before[:3]]
    bad = call(box, present_findings=findings, likelihood_updates=[{**update, "finding": "zz"}])
    assert bad.error and "matches no HPO term" in bad.text


def test_update_likelihood_lasts_for_the_instance_only() -> None:
    tool = ClinicalReasoningTool()
    tool.update_likelihood("ORPHA:905", "HP:0001945", 0.9, "PMID:0000002")
    findings = {"present_findings": ["fever", "splenomegaly"]}
    mine = run(ToolBox([tool]).call("clinical_reasoning", findings))
    fresh = run(ToolBox([ClinicalReasoningTool()]).call("clinical_reasoning", findings))
    assert "PMID:0000002" in mine.sources and "PMID:0000002" not in fresh.sources
    assert ClinicalReasoningTool().knowledge() is tool.knowledge()  # one load per process
