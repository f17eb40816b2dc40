"""r_task, the composite r = α·r_task + β·r_expert − γ·r_efficiency, completion parsing and
GRPO group advantages (paper §4), on crafted completions in every shape a trainer passes."""

from __future__ import annotations

import json
import logging

import pytest

from medresearcher.schema import Trajectory
from medresearcher.training.completion import parse_completion
from medresearcher.training.rewards import (
    RewardWeights,
    composite_reward,
    group_relative_advantages,
    make_composite_reward,
    score_parts,
    task_reward,
)
from tests.trajectory_fixtures import hermes_call, verl_response

GOLD = "Fabry disease"
ALIASES = ["Anderson-Fabry disease", "alpha-galactosidase A deficiency"]
QUESTION = "Which disorder is caused by variants in GLA? Which disorder is it?"


def trl_messages(answer: str, *, calls: int = 1) -> list[dict]:
    """A TRL conversational completion with tools: dict arguments, tool turns by name."""
    messages: list[dict] = []
    for k in range(calls):
        messages.append(
            {
                "role": "assistant",
                "content": "<think>search first</think>",
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {"name": "web_search", "arguments": {"queries": [f"q{k}"]}},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "name": "web_search", "content": f"result {k}"})
    messages.append({"role": "assistant", "content": f"<answer>{answer}</answer>"})
    return messages


# -- parsing -----------------------------------------------------------------------------------


def test_a_verl_decoded_response_gives_calls_results_turns_and_the_last_answer() -> None:
    text = verl_response(
        (
            "<think>look it up</think>" + hermes_call("web_search", queries=["GLA gene"]),
            "GLA → Fabry",
        ),
        (hermes_call("document_read", url_or_id="ORPHA:324"), "Fabry disease is X-linked"),
        ("<think>done</think>\n<answer>Fabry disease</answer>", None),
    )
    parsed = parse_completion(text)
    assert parsed.final_answer == "Fabry disease"
    assert [(c.name, c.turn) for c in parsed.calls] == [("web_search", 0), ("document_read", 1)]
    assert parsed.calls[0].arguments == {"queries": ["GLA gene"]}
    assert [(o.text, o.turn) for o in parsed.observations] == [
        ("GLA → Fabry", 0),
        ("Fabry disease is X-linked", 1),
    ]
    assert parsed.turns == 3
    assert "look it up" in parsed.reasoning


def test_special_tokens_left_in_the_text_are_ignored() -> None:
    text = (
        hermes_call("web_search", queries=["x"])
        + "<|im_end|>\n<|im_start|>user\n<tool_response>\nr\n</tool_response><|im_end|>\n"
        + "<|im_start|>assistant\n<answer>GLA</answer><|im_end|>"
    )
    parsed = parse_completion(text)
    assert parsed.final_answer == "GLA"
    assert len(parsed.calls) == 1 and parsed.observations[0].text == "r"


def test_a_rollout_that_ends_in_a_call_has_no_answer() -> None:
    text = verl_response(("thinking " + hermes_call("web_search", queries=["x"]), None))
    assert parse_completion(text).final_answer is None


def test_trl_messages_and_json_string_arguments_parse_alike() -> None:
    as_dicts = parse_completion(trl_messages(GOLD, calls=2))
    as_strings = trl_messages(GOLD, calls=2)
    for message in as_strings:
        for tool_call in message.get("tool_calls", []):
            tool_call["function"]["arguments"] = json.dumps(tool_call["function"]["arguments"])
    parsed = parse_completion(as_strings)
    assert [c.key for c in parsed.calls] == [c.key for c in as_dicts.calls]
    assert parsed.final_answer == as_dicts.final_answer == GOLD
    assert [o.name for o in parsed.observations] == ["web_search", "web_search"]


def test_a_trajectory_uses_its_recorded_answer_and_skips_its_prompt() -> None:
    trajectory = Trajectory(
        id="T:1",
        policy="path_guided",
        question=QUESTION,
        messages=[
            {"role": "system", "content": "You are a research agent."},
            {"role": "user", "content": QUESTION},
            *trl_messages("<ignored>", calls=1)[:-1],
            {"role": "assistant", "content": "It is Fabry.\n<answer>Fabry disease</answer>"},
        ],
        final_answer="Fabry disease",
        termination="answer",
        created_at="2025-01-01T00:00:00Z",
    )
    parsed = parse_completion(trajectory)
    assert parsed.final_answer == "Fabry disease"
    assert len(parsed.calls) == 1
    assert parse_completion(trajectory.model_dump()).final_answer == "Fabry disease"


def test_the_rendered_text_layout_reads_tool_results_from_user_turns() -> None:
    messages = [
        {"role": "assistant", "content": hermes_call("web_search", queries=["GLA"])},
        {"role": "user", "content": "<tool_response>\nFabry disease\n</tool_response>"},
        {"role": "assistant", "content": "<answer>Fabry disease</answer>"},
    ]
    parsed = parse_completion(messages)
    assert [o.text for o in parsed.observations] == ["Fabry disease"]
    assert parsed.final_answer == GOLD


# -- task reward -------------------------------------------------------------------------------


