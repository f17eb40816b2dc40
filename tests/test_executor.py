"""The executors of batch stages (issue 14 §3): shard split/merge, and local vs Ray.

Every comparison runs the stage's own local path and the Ray executor (one local Ray
instance with 2 CPUs for the module) on the tiny bundle, then compares the output files
sorted by id. ``SOURCE_DATE_EPOCH`` fixes ``created_at``; the only fields normalised are
wall-clock measurements, listed in :data:`WALL_CLOCK` — everything else must be identical.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medresearcher.config import Settings
from medresearcher.data import bundle_dir, iter_documents
from medresearcher.executor import LocalExecutor, OutputSpec, ShardJob, WorkItem, run_job
from medresearcher.executor.base import add_counts
from medresearcher.executor.shards import merge_rows, plan_shards, shard_name, split_ids
from medresearcher.kg import GraphStore
from medresearcher.kg.io import import_records
from medresearcher.qa.batch import QABatchOptions, generate_qa
from medresearcher.retrieval import build_index
from medresearcher.sampling import GraphView
from medresearcher.schema import QARecord
from medresearcher.workspace import JsonlWriter, Workspace, read_jsonl
from tests.fakes.openai_server import FakeOpenAIServer, Reply

EPOCH = "1700000000"

WALL_CLOCK = {
    # Trajectory: the loop's clock and each tool call's; the model's latency.
    ("stats", "elapsed_s"),
    ("stats", "tool_time_s"),
    ("stats", "calls", "*", "elapsed_s"),
    ("usage", "latency_s"),
    # EvalResult: the run's latency, and the usage copied from its trajectory.
    ("latency_s",),
}
"""Fields that measure wall-clock time: they differ between any two runs, executor or not."""


def _drop(data: Any, path: tuple[str, ...]) -> None:
    if not path or not isinstance(data, dict):
        return
    head, rest = path[0], path[1:]
    if head == "*":
        return
    if not rest:
        data.pop(head, None)
    elif rest[0] == "*":
        for element in data.get(head) or []:
            _drop(element, rest[1:])
    else:
        _drop(data.get(head), rest)


def normalised(path: Path, key: str = "id") -> list[str]:
    """The lines of ``path`` sorted by ``key``, wall-clock fields removed."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        for field in WALL_CLOCK:
            _drop(row, field)
    rows.sort(key=lambda row: str(row[key]))
    return [json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows]


# -- pure functions ---------------------------------------------------------------------------


