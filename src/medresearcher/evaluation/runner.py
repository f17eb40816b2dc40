"""The evaluation runner (paper §5): every benchmark item × rollout once, graded, resumable.

The paper reports pass@1 averaged over rollouts on MedBrowseComp, GAIA and xbench-DeepSearch;
that needs ``n`` independent rollouts of every item, each kept as a trajectory and graded.
:func:`run_eval` runs those (item, rollout) pairs concurrently under a semaphore of
``workers``, each bounded by the loop's own time limit and, should that ever fail to end a
run, by an ``asyncio.wait_for`` guard. For each pair it writes, in this order:

1. the :class:`~medresearcher.schema.Trajectory` to ``trajectories/<run>.jsonl`` (keyed by id);
2. the :class:`~medresearcher.schema.EvalResult` to ``eval/<run>/results.jsonl``, keyed by
   ``trajectory_id`` — the stable id of (item id, policy, rollout), which is also the
   trajectory's own id, so every result links to its trajectory.

A re-run with the same writers skips the pairs that have a result; a pair whose trajectory
was written but whose result was not (a kill between the two lines, or a line cut by a crash)
is graded from the stored trajectory, without running the agent again, so the result always
describes the trajectory it links to. Result lines are appended as pairs finish; sort them
with :func:`load_results` for a deterministic order. The policy factories and the default
grader live in :mod:`.policies` and are re-exported here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medresearcher.agent import AgentLimits, Policy, run_agent, trajectory_id
from medresearcher.errors import InputError
from medresearcher.evaluation.policies import (
    Graded,
    GradeFn,
    PolicyFactory,
    llm_policies,
    make_grader,
    path_guided_policies,
    path_guided_turns,
)
from medresearcher.schema import EvalResult, Trajectory, utc_now
from medresearcher.tools.base import ToolBox
from medresearcher.workspace import JsonlWriter, read_jsonl

if TYPE_CHECKING:
    from medresearcher.evaluation.items import BenchmarkItem

__all__ = [
    "GUARD_MARGIN_S",
    "RESULT_KEY",
    "EvalCounts",
    "GradeFn",
    "Graded",
    "PolicyFactory",
    "check_run_config",
    "llm_policies",
    "load_results",
    "make_grader",
    "path_guided_policies",
    "path_guided_turns",
    "results_writer",
    "run_eval",
]

log = logging.getLogger(__name__)

RESULT_KEY = "trajectory_id"
"""The field ``results.jsonl`` is keyed by: one line per (item, policy, rollout)."""

GUARD_MARGIN_S = 30.0
"""Seconds the guard allows beyond the loop's time limit and its forced-answer grace."""

_FAILURES_KEPT = 5


@dataclass
class EvalCounts:
    """What one call of :func:`run_eval` did.

    ``pairs`` counts the (item, rollout) pairs asked for; ``skipped`` those already graded
    by an earlier run; ``regraded`` those whose trajectory an earlier run wrote and that were
    graded now; ``written`` the results written now (verdicts below count only these).
    ``errors`` are runs that ended in termination ``error`` (recorded and graded, usually as
    incorrect); ``failed`` pairs wrote no result at all (an exception): a re-run retries them.
    """

    pairs: int = 0
    skipped: int = 0
    regraded: int = 0
    written: int = 0
    correct: int = 0
    incorrect: int = 0
    unjudgeable: int = 0
    timeouts: int = 0
    errors: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        """Correct over the results written by this call (pass@1 averaged over rollouts)."""
        return self.correct / self.written if self.written else None

    def to_dict(self) -> dict[str, int]:
        """The counts, for a run manifest."""
        return {k: v for k, v in asdict(self).items() if k != "failures"}


