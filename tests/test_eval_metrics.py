"""Evaluation metrics: unbiased pass@k, avg pass@1, best pass@1, bootstrap intervals,
breakdowns by metadata, verdict and grader shares, tool use, tokens, cost and latency."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from medresearcher.errors import InputError
from medresearcher.evaluation.metrics import (
    best_pass_at_1,
    bootstrap_ci,
    breakdown,
    compute_metrics,
    item_outcomes,
    pass_at_k,
    per_rollout_accuracy,
)
from medresearcher.schema import EvalResult, Trajectory

# item id → (metadata, verdicts of rollouts 0, 1, 2); "u" is unjudgeable
ITEMS: dict[str, tuple[dict[str, Any], str]] = {
    "q1": ({"task": "Ingredient", "hops": 1, "specialties": ["oncology"]}, "ccc"),
    "q2": ({"task": "Ingredient", "hops": 1, "specialties": ["oncology", "genetics"]}, "cxc"),
    "q3": ({"task": "Applicant", "hops": 2, "specialties": ["genetics"]}, "xxx"),
    "q4": ({"task": "Applicant", "hops": 2, "specialties": []}, "xcu"),
    "q5": ({"task": "Patent", "hops": 10}, "uxx"),
    "q6": ({"hops": 3, "specialties": ["neurology"]}, "cxx"),
}
VERDICTS = {"c": "correct", "x": "incorrect", "u": "unjudgeable"}
# rollout index → tool names called, in order (the same for every item, shifted by item number)
TOOL_PLANS = [
    ["medical_retriever", "web_search"],
    ["web_search"],
    [],
    ["medical_retriever", "medical_retriever", "document_read"],
]


def closed_form(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def make_run(
    prediction_of: dict[str, str] | None = None,
) -> tuple[list[EvalResult], list[Trajectory]]:
    """Results and linked trajectories of a 6-item × 3-rollout run (see ITEMS, TOOL_PLANS)."""
    results, trajectories = [], []
    for number, (item_id, (metadata, verdicts)) in enumerate(ITEMS.items()):
        for rollout, code in enumerate(verdicts):
            tools = TOOL_PLANS[(number + rollout) % len(TOOL_PLANS)]
            families = ["medical" if t == "medical_retriever" else "general" for t in tools]
            switched = len(set(families)) > 1  # the family changes along the calls
            tid = f"T:{item_id}:{rollout}"
            trajectories.append(
                Trajectory(
                    id=tid,
                    qa_id=item_id,
                    rollout=rollout,
                    policy="llm:agent",
                    question=f"question {item_id}?",
                    messages=[{"role": "user", "content": f"question {item_id}?"}],
                    final_answer="x",
                    termination="answer" if tools else "max_turns",
                    stats={
                        "turns": len(tools) + 1,
                        "tool_calls": len(tools),
                        "tool_calls_by_tool": {t: tools.count(t) for t in set(tools)},
                        "first_tool": tools[0] if tools else None,
                        "switched": switched,
                        "errors": 1 if len(tools) == 3 else 0,
                        "recovered_errors": 1 if len(tools) == 3 and rollout == 0 else 0,
                        "elapsed_s": 10.0 + number,
                    },
                    usage={"prompt_tokens": 100, "completion_tokens": 20, "cost_usd": 0.01},
                    created_at="2026-01-01T00:00:00+00:00",
                )
            )
            results.append(
                EvalResult(
                    benchmark="medbrowsecomp",
                    item_id=item_id,
                    rollout=rollout,
                    question=f"question {item_id}?",
                    prediction=(prediction_of or {}).get(item_id, f"answer {item_id}"),
                    gold=f"gold {item_id}",
                    verdict=VERDICTS[code],
                    grader="rule:exact" if code == "c" and rollout == 0 else "llm:judge-model",
                    trajectory_id=tid,
                    latency_s=float(1 + number + rollout),
                    usage={"prompt_tokens": 100, "completion_tokens": 20, "cost_usd": 0.01},
                    metadata=dict(metadata),
                )
            )
    return results, trajectories


@pytest.fixture(scope="module")
def run() -> tuple[list[EvalResult], list[Trajectory]]:
    return make_run()


@pytest.fixture(scope="module")
def metrics(run) -> dict[str, Any]:
    results, trajectories = run
    return compute_metrics(results, trajectories, k=(1, 3), bootstrap=500, seed=7)


# ------------------------------------------------------------------------------- pass@k


@pytest.mark.parametrize("n", range(1, 13))
def test_pass_at_k_equals_the_closed_form_on_every_case(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-12)


def test_pass_at_k_edge_cases() -> None:
    assert pass_at_k(3, 0, 3) == 0.0  # c = 0: never
    assert pass_at_k(3, 3, 1) == 1.0  # c = n: always
    assert pass_at_k(3, 1, 3) == 1.0  # n = k: any correct rollout
    assert pass_at_k(3, 1, 1) == pytest.approx(1 / 3)  # pass@1 = c/n
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)


def test_pass_at_k_is_stable_where_the_binomials_are_huge() -> None:
    exact = 1 - Fraction(math.comb(990, 300), math.comb(1000, 300))
    assert pass_at_k(1000, 10, 300) == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, 1, 4), (3, -1, 1), (3, 1, 0)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)


# ------------------------------------------------------------------------------- accuracy


def test_avg_pass_at_1_is_the_mean_over_rollouts(run, metrics) -> None:
    results, _ = run
    per_rollout = [
        np.mean([r.verdict == "correct" for r in results if r.rollout == rollout])
        for rollout in range(3)
    ]
    accuracy = metrics["accuracy"]
    # rollouts 0, 1, 2 are correct for 3, 2 and 2 of the 6 items
    assert per_rollout == pytest.approx([3 / 6, 2 / 6, 2 / 6])
    assert accuracy["avg_pass@1"] == pytest.approx(np.mean(per_rollout), abs=1e-6)
    assert accuracy["pass@k"]["1"]["value"] == pytest.approx(accuracy["avg_pass@1"], abs=1e-6)
    assert [accuracy["per_rollout"][str(r)]["value"] for r in range(3)] == pytest.approx(
        per_rollout, abs=1e-6
    )


def test_pass_at_n_is_the_share_of_items_with_any_correct_rollout(metrics) -> None:
    any_correct = sum("c" in verdicts for _, verdicts in ITEMS.values()) / len(ITEMS)
    assert metrics["accuracy"]["pass@k"]["3"]["value"] == pytest.approx(any_correct, abs=1e-6)
    assert metrics["accuracy"]["pass@k"]["3"]["items"] == 6


def test_best_pass_at_1_names_the_best_rollout(run) -> None:
    items = item_outcomes(run[0])
    assert best_pass_at_1(items) == {"value": pytest.approx(0.5), "rollout": 0}
    assert per_rollout_accuracy(items)[1] == {"value": pytest.approx(2 / 6), "items": 6}


def test_pass_at_k_skips_items_with_fewer_rollouts_than_k(run) -> None:
    results = [r for r in run[0] if not (r.item_id == "q3" and r.rollout == 2)]
    metrics = compute_metrics(results, k=(1, 3), bootstrap=0)
    assert metrics["accuracy"]["pass@k"]["3"]["items"] == 5
    assert metrics["accuracy"]["pass@k"]["3"]["value"] == pytest.approx(4 / 5, abs=1e-6)
    assert metrics["counts"]["min_rollouts"] == 2
    with_k5 = compute_metrics(results, k=(5,), bootstrap=0)["accuracy"]["pass@k"]["5"]
    assert with_k5 == {"value": None, "ci": None, "items": 0}


def test_a_repeated_item_and_rollout_counts_once_the_last_result(run) -> None:
    results = list(run[0])
    again = results[0].model_copy(update={"verdict": "incorrect"})
    items = {i.item_id: i for i in item_outcomes([*results, again])}
    assert items["q1"].n == 3 and items["q1"].c == 2


# ------------------------------------------------------------------------------- bootstrap


def test_bootstrap_interval_contains_the_point_estimate_and_is_seeded(metrics) -> None:
    accuracy = metrics["accuracy"]
    low, high = accuracy["ci"]
    assert low <= accuracy["avg_pass@1"] <= high and low < high
    for block in accuracy["pass@k"].values():
        assert block["ci"][0] <= block["value"] <= block["ci"][1]
    scores = np.random.default_rng(1).random(50)
    first = bootstrap_ci(scores, resamples=300, seed=3)
    assert first == bootstrap_ci(scores, resamples=300, seed=3)
    assert first != bootstrap_ci(scores, resamples=300, seed=4)
    assert first[0] <= scores.mean() <= first[1]


def test_bootstrap_resamples_items_not_rollouts() -> None:
    # one item, all rollouts wrong but one: resampling items can only ever pick that item
    results = [
        EvalResult(benchmark="b", item_id="only", rollout=r, prediction="p", gold="g",
                   verdict="correct" if r == 0 else "incorrect", grader="rule:exact")
        for r in range(4)
    ]  # fmt: skip
    metrics = compute_metrics(results, bootstrap=200)
    assert metrics["accuracy"]["ci"] == [0.25, 0.25]


def test_bootstrap_can_be_turned_off(run) -> None:
    metrics = compute_metrics(run[0], bootstrap=0)
    assert metrics["accuracy"]["ci"] is None and metrics["accuracy"]["avg_pass@1"] is not None


# ------------------------------------------------------------------------------- breakdowns


def test_breakdown_by_task_and_the_missing_category(metrics) -> None:
    by_task = metrics["by"]["task"]
    assert list(by_task) == ["Applicant", "Ingredient", "Patent", "(missing)"]
    assert by_task["Ingredient"]["items"] == 2
    assert by_task["Ingredient"]["avg_pass@1"] == pytest.approx((3 / 3 + 2 / 3) / 2, abs=1e-6)
    assert by_task["Applicant"]["avg_pass@1"] == pytest.approx((0 + 1 / 3) / 2, abs=1e-6)
    assert by_task["(missing)"]["items"] == 1  # q6 has no task


def test_breakdown_sorts_numbers_by_value_and_fans_out_lists(run, metrics) -> None:
    assert list(metrics["by"]["hops"]) == ["1", "2", "3", "10"]
    specialties = metrics["by"]["specialties"]
    assert specialties["genetics"]["items"] == 2  # q2 and q3
    assert specialties["oncology"]["items"] == 2  # q1 and q2
    assert specialties["(none)"]["items"] == 1 and specialties["(missing)"]["items"] == 1
    assert "paradigm" not in metrics["by"]  # a key no result carries is left out
    assert "benchmark" not in metrics["by"]  # one benchmark: nothing to break down


def test_breakdown_by_any_dotted_metadata_key(run) -> None:
    results = [
        r.model_copy(update={"metadata": {"run": {"policy": f"p{r.rollout % 2}"}}}) for r in run[0]
    ]
    groups = breakdown(item_outcomes(results), "run.policy", bootstrap=0)
    # metadata is per item, so the last rollout's value wins for every item: rollout 2 → p0
    assert list(groups) == ["p0"] and groups["p0"]["items"] == 6
    metrics = compute_metrics(results, by=["run.policy"], bootstrap=0)
    assert list(metrics["by"]) == ["run.policy"]


# ------------------------------------------------------------------------------- the rest


def test_unjudgeable_counts_and_grader_shares(run, metrics) -> None:
    assert metrics["verdicts"]["unjudgeable"] == 2  # q4 r2, q5 r0
    assert metrics["verdicts"]["unjudgeable_share"] == pytest.approx(2 / 18, abs=1e-6)
    rule = sum(r.grader.startswith("rule:") for r in run[0])
    assert metrics["graders"]["rule"] == pytest.approx(rule / 18, abs=1e-6)
    assert metrics["graders"]["rule"] + metrics["graders"]["llm"] == pytest.approx(1.0)
    assert metrics["graders"]["counts"] == {"llm:judge-model": 18 - rule, "rule:exact": rule}


def test_tool_use_statistics_from_the_trajectories(run, metrics) -> None:
    _, trajectories = run
    tools = metrics["tool_use"]
    calls = [t.stats["tool_calls"] for t in trajectories]
    used = [t for t in trajectories if t.stats["tool_calls"]]
    assert tools["trajectories"] == 18 and tools["unlinked_results"] == 0
    assert tools["calls_per_rollout"]["mean"] == pytest.approx(np.mean(calls), abs=1e-6)
    assert tools["calls_per_rollout"]["p95"] == pytest.approx(np.percentile(calls, 95), abs=1e-6)
    assert sum(tools["histogram"].values()) == 18
    share = sum(t.stats["first_tool"] == "medical_retriever" for t in used) / len(used)
    assert tools["first_tool_medical_retriever_share"] == pytest.approx(share, abs=1e-6)
    switched = sum(t.stats["switched"] for t in used) / len(used)
    assert tools["switched_share"] == pytest.approx(switched, abs=1e-6)
    assert tools["errors"] == sum(t.stats["errors"] for t in trajectories)
    assert tools["recovered_errors"] == sum(t.stats["recovered_errors"] for t in trajectories)
    by_calls = tools["accuracy_by_calls"]
    assert sum(v["results"] for v in by_calls.values()) == 18
    assert sum(v["correct"] for v in by_calls.values()) == metrics["verdicts"]["correct"]


def test_tool_calls_are_counted_from_messages_when_stats_lack_them(run) -> None:
    results, _ = run
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "web_search", "arguments": "{}"}}
    ]
    bare = Trajectory(
        id="T:bare", policy="llm:agent", question="q", termination="answer",
        messages=[{"role": "user", "content": "q"},
                  {"role": "assistant", "content": None, "tool_calls": calls},
                  {"role": "tool", "tool_call_id": "c1", "content": "obs"},
                  {"role": "assistant", "content": "a"}],
        created_at="2026-01-01T00:00:00+00:00",
    )  # fmt: skip
    result = results[0].model_copy(update={"trajectory_id": "T:bare"})
    tools = compute_metrics([result], [bare], bootstrap=0)["tool_use"]
    assert tools["histogram"] == {"1": 1} and tools["first_tool"] == {"web_search": 1}
    assert tools["turns"]["mean"] == 2


def test_tokens_cost_and_latency(run, metrics) -> None:
    results, _ = run
    usage = metrics["usage"]
    assert usage["tokens"] == {
        "prompt": 1800,
        "completion": 360,
        "total": 2160,
        "per_result": {"n": 18, "mean": 120.0, "p50": 120.0, "p95": 120.0, "max": 120.0},
    }
    assert usage["cost_usd"]["total"] == pytest.approx(0.18)
    assert usage["cost_usd"]["per_item"] == pytest.approx(0.03)
    latencies = [r.latency_s for r in results]
    assert usage["latency_s"]["p50"] == pytest.approx(np.percentile(latencies, 50))
    assert usage["latency_s"]["p95"] == pytest.approx(np.percentile(latencies, 95))
    unpriced = [r.model_copy(update={"usage": {}, "latency_s": None}) for r in results]
    no_trajectories = compute_metrics(unpriced, bootstrap=0)
    assert no_trajectories["usage"]["cost_usd"]["total"] is None
    assert no_trajectories["usage"]["latency_s"]["n"] == 0
    assert no_trajectories["tool_use"] is None


def test_metrics_are_json_ready_and_reproducible(run, metrics) -> None:
    text = json.dumps(metrics, allow_nan=False)
    again = compute_metrics(*run, k=(3, 1), bootstrap=500, seed=7)
    assert json.dumps(again, allow_nan=False) == text


def test_no_results_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no results"):
        compute_metrics([])
