"""``eval run`` as a shard job: benchmark items × rollouts, graded, on an executor.

A work item is one benchmark item with the rollouts its results lack; a shard runs
:func:`~medresearcher.evaluation.runner.run_eval` over its items with the shard's own
``results`` and ``trajectories`` writers, which start out holding the keys the run's
results already have (so only missing rollouts run). A pair whose trajectory an earlier run
wrote without its result is graded from that stored trajectory, as the local runner does:
the worker copies it into the shard's trajectories first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medresearcher.config import Settings
from medresearcher.executor.base import OutputSpec, ShardJob, WorkItem
from medresearcher.executor.context import output_ids, settings_context, settings_from
from medresearcher.executor.stage_traj import shard_dir
from medresearcher.schema import QARecord, Trajectory
from medresearcher.workspace import JsonlWriter, Workspace, read_jsonl

if TYPE_CHECKING:
    from medresearcher.agent import AgentLimits
    from medresearcher.evaluation.items import BenchmarkItem

__all__ = ["eval_job", "eval_shard"]


def eval_job(
    items: Sequence[BenchmarkItem],
    *,
    settings: Settings,
    benchmark: str,
    results_path: Path,
    trajectories_path: Path,
    policy: str,
    endpoint: str = "agent",
    qa_file: Path | None = None,
    judge_endpoint: str | None = None,
    tool_names: list[str] | None = None,
    limits: AgentLimits,
    rollouts: int = 3,
    workers: int = 16,
    language: str = "en",
) -> tuple[ShardJob, list[WorkItem]]:
    """The items of an evaluation run with a rollout still ungraded, as a job.

    ``qa_file`` holds the QA records the ``path_guided`` policy follows.
    """
    from medresearcher.agent import trajectory_id
    from medresearcher.evaluation.runner import RESULT_KEY

    name = "path_guided" if policy == "path_guided" else f"llm:{endpoint}"
    done = output_ids(results_path, RESULT_KEY)
    stored = output_ids(trajectories_path)
    work = []
    for item in items:
        keys = [trajectory_id(item.item_id, name, k, "none") for k in range(rollouts)]
        missing = [key for key in keys if key not in done]
        if missing:
            payload = {
                "item": item.model_dump(mode="json"),
                "done": [key for key in keys if key in done],
                "stored": [key for key in missing if key in stored],
            }
            work.append(WorkItem(item.item_id, payload))
    options = {
        "benchmark": benchmark,
        "policy": policy,
        "endpoint": endpoint,
        "qa_file": str(Path(qa_file).resolve()) if qa_file else None,
        "judge": judge_endpoint,
        "tools": tool_names,
        "limits": asdict(limits),
        "rollouts": rollouts,
        "workers": workers,
        "language": language,
        "trajectories": str(Path(trajectories_path).resolve()),
    }
    job = ShardJob(
        stage="eval-run",
        worker=f"{__name__}:eval_shard",
        context={"settings": settings_context(settings), "options": options},
        outputs={
            "results": OutputSpec(results_path, RESULT_KEY),
            "trajectories": OutputSpec(trajectories_path),
        },
        workdir=shard_dir(results_path),
    )
    return job, work


async def eval_shard(
    context: Mapping[str, Any], items: list[WorkItem], outputs: dict[str, JsonlWriter]
) -> dict[str, Any]:
    """Worker of :func:`eval_job`: one gateway, tool box and grader for the shard's items."""
    from medresearcher.agent import AgentLimits
    from medresearcher.evaluation.items import BenchmarkItem
    from medresearcher.evaluation.runner import (
        llm_policies,
        make_grader,
        path_guided_policies,
        run_eval,
    )
    from medresearcher.llm import LLMGateway

    settings = settings_from(context)
    options = dict(context["options"])
    results, trajectories = outputs["results"], outputs["trajectories"]
    for item in items:  # graded before: the shard must not run them again
        results.ids.update(item.payload["done"])
    _carry_stored(Path(options["trajectories"]), items, trajectories)
    benchmark_items = [BenchmarkItem.model_validate(item.payload["item"]) for item in items]
    records: dict[str, QARecord] = {}
    if options["policy"] == "path_guided":
        wanted = {item.id for item in items}
        records = {
            r.id: r  # type: ignore[union-attr]
            for r in read_jsonl(options["qa_file"], QARecord)
            if r.id in wanted  # type: ignore[union-attr]
        }
    async with LLMGateway(settings) as gateway:
        toolbox = _toolbox(settings, gateway, options["tools"])
        try:
            factory = (
                llm_policies(gateway, options["endpoint"])
                if options["policy"] == "llm"
                else path_guided_policies(records, settings)
            )
            judge = None
            if options["judge"]:
                from medresearcher.grading.grade import Judge

                judge = Judge(gateway, options["judge"])
            counts = await run_eval(
                benchmark_items,
                benchmark=options["benchmark"],
                results=results,
                trajectories=trajectories,
                policy_factory=factory,
                toolbox=toolbox,
                limits=AgentLimits(**options["limits"]),
                grade_fn=make_grader(judge),
                rollouts=int(options["rollouts"]),
                workers=int(options["workers"]),
                timeout_s=None,
                language=options["language"],
            )
        finally:
            await toolbox.aclose()
        usage = gateway.usage_report()
    summary: dict[str, Any] = counts.to_dict()
    summary.pop("skipped", None)  # the driver knows what was graded before the run
    summary["failures"] = list(counts.failures)
    summary["usage"] = usage
    return summary


def _toolbox(settings: Settings, gateway: Any, names: list[str] | None) -> Any:
    """The tools of ``--tools`` (``[]``: none; None: every configured tool)."""
    from medresearcher.tools.base import ToolBox

    if names == []:
        return ToolBox([], max_observation_tokens=settings.tools.max_observation_tokens)
    from medresearcher.tools import build_toolbox

    return build_toolbox(settings, Workspace(settings.workspace), gateway=gateway, names=names)


def _carry_stored(path: Path, items: list[WorkItem], out: JsonlWriter) -> None:
    """Copy the stored trajectories of ungraded pairs into the shard, to be graded as is."""
    wanted = {key for item in items for key in item.payload["stored"]} - out.ids
    if not wanted or not path.is_file():
        return
    for trajectory in read_jsonl(path, Trajectory):
        if trajectory.id in wanted:  # type: ignore[union-attr]
            out.write(trajectory)  # type: ignore[arg-type]