async def run_eval(
    items: Sequence[BenchmarkItem],
    *,
    benchmark: str,
    results: JsonlWriter,
    trajectories: JsonlWriter,
    policy_factory: PolicyFactory,
    toolbox: ToolBox,
    limits: AgentLimits | None = None,
    grade_fn: GradeFn | None = None,
    rollouts: int = 3,
    workers: int = 16,
    timeout_s: float | None = 600.0,
    limit: int | None = None,
    language: str = "en",
    on_plan: Callable[[int, int], None] | None = None,
    on_result: Callable[[EvalResult], None] | None = None,
) -> EvalCounts:
    """Run and grade every (item, rollout) pair that ``results`` does not hold yet.

    Parameters
    ----------
    items:
        The benchmark, in its order; ids must be unique.
    benchmark:
        Its name, written into every result (``qa``, ``medbrowsecomp``, ``gaia`` …).
    results, trajectories:
        Open writers: :func:`results_writer` (keyed by :data:`RESULT_KEY`) and a plain
        ``JsonlWriter`` (keyed by ``id``). What they already hold is skipped or regraded.
    policy_factory:
        ``(item, rollout) -> Policy``; see :func:`llm_policies`, :func:`path_guided_policies`.
        It is called for every pair up front, so a policy that cannot be built fails before
        any work is done.
    toolbox, limits:
        The tools and budgets of every run (shared; ``timeout_s`` overrides the time limit).
    grade_fn:
        ``(item, prediction) -> GradeResult``; default :func:`make_grader` (rules, no judge).
    rollouts, workers, timeout_s, limit:
        Rollouts per item; runs at once; seconds per run; only the first ``limit`` items.
    language:
        Prompt language, unless an item's ``metadata["language"]`` says otherwise.
    on_plan:
        Called once with (pairs asked for, pairs already graded) before any run starts.
    on_result:
        Called with each result written (for a progress bar).

    Returns
    -------
    EvalCounts
    """
    if results.key != RESULT_KEY:
        raise ValueError(f"results must be keyed by {RESULT_KEY!r}: use results_writer()")
    if rollouts < 1 or workers < 1:
        raise ValueError("rollouts and workers must be at least 1")
    chosen = list(items[:limit] if limit is not None else items)
    _check_unique(chosen)
    limits = limits or AgentLimits()
    if timeout_s is not None:
        limits = replace(limits, timeout_s=timeout_s)
    grade_fn = grade_fn or make_grader()
    counts = EvalCounts(pairs=len(chosen) * rollouts)

    todo: list[tuple[BenchmarkItem, int, Policy, str]] = []
    for item in chosen:
        for rollout in range(rollouts):
            policy = policy_factory(item, rollout)
            key = trajectory_id(item.item_id, policy.name, rollout, "none")
            if key in results:
                counts.skipped += 1
            else:
                todo.append((item, rollout, policy, key))
    stored = _stored_trajectories(trajectories, {key for *_, key in todo})
    if on_plan is not None:
        on_plan(counts.pairs, counts.skipped)

    semaphore = asyncio.Semaphore(workers)
    pair = _PairRunner(
        benchmark, results, trajectories, toolbox, limits, grade_fn, language, counts, on_result
    )

    async def bounded(item: BenchmarkItem, rollout: int, policy: Policy, key: str) -> None:
        async with semaphore:
            await pair.run(item, rollout, policy, key, stored.get(key))

    await asyncio.gather(*(bounded(*job) for job in todo))
    return counts


@dataclass
class _PairRunner:
    """Runs, records and grades one (item, rollout) pair."""

    benchmark: str
    results: JsonlWriter
    trajectories: JsonlWriter
    toolbox: ToolBox
    limits: AgentLimits
    grade_fn: GradeFn
    language: str
    counts: EvalCounts
    on_result: Callable[[EvalResult], None] | None

    async def run(
        self,
        item: BenchmarkItem,
        rollout: int,
        policy: Policy,
        key: str,
        stored: Trajectory | None,
    ) -> None:
        try:
            if stored is not None:
                trajectory, latency = stored, float(stored.stats.get("elapsed_s") or 0.0)
                self.counts.regraded += 1
            else:
                trajectory, latency = await self._agent(item, rollout, policy, key)
                self.trajectories.write(trajectory)
            graded = await self.grade_fn(item, trajectory.final_answer)
        except Exception as exc:  # one pair's failure must not stop the others
            reason = f"{item.item_id} rollout {rollout}: {type(exc).__name__}: {exc}"
            log.warning("pair not graded (a re-run retries it): %s", reason)
            self.counts.failed += 1
            if len(self.counts.failures) < _FAILURES_KEPT:
                self.counts.failures.append(reason)
            return
        result = _result(self.benchmark, item, rollout, trajectory, graded, latency)
        if self.results.write(result):
            self._count(result, trajectory)
            if self.on_result is not None:
                self.on_result(result)

    async def _agent(
        self, item: BenchmarkItem, rollout: int, policy: Policy, key: str
    ) -> tuple[Trajectory, float]:
        """One agent run, bounded by the loop's own limit and by a guard beyond it."""
        guard = self.limits.timeout_s + self.limits.answer_grace_s + GUARD_MARGIN_S
        started = time.monotonic()
        try:
            trajectory = await asyncio.wait_for(
                run_agent(
                    item.question,
                    policy=policy,
                    toolbox=self.toolbox,
                    limits=self.limits,
                    language=_language(item, self.language),
                    qa_id=item.item_id,
                    rollout=rollout,
                ),
                timeout=guard,
            )
        except asyncio.TimeoutError:
            trajectory = _guard_stopped(item, rollout, policy, key, guard)
        latency = round(time.monotonic() - started, 3)
        if trajectory.id != key:
            raise RuntimeError(f"trajectory id {trajectory.id} is not the pair's key {key}")
        return trajectory, latency

    def _count(self, result: EvalResult, trajectory: Trajectory) -> None:
        counts = self.counts
        counts.written += 1
        setattr(counts, result.verdict, getattr(counts, result.verdict) + 1)
        counts.timeouts += trajectory.termination == "timeout"
        counts.errors += trajectory.termination == "error"