def test_task_reward_is_one_for_the_gold_or_an_alias_and_zero_otherwise() -> None:
    completions = [
        "<answer>Fabry disease</answer>",
        "<answer>anderson-fabry disease</answer>",
        "<answer>Gaucher disease</answer>",
        "",
        verl_response((hermes_call("web_search", queries=["Fabry disease"]), None)),
        trl_messages(GOLD),
    ]
    n = len(completions)
    rewards = task_reward(
        completions, answer=[GOLD] * n, answer_aliases=[ALIASES] * n, question=[QUESTION] * n
    )
    assert rewards == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0]


def test_task_reward_without_aliases_rejects_the_alias() -> None:
    completion = ["<answer>alpha-galactosidase A deficiency</answer>"]
    assert task_reward(completion, answer=[GOLD]) == [0.0]
    assert task_reward(completion, answer=[GOLD], answer_aliases=[ALIASES]) == [1.0]


def test_a_reward_column_of_the_wrong_length_is_an_error() -> None:
    with pytest.raises(ValueError, match="answer"):
        task_reward(["a", "b"], answer=[GOLD])


# -- composite ---------------------------------------------------------------------------------

WASTEFUL = verl_response(
    (hermes_call("web_search", queries=["GLA"]), "GLA causes Fabry disease"),
    (hermes_call("web_search", queries=["GLA"]), "GLA causes Fabry disease"),
    ("<answer>Fabry disease</answer>", None),
)


def test_the_composite_is_alpha_task_minus_gamma_efficiency_without_an_expert() -> None:
    # two calls: the second repeats the first and follows the answer → penalty 1/2
    parts = score_parts(parse_completion(WASTEFUL), answer=GOLD, question=QUESTION)
    assert parts["task"] == 1.0 and parts["efficiency_penalty"] == 0.5
    assert composite_reward([WASTEFUL], answer=[GOLD], question=[QUESTION]) == [1.0 - 0.1 * 0.5]


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        (RewardWeights(task=1.0, expert=0.2, efficiency=0.1), 0.95),
        (RewardWeights(task=2.0, expert=0.2, efficiency=0.1), 1.95),  # + Δα·r_task (1.0)
        (RewardWeights(task=1.0, expert=0.2, efficiency=0.5), 0.75),  # − Δγ·penalty (0.4·0.5)
        (RewardWeights(task=1.0, expert=9.0, efficiency=0.1), 0.95),  # β unused: no expert
    ],
)
def test_changing_one_weight_moves_the_score_by_exactly_its_term(weights, expected) -> None:
    reward = make_composite_reward(weights)
    assert reward([WASTEFUL], answer=[GOLD], question=[QUESTION]) == [pytest.approx(expected)]


def test_the_expert_weight_scales_the_expert_score_exactly() -> None:
    parsed = parse_completion(WASTEFUL)
    low = score_parts(parsed, answer=GOLD, weights=RewardWeights(expert=0.2), expert_score=0.5)
    high = score_parts(parsed, answer=GOLD, weights=RewardWeights(expert=0.6), expert_score=0.5)
    assert high["score"] - low["score"] == pytest.approx(0.4 * 0.5)
    off = score_parts(parsed, answer=GOLD, weights=RewardWeights(expert=0.6), expert_score=None)
    assert off["score"] == pytest.approx(low["score"] - 0.2 * 0.5)
    assert off["expert_judged"] == 0.0 and low["expert_judged"] == 1.0


def test_the_composite_is_named_for_trl_and_says_the_expert_is_off(caplog) -> None:
    reward = make_composite_reward()
    assert reward.__name__ == composite_reward.__name__ == "composite_reward"
    assert reward.effective_weights == RewardWeights(task=1.0, expert=0.0, efficiency=0.1)
    with caplog.at_level(logging.WARNING):
        reward(["<answer>x</answer>"], answer=[GOLD])
        reward(["<answer>x</answer>"], answer=[GOLD])
    warnings = [r for r in caplog.records if "expert term is off" in r.getMessage()]
    assert len(warnings) == 1


def test_trl_extra_keywords_are_accepted() -> None:
    rewards = composite_reward(
        prompts=[[{"role": "user", "content": QUESTION}]],
        completions=[trl_messages(GOLD)],
        completion_ids=[[1, 2, 3]],
        answer=[GOLD],
        answer_aliases=[ALIASES],
        question=[QUESTION],
        paradigm=["identify"],
        trainer_state=None,
        log_extra=None,
        log_metric=None,
    )
    assert rewards == [1.0]


# -- group advantages --------------------------------------------------------------------------


def test_group_relative_advantages_centre_and_scale_within_each_group() -> None:
    advantages = group_relative_advantages([1.0, 0.0, 1.0, 0.0, 0.3, 0.3, 0.3, 0.3], 4)
    std = (4 * 0.25 / 3) ** 0.5  # unbiased std of [1, 0, 1, 0]
    assert advantages[:4] == pytest.approx([0.5 / std, -0.5 / std, 0.5 / std, -0.5 / std], 1e-5)
    assert advantages[4:] == [0.0] * 4
    assert group_relative_advantages([1.0, 0.0], 2, scale=False) == [0.5, -0.5]
    assert group_relative_advantages([3.0], 1) == [0.0]


def test_group_relative_advantages_reject_a_ragged_batch() -> None:
    with pytest.raises(ValueError, match="groups of 3"):
        group_relative_advantages([1.0, 0.0], 3)
