"""Ray vs local executor on the same work (issue 14 benchmarks): same results, overhead/item.

Runs ``traj generate`` (offline path-guided policy), ``qa generate`` (template writer; the
writer calls in shards, the checks in the driver) and ``eval run`` (path-guided, rules
grading) over a workspace twice — the local path in this process, and the Ray
executor on a local instance with ``--cpus`` CPUs — checks the outputs are identical once
sorted by id (wall-clock fields aside, see tests/test_executor.py), and prints wall times and
the overhead per item. Ray start-up is timed apart: a cluster is started once, not per stage.

    python benchmarks/bench_executor.py --workspace /tmp/ws-demo --cpus 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_executor import normalised

from medresearcher.config import Settings
from medresearcher.executor import run_job
from medresearcher.schema import QARecord
from medresearcher.workspace import JsonlWriter, Workspace, read_jsonl

TRAJ = {"policy": "path_guided", "rollouts": 2, "alpha": 0.5, "seed": 1, "augment_rate": 0.3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--qa-n", type=int, default=24, help="Questions of the qa stage.")
    parser.add_argument("--eval-items", type=int, default=12, help="Items of the eval stage.")
    args = parser.parse_args()
    os.environ.setdefault("SOURCE_DATE_EPOCH", "1700000000")
    ws = Workspace(args.workspace)
    settings = Settings(workspace=ws.root)
    records = list(read_jsonl(ws.qa_path, QARecord))
    out = ws.root / "bench-executor"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()

    import ray

    from medresearcher.executor.ray_executor import RayExecutor
    from medresearcher.executor.stage_traj import generate_job
    from medresearcher.synthesis.generate import generate_trajectories

    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    executor = RayExecutor(shard_size=args.shard_size)
    startup = time.perf_counter() - started
    rows = []

    t0 = time.perf_counter()
    with JsonlWriter(out / "traj-local.jsonl") as writer:
        counts = asyncio.run(
            generate_trajectories(records, settings=settings, out=writer, workers=args.cpus, **TRAJ)
        )
    local_s = time.perf_counter() - t0
    job, items = generate_job(
        records, settings=settings, out_path=out / "traj-ray.jsonl", workers=args.cpus, **TRAJ
    )
    t0 = time.perf_counter()
    report, _ = run_job(executor, job, items)
    ray_s = time.perf_counter() - t0
    same = normalised(out / "traj-local.jsonl") == normalised(out / "traj-ray.jsonl")
    rows.append(("traj generate (path-guided)", counts.written, local_s, ray_s, report, same))
    rows.append(_bench_qa(ws, settings, executor, out, args.qa_n, args.cpus))
    rows.append(_bench_eval(ws, settings, records, executor, out, args.eval_items, args.cpus))
    ray.shutdown()

    print(f"Ray start-up (local instance, {args.cpus} CPUs): {startup:.1f} s")
    print("| stage | items | local s | ray s | shards | overhead/item | same results |")
    print("|---|---|---|---|---|---|---|")
    for stage, n, local_s, ray_s, report, same in rows:
        overhead = (ray_s - local_s) / n if n else float("nan")
        print(
            f"| {stage} | {n} | {local_s:.2f} | {ray_s:.2f} | {report.shards_run} "
            f"| {overhead * 1000:+.0f} ms | {same} |"
        )
    print(json.dumps({"startup_s": round(startup, 2)}))


def _bench_qa(ws: Workspace, settings: Settings, executor, out: Path, n: int, workers: int):  # type: ignore[no-untyped-def]
    """``qa generate --writer template`` locally and with the writer calls on Ray."""
    from medresearcher.executor import ShardReport
    from medresearcher.executor.stage_qa import generate_qa_sharded
    from medresearcher.kg import GraphStore
    from medresearcher.qa.batch import QABatchOptions, generate_qa
    from medresearcher.sampling import GraphView

    options = QABatchOptions(n=n, seed=11, workers=workers)
    seconds = {}
    with GraphStore(ws.kg_path) as store:
        view = GraphView.from_store(store)
        anchors = sorted(
            e.id for e in store.iter_entities() if e.id.startswith("ORPHA:") and e.attrs.get("rare")
        )
        for mode in ("local", "ray"):
            folder = out / f"qa-{mode}"
            t0 = time.perf_counter()
            with (
                JsonlWriter(folder / "qa.jsonl") as qa_out,
                JsonlWriter(folder / "rejected.jsonl", key="sample_id") as rejected,
            ):
                if mode == "local":
                    counts = asyncio.run(
                        generate_qa(store, view, anchors, options, out=qa_out, rejected=rejected)
                    )
                else:
                    _, rounds = asyncio.run(
                        generate_qa_sharded(
                            executor,
                            store,
                            view,
                            anchors,
                            options,
                            settings=settings,
                            out=qa_out,
                            rejected=rejected,
                        )
                    )
            seconds[mode] = time.perf_counter() - t0
    report = ShardReport(shards_run=sum(r.shards_run for r in rounds))
    local, remote = (out / f"qa-{m}" / "qa.jsonl" for m in ("local", "ray"))
    same = local.read_bytes() == remote.read_bytes()
    return (
        "qa generate (template)",
        counts.written,
        seconds["local"],
        seconds["ray"],
        report,
        same,
    )


def _bench_eval(ws, settings, records, executor, out, n_items, workers):  # type: ignore[no-untyped-def]
    """``eval run --policy path_guided`` (rules grading) locally and on Ray, 2 rollouts."""
    from medresearcher.agent import AgentLimits
    from medresearcher.evaluation.loaders import load_benchmark
    from medresearcher.evaluation.runner import path_guided_policies, results_writer, run_eval
    from medresearcher.executor.stage_eval import eval_job
    from medresearcher.tools import build_toolbox

    items = load_benchmark("qa", ws.qa_path)[:n_items]
    by_id = {r.id: r for r in records}
    limits = AgentLimits(max_turns=max(4 * r.hops + 8 for r in records))
    paths = {
        m: (out / f"eval-{m}.results.jsonl", out / f"eval-{m}.traj.jsonl") for m in ("local", "ray")
    }

    async def run_local() -> None:
        toolbox = build_toolbox(settings, ws)
        try:
            with (
                results_writer(paths["local"][0]) as results,
                JsonlWriter(paths["local"][1]) as trajectories,
            ):
                await run_eval(
                    items,
                    benchmark="qa",
                    results=results,
                    trajectories=trajectories,
                    policy_factory=path_guided_policies(by_id, settings),
                    toolbox=toolbox,
                    limits=limits,
                    rollouts=2,
                    workers=workers,
                    timeout_s=None,
                )
        finally:
            await toolbox.aclose()

    t0 = time.perf_counter()
    asyncio.run(run_local())
    local_s = time.perf_counter() - t0
    job, work = eval_job(
        items,
        settings=settings,
        benchmark="qa",
        results_path=paths["ray"][0],
        trajectories_path=paths["ray"][1],
        policy="path_guided",
        qa_file=ws.qa_path,
        limits=limits,
        rollouts=2,
        workers=workers,
    )
    t0 = time.perf_counter()
    report, _ = run_job(executor, job, work)
    ray_s = time.perf_counter() - t0
    same = all(
        normalised(paths["local"][k], key) == normalised(paths["ray"][k], key)
        for k, key in ((0, "trajectory_id"), (1, "id"))
    )
    return ("eval run (path-guided, 2 rollouts)", 2 * len(items), local_s, ray_s, report, same)


if __name__ == "__main__":
    main()