def test_split_ids_sorts_and_cuts_and_refuses_duplicates() -> None:
    assert split_ids(["d", "b", "a", "c", "e"], 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert split_ids([], 3) == []
    with pytest.raises(Exception, match="occurs twice"):
        split_ids(["a", "b", "a"], 2)
    assert shard_name(["a", "b"]) == shard_name(["a", "b"]) != shard_name(["a", "c"])


def test_merge_rows_keeps_one_row_per_id_sorted_and_skips_known_ids() -> None:
    parts = [[{"id": "c", "v": 1}, {"id": "a", "v": 1}], [{"id": "b", "v": 2}, {"id": "c", "v": 2}]]
    merged = merge_rows(parts, "id", skip={"b"})
    assert [(r["id"], r["v"]) for r in merged] == [("a", 1), ("c", 1)]


def test_add_counts_sums_numbers_and_nested_counts() -> None:
    total = add_counts({}, {"written": 2, "terminations": {"answer": 2}, "failures": ["x"]})
    add_counts(total, {"written": 3, "terminations": {"answer": 1, "timeout": 1}, "failures": []})
    assert total == {"written": 5, "terminations": {"answer": 3, "timeout": 1}, "failures": ["x"]}


def test_filter_job_identity_ignores_workers_but_not_the_rules(tmp_path: Path) -> None:
    from medresearcher.executor.stage_traj import filter_job
    from medresearcher.synthesis.filters import RULES, FilterConfig

    def fingerprint(workers: int, config: FilterConfig, judge: str | None = None) -> str:
        job, _ = filter_job(
            [],
            settings=Settings(workspace=tmp_path),
            records={},
            config=config,
            passed_path=tmp_path / "run.filtered.jsonl",
            rejected_path=tmp_path / "run.rejected.jsonl",
            judge_endpoint=judge,
            workers=workers,
        )
        return job.fingerprint()

    config = FilterConfig()
    assert fingerprint(2, config) == fingerprint(8, config)  # concurrency: same verdicts
    assert fingerprint(2, config) != fingerprint(2, config, judge="judge")
    fewer = FilterConfig(rules=[name for name in RULES if name != "token_length"])
    assert fingerprint(2, config) != fingerprint(2, fewer)


def _echo_job(tmp: Path, context: dict[str, Any] | None = None) -> ShardJob:
    return ShardJob(
        stage="echo",
        worker="tests.test_executor:echo_shard",
        context=context or {"factor": 2},
        outputs={"out": OutputSpec(tmp / "out.jsonl")},
        workdir=tmp / "out.jsonl.shards",
    )


async def echo_shard(context: dict[str, Any], items: list[WorkItem], outputs: dict) -> dict:
    """A test worker: one row per item, its value times the context's factor."""
    for item in items:
        outputs["out"].write({"id": item.id, "value": item.payload * context["factor"]})
    return {"items": len(items)}


def test_plan_keeps_items_in_their_shards_and_a_new_context_starts_afresh(tmp_path: Path) -> None:
    job = _echo_job(tmp_path)
    items = [WorkItem(f"i{k}", k) for k in range(5)]
    first = plan_shards(job, items[:3], 2)
    grown = plan_shards(job, items, 2)
    assert all(grown.shards[name] == ids for name, ids in first.shards.items())
    assert grown.assigned() == {item.id for item in items}
    other = plan_shards(_echo_job(tmp_path, {"factor": 3}), items[:1], 2)
    assert list(other.shards.values()) == [["i0"]]


def test_local_executor_merges_shards_by_id_and_resumes_a_cut_shard(tmp_path: Path) -> None:
    job = _echo_job(tmp_path)
    items = [WorkItem(f"i{k:02d}", k) for k in range(7)]
    executor = LocalExecutor(shard_size=3)
    stop = RuntimeError("interrupted after one shard")

    def interrupt(name: str, size: int, counts: Any) -> None:
        raise stop

    with pytest.raises(RuntimeError, match="interrupted"):
        executor.map(job, items, on_shard=interrupt)
    finished = [p for p in job.workdir.glob("*/done.json")]
    assert len(finished) == 1
    # A shard killed mid-write: its marker gone, its last line cut.
    shard = finished[0].parent
    finished[0].unlink()
    text = (shard / "out.jsonl").read_text()
    (shard / "out.jsonl").write_text(text[: len(text) - 5])
    report, merged = run_job(executor, job, items)
    assert merged == {"out": 7} and report.shards_run == 3
    rows = list(read_jsonl(tmp_path / "out.jsonl"))
    assert rows == [{"id": f"i{k:02d}", "value": 2 * k} for k in range(7)]
    assert not job.workdir.exists()


# -- local vs Ray on the tiny workspace -------------------------------------------------------


@dataclass
class Tiny:
    ws: Workspace
    settings: Settings
    records: list[QARecord]
    anchors: list[str]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiny]:
    before = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    ws = Workspace(tmp_path_factory.mktemp("executor") / "workspace").ensure()
    with GraphStore(ws.kg_path) as store:
        import_records(store, bundle_dir("tiny"))
        anchors = sorted(
            e.id for e in store.iter_entities() if e.id.startswith("ORPHA:") and e.attrs.get("rare")
        )
        with JsonlWriter(ws.qa_path) as out:
            options = QABatchOptions(n=6, workers=4)
            asyncio.run(generate_qa(store, GraphView.from_store(store), anchors, options, out=out))
    build_index(iter_documents("tiny"), ws.index_dir)
    yield Tiny(ws, Settings(workspace=ws.root), list(read_jsonl(ws.qa_path, QARecord)), anchors)
    if before is None:
        os.environ.pop("SOURCE_DATE_EPOCH", None)
    else:
        os.environ["SOURCE_DATE_EPOCH"] = before


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    from medresearcher.executor.ray_executor import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield RayExecutor(shard_size=3)
    finally:
        ray.shutdown()


