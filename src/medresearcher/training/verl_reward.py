"""verl's custom reward function: the paper §4 composite for verl's GRPO.

verl loads this file by path (``reward.custom_reward_function.path=<this file>``,
``name=compute_score``; the legacy top-level ``custom_reward_function.*`` keys are migrated to
those by verl 0.9) and calls, for every rollout::

    compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...,
                  **reward.custom_reward_function.reward_kwargs)

``solution_str`` is the decoded multi-turn response (hermes ``<tool_call>`` and
``<tool_response>`` blocks; see :mod:`medresearcher.training.completion`), ``ground_truth`` is
``reward_model.ground_truth`` of our ``verl_rl.parquet`` export (the gold answer as text; the
Search-R1 form ``{"target": [...]}`` is read too) and ``extra_info`` is the row's ``extra_info``
(``question``, ``answer_aliases``, ``qa_id``, …) plus what verl adds (``num_turns``…). The
returned dict's ``score`` is the reward; verl logs the other keys as ``reward_extra_info``.

``reward_kwargs`` (all optional; :func:`medresearcher.training.verl_bundle.write_verl_grpo_bundle`
writes them):

- ``task_weight``, ``expert_weight``, ``efficiency_weight``: α, β, γ (default 1.0, 0.2, 0.1);
- ``expert_endpoint`` and ``config``: the judge endpoint for r_expert and the medresearcher.toml
  that defines it; without an endpoint the expert term is off (β counts as 0);
- ``workspace``: where ``qa.jsonl`` is, to look up each row's cheat sheet (for the expert) and
  paradigm (for the efficiency rules) by ``extra_info.qa_id`` when the row does not carry them.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medresearcher.synthesis.export_verl import plain_python
from medresearcher.training.completion import parse_completion
from medresearcher.training.rewards import RewardWeights, score_parts

__all__ = ["close_experts", "compute_score", "ground_truth_forms"]

log = logging.getLogger(__name__)
_LOCK = threading.Lock()


def ground_truth_forms(ground_truth: Any) -> list[str]:
    """The accepted answers in a verl ``ground_truth``: text, a list, or ``{"target": [...]}``."""
    value = plain_python(ground_truth)
    if isinstance(value, Mapping):
        value = value.get("target", value.get("answer", []))
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None and str(v).strip()]
    return [] if value is None else [str(value)]


@functools.lru_cache(maxsize=8)
def _qa_index(workspace: str) -> dict[str, Any]:
    """QA records of ``workspace``/qa.jsonl by id (read once per process)."""
    from medresearcher.schema import QARecord
    from medresearcher.workspace import Workspace, read_jsonl

    path = Workspace(Path(workspace)).qa_path
    if not path.exists():
        log.warning("verl reward: no %s; cheat sheets and paradigms are not looked up", path)
        return {}
    return {record.id: record for record in read_jsonl(path, QARecord)}


_EXPERTS: dict[tuple[str | None, str], Any] = {}


def _expert(config: str | None, endpoint: str) -> Any:
    """One expert reward (and gateway) per process and endpoint."""
    with _LOCK:
        if (config, endpoint) not in _EXPERTS:
            from medresearcher.config import load_settings
            from medresearcher.llm import LLMGateway
            from medresearcher.training.expert import make_expert_reward

            settings = load_settings(config)
            _EXPERTS[(config, endpoint)] = make_expert_reward(LLMGateway(settings), endpoint)
        return _EXPERTS[(config, endpoint)]


def close_experts() -> None:
    """Close the judge gateways this process opened (their loops and HTTP clients)."""
    with _LOCK:
        experts = list(_EXPERTS.values())
        _EXPERTS.clear()
    for expert in experts:
        expert.close()


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    task_weight: float = 1.0,
    expert_weight: float = 0.2,
    efficiency_weight: float = 0.1,
    expert_endpoint: str | None = None,
    config: str | None = None,
    workspace: str | None = None,
    **_verl: Any,
) -> dict[str, float]:
    """r = α·r_task + β·r_expert − γ·r_efficiency of one verl rollout, with its parts.

    Returns ``{"score", "task", "expert", "expert_judged", "efficiency_penalty", "tool_calls",
    "wasted_calls", "answered"}``, every value a float (verl averages them in its logs).
    Keywords verl adds for reward models (``reward_router_address`` …) are ignored.
    """
    info = plain_python(dict(extra_info or {}))
    forms = ground_truth_forms(ground_truth)
    answer = forms[0] if forms else None
    aliases = [*forms[1:], *(info.get("answer_aliases") or [])]
    question = info.get("question")
    paradigm = info.get("paradigm")
    cheat_sheet = info.get("cheat_sheet")
    if workspace and info.get("qa_id") and (paradigm is None or cheat_sheet is None):
        record = _qa_index(str(workspace)).get(info["qa_id"])
        if record is not None:
            paradigm = paradigm or record.paradigm
            cheat_sheet = cheat_sheet or record.cheat_sheet
            question = question or record.question
    weights = RewardWeights(task_weight, expert_weight, efficiency_weight)
    expert_score = None
    if expert_endpoint:
        expert = _expert(config, expert_endpoint)
        expert_score = expert([solution_str], question=[question], cheat_sheet=[cheat_sheet])[0]
    else:
        weights = RewardWeights(task_weight, 0.0, efficiency_weight)
    return score_parts(
        parse_completion(solution_str),
        answer=answer,
        aliases=aliases,
        question=question,
        paradigm=paradigm,
        weights=weights,
        expert_score=expert_score,
    )