def _result(
    benchmark: str,
    item: BenchmarkItem,
    rollout: int,
    trajectory: Trajectory,
    graded: Graded,
    latency: float,
) -> EvalResult:
    metadata = dict(item.metadata)
    if item.file_name and "file_name" not in metadata:
        metadata["file_name"] = item.file_name
    metadata["run"] = {
        "policy": trajectory.policy,
        "termination": trajectory.termination,
        "turns": trajectory.stats.get("turns", 0),
        "tool_calls": trajectory.stats.get("tool_calls", 0),
        "extracted": graded.extracted,
        "grade_detail": graded.detail,
    }
    judgement = getattr(graded, "judgement", None)
    if judgement is not None:  # the judge's whole record, kept for review (raw when unreadable)
        metadata["run"]["judge"] = judgement.to_dict()
    return EvalResult(
        benchmark=benchmark,
        item_id=item.item_id,
        rollout=rollout,
        question=item.question,
        prediction=trajectory.final_answer,
        gold=item.gold,
        verdict=graded.verdict,  # type: ignore[arg-type]
        grader=graded.grader,
        trajectory_id=trajectory.id,
        latency_s=latency,
        usage=dict(trajectory.usage),
        metadata=metadata,
    )


def _guard_stopped(
    item: BenchmarkItem, rollout: int, policy: Policy, key: str, seconds: float
) -> Trajectory:
    """The record of a run the guard had to stop: its steps are lost, the timeout is not."""
    return Trajectory(
        id=key,
        qa_id=item.item_id,
        rollout=rollout,
        policy=policy.name,
        question=item.question,
        messages=[{"role": "user", "content": item.question}],
        termination="timeout",
        termination_detail=(
            f"the evaluation runner stopped the run after {seconds:g} s: the loop's own time "
            "limit did not end it; its steps were not recorded"
        ),
        stats={"turns": 0, "tool_calls": 0, "elapsed_s": round(seconds, 3), "guard": True},
        created_at=utc_now().isoformat(timespec="seconds"),
    )


def _language(item: BenchmarkItem, default: str) -> str:
    language = item.metadata.get("language")
    return language if language in ("en", "zh") else default


def _check_unique(items: Iterable[BenchmarkItem]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.item_id in seen:
            raise InputError(f"benchmark item id {item.item_id!r} occurs twice: ids must be unique")
        seen.add(item.item_id)


def _stored_trajectories(writer: JsonlWriter, keys: set[str]) -> dict[str, Trajectory]:
    """Trajectories an earlier run wrote for pairs that still lack a result."""
    wanted = keys & writer.ids
    if not wanted:
        return {}
    return {
        t.id: t
        for t in read_jsonl(writer.path, Trajectory)
        if t.id in wanted  # type: ignore[union-attr]
    }


# -- writers, results, run configuration ------------------------------------------------------


def results_writer(path: str | Path) -> JsonlWriter:
    """The writer of ``results.jsonl``, keyed by :data:`RESULT_KEY` (use as a context manager)."""
    return JsonlWriter(path, key=RESULT_KEY)


def load_results(path: str | Path) -> list[EvalResult]:
    """The results of ``path`` in a deterministic order: by item id, then rollout."""
    records = list(read_jsonl(path, EvalResult))
    return sorted(records, key=lambda r: (r.item_id, r.rollout, r.trajectory_id or ""))  # type: ignore[union-attr]


def check_run_config(path: str | Path, config: Mapping[str, Any]) -> None:
    """Record what an evaluation run is (``eval/<run>/run.json``), or check a resumed one.

    A resumed run must evaluate the same benchmark file with the same policy, otherwise its
    results would mix two experiments: that raises :class:`InputError` naming what differs.
    """
    path = Path(path)
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        differ = [k for k in config if k in before and before[k] != config[k]]
        if differ:
            what = "; ".join(f"{k}: {before[k]!r} then, {config[k]!r} now" for k in differ)
            raise InputError(
                f"{path}: this evaluation run was started with other settings ({what}); "
                "give another --run name, or the same settings to resume it"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(config), indent=2, ensure_ascii=False) + "\n", "utf-8")