def invoke(app: Any, *args: str, config: Path, workspace: Path) -> Any:
    """A command of a sub-app in this process (so the module's Ray instance is the one the
    Ray executor joins), failing the test with the traceback when it fails."""
    import traceback

    from typer.testing import CliRunner

    from medresearcher.cli.state import CliState

    state = CliState(config_path=config, workspace=workspace)
    result = CliRunner().invoke(app, list(args), obj=state, env={"COLUMNS": "200"})
    if result.exit_code != 0:
        trace = "".join(traceback.format_exception(result.exception)) if result.exception else ""
        raise AssertionError(f"{args} failed ({result.exit_code}):\n{result.output}\n{trace}")
    return result


def _last_manifest(ws: Workspace, command: str) -> dict[str, Any]:
    from medresearcher.workspace import list_runs

    return [m for m in list_runs(ws) if m["command"] == command][-1]


def _closed_book_question(body: dict[str, Any]) -> str | None:
    system = str(body["messages"][0]["content"])
    return str(body["messages"][-1]["content"]).strip() if "no tools" in system else None


def _rewrite_reply(body: dict[str, Any]) -> Reply:
    """The fake rewriter: a thought named by the step, the step's calls or answer copied —
    except the answer of questions whose checksum is a multiple of 3 (rejected)."""
    user = str(body["messages"][1]["content"])
    step = int(re.search(r"Step (\d+) of \d+", user).group(1))  # type: ignore[union-attr]
    reply: dict[str, Any] = {"thought": f"The results so far make step {step} the next one."}
    answer = re.search(r'The answer \(copy it exactly into "answer"\): (.*)', user)
    if answer:
        question = user.splitlines()[0]
        wrong = zlib.crc32(question.encode()) % 3 == 0
        reply["answer"] = "not the answer" if wrong else answer.group(1).strip()
    else:
        calls = user.split("arguments as a JSON object):", 1)[1].split("Reply with", 1)[0]
        reply["tool_calls"] = [
            {"name": name, "arguments": json.loads(arguments)}
            for name, arguments in (
                line.strip().split(" ", 1) for line in calls.splitlines() if line.strip()
            )
        ]
    return Reply.text(json.dumps(reply, ensure_ascii=False))


