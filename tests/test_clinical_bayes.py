"""The ClinicalReasoningEngine's naive Bayes (paper §2.2): on small hand-built tables where
every number can be checked by hand, and on the demo bundle for the issue's acceptance."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from medresearcher.clinical import (
    ClinicalContext,
    DdxModel,
    DdxParams,
    build_model,
    context_log_factor,
    diagnose,
    expected_information_gain,
    finding_likelihood,
    load_clinical_knowledge,
    onset_class,
    posterior,
    with_likelihood,
)
from medresearcher.clinical.model import EXCLUDED
from medresearcher.data import DiseasePrior, PhenotypeLikelihood
from medresearcher.errors import InputError

VERY, FREQUENT, OCCASIONAL = "Very frequent (99-80%)", "Frequent (79-30%)", "Occasional (29-5%)"
P = {VERY: 0.895, FREQUENT: 0.545, OCCASIONAL: 0.17, EXCLUDED: 0.01}
FEVER, RASH, ANEMIA, CATARACT = "HP:0001945", "HP:0000988", "HP:0001903", "HP:0000518"


def toy(
    rows: list[tuple[str, str, str]],
    priors: dict[str, float | None],
    attrs: dict[str, dict] | None = None,
) -> DdxModel:
    """A model from (disease, hpo, frequency) rows; a None prior means 'not in the table'."""
    likelihoods = [PhenotypeLikelihood(d, h, h, f, P[f]) for d, h, f in rows]
    table = {d: DiseasePrior(d, f"disease {d}", "x", p, "test") for d, p in priors.items() if p}
    return build_model(likelihoods, table, diseases=attrs, credits=["test credit"])


@pytest.fixture(scope="module")
def two() -> DdxModel:
    return toy(
        [("D:1", FEVER, VERY), ("D:1", RASH, VERY), ("D:2", FEVER, VERY), ("D:2", ANEMIA, VERY)],
        {"D:1": 1e-4, "D:2": 1e-4},
    )


@pytest.fixture(scope="module")
def demo() -> DdxModel:
    return load_clinical_knowledge("demo").model


def share(model: DdxModel, post: np.ndarray, disease_id: str) -> float:
    return float(post[model.disease_index[disease_id]])


def test_the_posterior_is_the_normalised_product_of_likelihoods_and_prior(two) -> None:
    post = posterior(two, [FEVER, RASH])
    # D:1 explains both (0.895 · 0.895); D:2 explains fever only (0.895 · leak 0.015).
    expected = 0.895 * 0.895 / (0.895 * 0.895 + 0.895 * 0.015)
    assert share(two, post, "D:1") == pytest.approx(expected)
    assert post.sum() == pytest.approx(1.0)


def test_posteriors_sum_to_one_on_the_demo_bundle(demo) -> None:
    for present, absent in (([], []), (["HP:0001744"], ["HP:0002240"]), (["HP:0001166"], [])):
        post = posterior(demo, present, absent)
        assert post.shape == (demo.n_diseases,) and post.sum() == pytest.approx(1.0)
        assert (post > 0).all()


def test_an_absent_hallmark_lowers_a_disease(two, demo) -> None:
    assert share(two, posterior(two, [FEVER], [RASH]), "D:1") < share(
        two, posterior(two, [FEVER]), "D:1"
    )
    marfan = ["HP:0001519", "HP:0001065", "HP:0002616"]  # tall stature, striae, aortic root
    without = posterior(demo, marfan, ["HP:0001166"])  # arachnodactyly, very frequent
    assert share(demo, without, "ORPHA:558") < share(demo, posterior(demo, marfan), "ORPHA:558")


def test_an_unexplained_finding_costs_the_leak_and_excluded_costs_more() -> None:
    model = toy(
        [("D:1", FEVER, VERY), ("D:2", FEVER, VERY), ("D:2", RASH, EXCLUDED)],
        {"D:1": 1e-4, "D:2": 1e-4},
    )
    params = DdxParams(leak=0.02, excluded_p=0.001)
    p_rash = finding_likelihood(model, RASH, params)
    assert list(p_rash) == pytest.approx([0.02, 0.001])
    post = posterior(model, [FEVER, RASH], params=params)
    assert share(model, post, "D:2") == pytest.approx(0.001 / (0.02 + 0.001))
    assert share(model, post, "D:2") > 0  # strong, but not a hard zero


def test_priors_come_from_prevalence_with_a_floor() -> None:
    model = toy(
        [("D:1", FEVER, VERY), ("D:2", FEVER, VERY), ("D:3", FEVER, VERY)],
        {"D:1": 3e-4, "D:2": 5e-7, "D:3": None},
    )
    post = posterior(model, [FEVER], params=DdxParams(prior_floor=1e-6))
    weights = np.array([3e-4, 1e-6, 1e-6])
    assert list(post) == pytest.approx(list(weights / weights.sum()))
    flat = posterior(model, [FEVER], params=DdxParams(prior_weight=0.0))
    assert list(flat) == pytest.approx([1 / 3] * 3)


def test_onset_age_and_sex_are_likelihood_factors_not_filters() -> None:
    attrs = {
        "D:1": {"onset": ["Infancy"], "inheritance": ["X-linked recessive"]},
        "D:2": {"onset": ["Adult"], "inheritance": ["Autosomal dominant"]},
        "D:3": {"onset": ["All ages"], "inheritance": ["X-linked dominant", "X-linked recessive"]},
        "D:4": {"onset": ["Childhood"]},
    }
    model = toy(
        [(d, FEVER, VERY) for d in ("D:1", "D:2", "D:3", "D:4", "D:5")],
        dict.fromkeys(("D:1", "D:2", "D:3", "D:4", "D:5"), 1e-4),
        attrs,
    )
    params = DdxParams()

    def factors(**context) -> list[float]:
        log = context_log_factor(model, ClinicalContext(**context), params)
        return list(np.exp(log))

    onset = factors(onset="adult")
    # Infancy and Childhood are two or more classes from Adult: mismatch; "All ages" fits.
    assert onset == pytest.approx([0.1, 1.0, 1.0, 0.1, 1.0])
    assert factors(onset="adolescent") == pytest.approx([0.1, 0.5, 1.0, 0.5, 1.0])
    # A 5-year-old cannot have a disease that only starts in adults; no data: no effect.
    assert factors(age_years=5) == pytest.approx([1.0, 0.05, 1.0, 1.0, 1.0])
    # Females: only purely X-linked recessive diseases are made less likely.
    assert factors(sex="F") == pytest.approx([0.3, 1.0, 1.0, 1.0, 1.0])
    assert factors(sex="M") == pytest.approx([1.0] * 5)
    post = posterior(model, [FEVER], context=ClinicalContext(onset="adult", age_years=40))
    assert post.sum() == pytest.approx(1.0) and post.min() > 0


def test_onset_classes_from_words_and_ages() -> None:
    assert onset_class("infantile") == "Infancy"
    assert onset_class("juvenile-onset") == "Childhood"
    assert onset_class("35") == "Adult"
    assert onset_class("0") == "Neonatal"
    assert onset_class("7") == "Childhood"
    with pytest.raises(InputError, match="not an onset class"):
        onset_class("whenever")
    with pytest.raises(InputError):
        posterior(toy([("D:1", FEVER, VERY)], {"D:1": 1e-4}), [FEVER], [FEVER])


def test_evidence_updates_return_a_new_model_and_keep_their_source(two) -> None:
    updated = with_likelihood(two, "D:2", RASH, 0.6, "PMID:12345")
    assert share(updated, posterior(updated, [FEVER, RASH]), "D:2") > share(
        two, posterior(two, [FEVER, RASH]), "D:2"
    )
    assert two.overrides == {}  # the original is untouched
    result = diagnose(updated, [FEVER, RASH], top_k=2)
    d2 = next(d for d in result.diseases if d.disease_id == "D:2")
    rash = next(e for e in d2.supporting if e.hpo_id == RASH)
    assert (rash.p_present, rash.source, rash.frequency) == (0.6, "PMID:12345", "from evidence")
    # A phenotype the table never mentions can be added, too.
    novel = with_likelihood(two, "D:1", CATARACT, 0.5, "https://example.org/case")
    assert share(novel, posterior(novel, [CATARACT]), "D:1") > 0.9
    for bad in (("D:9", RASH, 0.5, "x"), ("D:1", RASH, 1.5, "x"), ("D:1", RASH, 0.5, " ")):
        with pytest.raises(InputError):
            with_likelihood(two, *bad)


def test_information_gain_picks_the_finding_that_splits_the_candidates() -> None:
    model = toy(
        [
            ("D:1", FEVER, VERY),
            ("D:2", FEVER, VERY),
            ("D:1", ANEMIA, VERY),  # shared: tells the two apart not at all
            ("D:2", ANEMIA, VERY),
            ("D:1", RASH, VERY),  # only D:1: splits them
            ("D:2", CATARACT, OCCASIONAL),  # only D:2, but rarely present: splits less
        ],
        {"D:1": 1e-4, "D:2": 1e-4},
    )
    post = posterior(model, [FEVER])
    ranked = expected_information_gain(model, post, [FEVER], limit=5)
    assert [h for h, _ in ranked][:2] == [RASH, CATARACT]
    gains = dict(ranked)
    assert gains[ANEMIA] == pytest.approx(0.0, abs=1e-9)
    assert 0 < gains[CATARACT] < gains[RASH] < 1.0  # at most H = 1 bit for two equal diseases
    assert FEVER not in gains  # already asked
    assert expected_information_gain(model, post, [FEVER, RASH, ANEMIA, CATARACT]) == []


def test_the_suggested_next_finding_splits_the_leading_diseases_of_the_demo(demo) -> None:
    result = diagnose(demo, ["HP:0001945", "HP:0001744"], top_k=5)  # fever, splenomegaly
    nxt = result.next_finding
    assert nxt is not None and nxt.hpo_id not in ("HP:0001945", "HP:0001744")
    assert set(nxt.p_present) == {d.disease_id for d in result.diseases}
    assert max(nxt.p_present.values()) - min(nxt.p_present.values()) > 0.3
    assert nxt.expected_gain_bits > 0.1
    gains = [n.expected_gain_bits for n in result.next_findings]
    assert gains == sorted(gains, reverse=True)


def test_findings_for_and_against_each_disease(demo) -> None:
    # Marfan hallmarks, arachnodactyly absent, and a finding Marfan is not annotated with.
    present = ["HP:0001519", "HP:0001065", "HP:0002616", "HP:0001744"]
    result = diagnose(demo, present, ["HP:0001166"], top_k=5)
    marfan = next(d for d in result.diseases if d.disease_id == "ORPHA:558")
    assert {e.hpo_id for e in marfan.supporting} == {"HP:0001519", "HP:0001065", "HP:0002616"}
    against = {e.hpo_id: e for e in marfan.against}
    assert set(against) == {"HP:0001744", "HP:0001166"}
    assert against["HP:0001166"].frequency == "Very frequent (99-80%)"
    assert against["HP:0001744"].frequency == "not annotated"
    assert all(e.log_lr > 0 for e in marfan.supporting)
    # vs. the leak: a missing hallmark weighs against; an unexplained finding is neutral
    # against the leak but listed, since the diseases that explain it gain by it.
    assert against["HP:0001166"].log_lr < 0 and against["HP:0001744"].log_lr == 0
    assert any("Orphanet" in s for s in result.sources)
    assert any("Human Phenotype Ontology" in s for s in result.sources)
    assert result.diseases[0].posterior >= result.diseases[-1].posterior


@pytest.mark.parametrize(
    ("disease_id", "name"),
    [("ORPHA:324", "Fabry disease"), ("ORPHA:558", "Marfan syndrome"), ("ORPHA:905", "Wilson")],
)
def test_typical_findings_put_the_true_disease_in_the_top_three(demo, disease_id, name) -> None:
    """Acceptance (issue 8): a handful of the disease's own "Very frequent"/"Frequent"
    phenotypes, drawn from the bundle (three draws each), rank it in the top 3."""
    row = demo.disease_index[disease_id]
    assert name in demo.disease_names[row]
    typical = sorted(
        hpo_id
        for hpo_id, (_, frequency, _) in demo.annotations(row).items()
        if frequency.startswith(("Very frequent", "Frequent"))
    )
    assert len(typical) >= 10
    for seed in range(3):
        chosen = random.Random(seed).sample(typical, 5)
        result = diagnose(demo, chosen, top_k=3)
        ranked = [d.disease_id for d in result.diseases]
        assert disease_id in ranked, (chosen, ranked)
        assert math.isclose(sum(posterior(demo, chosen)), 1.0)