@pytest.fixture(scope="module")
def fake_models(tiny: Tiny) -> Iterator[FakeOpenAIServer]:
    """One loopback model server for the module; replies depend on the request only (shards
    run in parallel, in other processes). The reference model ``ref`` knows the answers of
    the first half of the passed QA records (sorted by id), closed-book."""
    passed = sorted((r for r in tiny.records if r.passed), key=lambda r: r.id)
    known = {r.question.strip(): r.answer for r in passed[: len(passed) // 2 + 1]}

    def reply(body: dict[str, Any]) -> Reply:
        question = _closed_book_question(body)
        if question is None:
            return _rewrite_reply(body)
        return Reply.text(f"Answer: {known.get(question, 'I do not know')}")

    with FakeOpenAIServer(default=reply) as server:
        yield server


@pytest.fixture(scope="module")
def cli_config(tiny: Tiny, fake_models: FakeOpenAIServer) -> Path:
    """The config of the command-level comparisons: small shards, two model endpoints."""
    path = tiny.ws.root / "medresearcher.toml"
    endpoint = f'base_url = "{fake_models.base_url}"\nmax_retries = 0\ntimeout_s = 20\n'
    path.write_text(
        "[executor]\nshard_size = 3\n\n"
        f'[llm.ref]\nmodel = "ref-model"\n{endpoint}\n'
        f'[llm.rewriter]\nmodel = "rewriter-model"\n{endpoint}',
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
def test_qa_generate_command_on_ray_writes_the_local_files(
    tiny: Tiny, ray_executor: Any, cli_config: Path
) -> None:
    from medresearcher.cli.qa_cmd import app as qa_app

    folder = tiny.ws.root / "qa-cli"
    for mode in ("local", "ray"):
        args = ["--n", "4", "--seed", "3", "--workers", "2", "--executor", mode]
        out = ["--out", str(folder / f"{mode}.jsonl")]
        invoke(qa_app, "generate", *args, *out, config=cli_config, workspace=tiny.ws.root)
        manifest = _last_manifest(tiny.ws, "qa-generate-template")
        assert manifest["progress"] == {"done": 4, "total": 4, "label": "questions"}
    assert manifest["executor"]["kind"] == "ray" and manifest["executor"]["shards_run"] >= 2
    local = (folder / "local.jsonl").read_text()
    assert local.count("\n") == 4 and local == (folder / "ray.jsonl").read_text()


@pytest.mark.slow
def test_qa_calibrate_command_on_ray_matches_local(
    tiny: Tiny, ray_executor: Any, cli_config: Path, fake_models: FakeOpenAIServer
) -> None:
    from medresearcher.cli.qa_cmd import app as qa_app

    folder = tiny.ws.root / "calibrate"
    folder.mkdir()
    outputs = {}
    for mode in ("local", "ray"):
        source = shutil.copy(tiny.ws.qa_path, folder / f"{mode}.jsonl")
        before = len(fake_models.chat_requests)
        args = ["--file", str(source), "--panel", "ref", "--k", "2", "--max-level", "3"]
        invoke(
            qa_app,
            "calibrate",
            *args,
            "--executor",
            mode,
            config=cli_config,
            workspace=tiny.ws.root,
        )
        assert len(fake_models.chat_requests) > before  # the shard tasks reached the server
        outputs[mode] = folder / f"{mode}.calibrated.jsonl"
    rows = normalised(outputs["local"])
    assert rows == normalised(outputs["ray"])
    calibrated = [QARecord.model_validate_json(row) for row in rows]
    assert len(calibrated) == sum(r.passed for r in tiny.records) >= 3
    assert {r.difficulty.level for r in calibrated} >= {1, 2}  # some were found too easy
    manifest = _last_manifest(tiny.ws, "qa-calibrate")
    assert manifest["counts"]["calibrated"] == len(calibrated)
    assert manifest["progress"]["done"] == len(calibrated)


@pytest.mark.slow
def test_traj_rewrite_command_on_ray_matches_local(
    tiny: Tiny,
    ray_executor: Any,
    local_trajectories: Path,
    cli_config: Path,
    fake_models: FakeOpenAIServer,
) -> None:
    from medresearcher.cli.traj_cmd import app as traj_app

    folder = local_trajectories.parent
    for mode in ("local", "ray"):
        before = len(fake_models.chat_requests)
        args = ["--input", str(local_trajectories), "--endpoint", "rewriter", "--workers", "2"]
        invoke(
            traj_app,
            "rewrite",
            f"rw-{mode}",
            *args,
            "--executor",
            mode,
            config=cli_config,
            workspace=tiny.ws.root,
        )
        assert len(fake_models.chat_requests) > before
    for suffix in ("rewritten", "rewrite_rejected"):
        local, ray = folder / f"rw-local.{suffix}.jsonl", folder / f"rw-ray.{suffix}.jsonl"
        assert normalised(local) == normalised(ray), suffix  # both exist: some rejected
    manifest = _last_manifest(tiny.ws, "traj-rewrite")
    assert manifest["executor"]["kind"] == "ray" and manifest["executor"]["shards_run"] >= 2
    n = sum(1 for _ in read_jsonl(local_trajectories))
    assert manifest["progress"] == {"done": n, "total": n, "label": "rewriting"}


@pytest.mark.slow
def test_qa_generate_on_ray_writes_the_local_files(tiny: Tiny, ray_executor: Any) -> None:
    from medresearcher.executor.stage_qa import generate_qa_sharded

    options = QABatchOptions(n=5, seed=7, workers=2)
    folders = {}
    with GraphStore(tiny.ws.kg_path) as store:
        view = GraphView.from_store(store)
        for mode in ("local", "ray"):
            folder = folders[mode] = tiny.ws.root / f"qa-{mode}"
            with (
                JsonlWriter(folder / "qa.jsonl") as out,
                JsonlWriter(folder / "rejected.jsonl", key="sample_id") as rejected,
                JsonlWriter(folder / "samples.jsonl") as samples,
            ):
                kwargs = {"out": out, "rejected": rejected, "samples": samples}
                if mode == "local":
                    asyncio.run(generate_qa(store, view, tiny.anchors, options, **kwargs))
                else:
                    counts, rounds = asyncio.run(
                        generate_qa_sharded(
                            ray_executor,
                            store,
                            view,
                            tiny.anchors,
                            options,
                            settings=tiny.settings,
                            **kwargs,
                        )
                    )
                    assert counts.written == 5 and rounds and rounds[0].shards_run >= 2
    for name in ("qa.jsonl", "samples.jsonl"):
        local = (folders["local"] / name).read_text()
        assert local and local == (folders["ray"] / name).read_text(), name
    assert not (folders["ray"] / "qa.jsonl.shards").exists()


def _generate_local(tiny: Tiny, path: Path, **options: Any) -> None:
    from medresearcher.synthesis.generate import generate_trajectories

    with JsonlWriter(path) as out:
        asyncio.run(generate_trajectories(tiny.records, settings=tiny.settings, out=out, **options))


TRAJ_OPTIONS = {
    "policy": "path_guided",
    "rollouts": 2,
    "alpha": 0.5,
    "seed": 1,
    "augment_rate": 0.3,
}


@pytest.fixture(scope="module")
def local_trajectories(tiny: Tiny) -> Path:
    path = tiny.ws.trajectories_path("local")
    _generate_local(tiny, path, **TRAJ_OPTIONS)
    return path


@pytest.mark.slow
def test_traj_generate_on_ray_matches_local_and_resumes_after_a_kill(
    tiny: Tiny, ray_executor: Any, local_trajectories: Path
) -> None:
    from medresearcher.executor.stage_traj import generate_job

    path = tiny.ws.trajectories_path("ray")
    job, items = generate_job(tiny.records, settings=tiny.settings, out_path=path, **TRAJ_OPTIONS)
    assert len(items) == 2 * sum(r.passed for r in tiny.records) > 3

    def interrupt(name: str, size: int, counts: Any) -> None:
        raise KeyboardInterrupt  # the driver killed after its first finished shard

    with pytest.raises(KeyboardInterrupt):
        ray_executor.map(job, items, on_shard=interrupt)
    assert not path.exists()
    # Whatever the cancelled tasks left: cut the last line of an unfinished shard file.
    unfinished = [
        d / "trajectories.jsonl"
        for d in job.workdir.iterdir()
        if d.is_dir() and not (d / "done.json").exists() and (d / "trajectories.jsonl").exists()
    ]
    for file in unfinished[:1]:
        text = file.read_text()
        file.write_text(text[: max(0, len(text) - 10)])
    job, items = generate_job(tiny.records, settings=tiny.settings, out_path=path, **TRAJ_OPTIONS)
    report, _ = run_job(ray_executor, job, items)
    assert report.shards_reused >= 1
    assert normalised(path) == normalised(local_trajectories)
    # Run again: nothing pending, nothing written, the file unchanged.
    job, items = generate_job(tiny.records, settings=tiny.settings, out_path=path, **TRAJ_OPTIONS)
    assert items == [] and run_job(ray_executor, job, items)[1] == {"trajectories": 0}


@pytest.mark.slow
def test_traj_filter_command_on_ray_matches_local(
    tiny: Tiny, ray_executor: Any, local_trajectories: Path, cli_config: Path
) -> None:
    from medresearcher.cli.traj_cmd import app as traj_app

    folder = local_trajectories.parent
    shutil.copy(local_trajectories, folder / "local-copy.jsonl")
    invoke(traj_app, "filter", "local", config=cli_config, workspace=tiny.ws.root)
    invoke(
        traj_app,
        "filter",
        "local-copy",
        "--executor",
        "ray",
        config=cli_config,
        workspace=tiny.ws.root,
    )
    for suffix in ("filtered", "rejected"):
        local, ray = folder / f"local.{suffix}.jsonl", folder / f"local-copy.{suffix}.jsonl"
        assert local.exists() == ray.exists()
        if local.exists():
            assert normalised(local) == normalised(ray)
    assert (folder / "local.filtered.jsonl").exists() or (folder / "local.rejected.jsonl").exists()
    manifest = _last_manifest(tiny.ws, "traj-filter")
    assert manifest["executor"]["kind"] == "ray" and manifest["executor"]["shards_run"] >= 2
    n = sum(1 for _ in read_jsonl(local_trajectories))
    assert manifest["progress"] == {"done": n, "total": n, "label": "filtering"}


@pytest.mark.slow
def test_eval_run_on_ray_matches_local(tiny: Tiny, ray_executor: Any) -> None:
    from medresearcher.agent import AgentLimits
    from medresearcher.evaluation.loaders import load_benchmark
    from medresearcher.evaluation.runner import path_guided_policies, results_writer, run_eval
    from medresearcher.executor.stage_eval import eval_job
    from medresearcher.tools import build_toolbox

    items = load_benchmark("qa", tiny.ws.qa_path)[:4]
    records = {r.id: r for r in tiny.records}
    limits = AgentLimits(max_turns=max(4 * r.hops + 8 for r in tiny.records))
    local = tiny.ws.eval_dir("local") / "results.jsonl"

    async def run_local() -> None:
        toolbox = build_toolbox(tiny.settings, tiny.ws)
        try:
            with (
                results_writer(local) as results,
                JsonlWriter(tiny.ws.trajectories_path("eval-local")) as trajectories,
            ):
                await run_eval(
                    items,
                    benchmark="qa",
                    results=results,
                    trajectories=trajectories,
                    policy_factory=path_guided_policies(records, tiny.settings),
                    toolbox=toolbox,
                    limits=limits,
                    rollouts=2,
                    workers=2,
                    timeout_s=None,
                )
        finally:
            await toolbox.aclose()

    asyncio.run(run_local())
    ray_results = tiny.ws.eval_dir("ray") / "results.jsonl"
    ray_trajectories = tiny.ws.trajectories_path("eval-ray")
    job, work = eval_job(
        items,
        settings=tiny.settings,
        benchmark="qa",
        results_path=ray_results,
        trajectories_path=ray_trajectories,
        policy="path_guided",
        qa_file=tiny.ws.qa_path,
        limits=limits,
        rollouts=2,
        workers=2,
    )
    assert len(work) == 4
    run_job(ray_executor, job, work)
    assert normalised(ray_results, "trajectory_id") == normalised(local, "trajectory_id")
    local_trajectories = tiny.ws.trajectories_path("eval-local")
    assert normalised(ray_trajectories) == normalised(local_trajectories)


@pytest.mark.slow
def test_eval_run_command_records_the_same_manifest_on_ray_and_local(
    tiny: Tiny, ray_executor: Any, cli_config: Path
) -> None:
    from medresearcher.cli.eval_cmd import app as eval_app

    manifests = {}
    for mode in ("local", "ray"):
        args = ["--benchmark", "qa", "--file", str(tiny.ws.qa_path), "--policy", "path_guided"]
        options = ["--limit", "2", "--rollouts", "1", "--workers", "2", "--run", f"m-{mode}"]
        invoke(
            eval_app,
            "run",
            *args,
            *options,
            "--executor",
            mode,
            config=cli_config,
            workspace=tiny.ws.root,
        )
        manifests[mode] = _last_manifest(tiny.ws, "eval-run")
    local, ray = manifests["local"], manifests["ray"]
    assert ray["executor"]["kind"] == "ray" and "executor" not in local
    assert set(local["eval"]) == set(ray["eval"]) >= {"run", "policy", "decontamination"}
    assert ray["eval"]["run"] == "m-ray"
    per_run = {"run", "results", "trajectories"}
    assert {k: v for k, v in local["eval"].items() if k not in per_run} == {
        k: v for k, v in ray["eval"].items() if k not in per_run
    }
    assert local["counts"] == ray["counts"] and local["counts"]["written"] == 2


def _baseline_files(folder: Path, n_files: int = 3, per_file: int = 12) -> list[Path]:
    """Small PubMed baseline files made of the tiny corpus's documents."""
    from xml.sax.saxutils import escape

    docs = list(iter_documents("tiny"))[: n_files * per_file]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_files):
        articles = []
        for j, doc in enumerate(docs[k * per_file : (k + 1) * per_file]):
            pmid = 1000 + k * per_file + j
            articles.append(
                f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article>"
                f"<ArticleTitle>{escape(doc.title)}</ArticleTitle><Abstract><AbstractText>"
                f"{escape(doc.text)}</AbstractText></Abstract></Article></MedlineCitation>"
                "</PubmedArticle>"
            )
        path = folder / f"pubmed25n{k + 1:04d}.xml"
        path.write_text(f"<PubmedArticleSet>{''.join(articles)}</PubmedArticleSet>\n")
        paths.append(path)
    return paths


@pytest.mark.slow
def test_rarity_mining_over_baseline_files_on_ray_matches_local(
    tiny: Tiny, ray_executor: Any
) -> None:
    from medresearcher.executor.stage_rarity import count_files, mentions_job, report_from_counts
    from medresearcher.kg.rarity import mine_rare_entities, write_seeds
    from medresearcher.sources.pubmed_xml import iter_pubmed_xml

    files = _baseline_files(tiny.ws.root / "baseline")
    with GraphStore(tiny.ws.kg_path) as store:
        entities = list(store.iter_entities())
    local, ray = tiny.ws.root / "local.mentions.jsonl", tiny.ws.root / "ray.mentions.jsonl"
    assert count_files(files, entities, local) == 3
    job, items = mentions_job(files, settings=tiny.settings, counts_path=ray)
    run_job(ray_executor, job, items)
    assert normalised(local, "file") == normalised(ray, "file")
    tau = 1e-2
    reports = [report_from_counts(p, files, entities, tau=tau) for p in (local, ray)]
    whole = mine_rare_entities(
        (doc for f in files for doc in iter_pubmed_xml(f)), entities, tau=tau
    )
    assert reports[0].candidates == reports[1].candidates == whole.candidates
    assert whole.candidates and reports[1].tokens == whole.tokens
    seeds = [tiny.ws.root / f"seeds-{name}.jsonl" for name in ("local", "ray")]
    for path, report in zip(seeds, reports, strict=True):
        write_seeds(path, report)
    assert seeds[0].read_bytes() == seeds[1].read_bytes()
    shutil.rmtree(tiny.ws.root / "baseline")


@pytest.mark.slow
def test_kg_mine_rare_over_baseline_files_on_ray_matches_local(
    tiny: Tiny, ray_executor: Any, cli_config: Path
) -> None:
    from medresearcher.cli.kg_cmd import app as kg_app

    files = _baseline_files(tiny.ws.root / "baseline-cli")
    baseline = [arg for path in files for arg in ("--baseline", str(path))]
    for mode in ("local", "ray"):
        invoke(
            kg_app,
            "mine-rare",
            *baseline,
            "--tau",
            "1e-2",
            "--out",
            f"seeds-cli-{mode}",
            "--executor",
            mode,
            config=cli_config,
            workspace=tiny.ws.root,
        )
    seeds = [tiny.ws.root / f"seeds-cli-{mode}.jsonl" for mode in ("local", "ray")]
    assert seeds[0].read_text() and seeds[0].read_bytes() == seeds[1].read_bytes()
    mentions = [tiny.ws.root / f"seeds-cli-{mode}.mentions.jsonl" for mode in ("local", "ray")]
    assert normalised(mentions[0], "file") == normalised(mentions[1], "file")
    assert len(normalised(mentions[1], "file")) == 3
