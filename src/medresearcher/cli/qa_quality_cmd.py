"""``medresearcher qa check | calibrate | tag``: quality passes over written questions.

Each reads a QA file and writes a new one beside it (``<name>.checked.jsonl``,
``.calibrated.jsonl``, ``.tagged.jsonl``): outputs stay append-only and resumable.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import typer
from rich.table import Table

from medresearcher.cli.executor_opts import ADDRESS, EXECUTOR, executor_kind
from medresearcher.cli.qa_cmd import qa_file, qa_summary
from medresearcher.cli.state import CliState, console, state_of
from medresearcher.errors import InputError
from medresearcher.schema import QARecord, Sample
from medresearcher.workspace import JsonlWriter, Run, progress_bar, read_jsonl


def _sample_index(state: CliState) -> dict[str, Sample]:
    path = state.ws.samples_path
    return {s.id: s for s in read_jsonl(path, Sample)} if path.is_file() else {}


def check(
    ctx: typer.Context,
    file: Path | None = typer.Option(None, "--file", help="Default: <workspace>/qa.jsonl."),
    closed_book: str | None = typer.Option(
        None,
        "--closed-book",
        help="\\[llm.*] endpoint asked without tools k times; above 50 % the question is "
        "flagged too easy.",
    ),
    k: int | None = typer.Option(None, "--k", min=1, help="Closed-book answers per question."),
) -> None:
    """Run every check again (after edits, or on model-written files) → <name>.checked.jsonl."""
    from medresearcher.kg import open_graph_store
    from medresearcher.qa.batch import check_record

    state = state_of(ctx)
    settings = state.settings
    path = qa_file(state, file)
    if closed_book:
        settings.endpoint(closed_book)
    records = list(read_jsonl(path, QARecord))
    samples = _sample_index(state)
    out_path = path.with_name(path.stem + ".checked.jsonl")
    with (
        open_graph_store(state.settings) as store,
        Run(state.ws, "qa-check", settings) as run,
        JsonlWriter(out_path) as out,
    ):
        checked = [
            check_record(r, store, sample=samples.get(r.sample_id), min_hops=settings.qa.min_hops)
            for r in records
            if r.id not in out
        ]
        if closed_book:
            checked = asyncio.run(
                _closed_book(state, checked, closed_book, k or settings.qa.closed_book_k)
            )
        for record in checked:
            out.write(record)
        run.count("checked", len(checked))
    summary = qa_summary(list(read_jsonl(out_path, QARecord)))
    console.print(
        f"{len(checked)} questions checked → {out_path} "
        f"({summary['passed_all_checks']}/{summary['questions']} pass every check)"
    )
    table = Table("check", "failed", title="failures", title_justify="left")
    for name, count in summary["failed_checks"].items():
        table.add_row(name, str(count))
    console.print(table)


async def _closed_book(
    state: CliState, records: list[QARecord], endpoint: str, k: int
) -> list[QARecord]:
    from medresearcher.llm import LLMGateway
    from medresearcher.qa.calibration import closed_book_check

    threshold = state.settings.qa.too_easy_above
    async with LLMGateway(state.settings) as gateway:
        results = await asyncio.gather(
            *(
                closed_book_check(gateway, endpoint, r, k=k, too_easy_above=threshold)
                for r in records
            )
        )
    return [
        r.model_copy(update={"checks": {**r.checks, "closed_book": result}})
        for r, result in zip(records, results, strict=True)
    ]


def calibrate(
    ctx: typer.Context,
    file: Path | None = typer.Option(None, "--file", help="Default: <workspace>/qa.jsonl."),
    panel: str | None = typer.Option(
        None, "--panel", help="Comma-separated \\[llm.*] endpoints (default: qa.calibration_panel)."
    ),
    k: int | None = typer.Option(None, "--k", min=1, help="Answers per model and question."),
    max_level: int | None = typer.Option(None, "--max-level", min=1),
    executor: str | None = EXECUTOR,
    ray_address: str | None = ADDRESS,
) -> None:
    """Regenerate questions a reference model answers closed-book (> 50 %) at level + 1."""
    state = state_of(ctx)
    settings = state.settings
    names = (
        [p.strip() for p in panel.split(",") if p.strip()]
        if panel
        else settings.qa.calibration_panel
    )
    if not names:
        raise InputError(
            "calibration needs a panel of reference models: pass --panel a,b or set "
            "[qa] calibration_panel = [...] in medresearcher.toml (nothing is faked offline)"
        )
    for name in names:
        settings.endpoint(name)
    path = qa_file(state, file)
    out_path = path.with_name(path.stem + ".calibrated.jsonl")
    records = [r for r in read_jsonl(path, QARecord) if r.passed]
    k = k or settings.qa.closed_book_k
    max_level = max_level or settings.qa.max_level
    kind = executor_kind(settings, executor)
    if kind == "ray":
        levels = _calibrate_sharded(
            state, records, out_path, names, k, max_level, kind, ray_address
        )
    else:
        levels = _calibrate_local(state, records, out_path, names, k, max_level)
    spread = ", ".join(f"level {lvl}: {n}" for lvl, n in sorted(Counter(levels).items()))
    console.print(f"{len(levels)} questions calibrated → {out_path} ({spread or 'none'})")


def _calibrate_local(  # type: ignore[no-untyped-def]
    state: CliState, records: list[QARecord], out_path: Path, panel, k: int, max_level: int
) -> list[int]:
    """``--executor local``: each record in turn, in this process."""
    from medresearcher.executor.stage_quality import calibrated_from
    from medresearcher.kg import open_graph_store

    settings = state.settings
    done = calibrated_from(out_path)
    todo = [r for r in records if r.id not in done]
    with (
        open_graph_store(settings) as store,
        Run(state.ws, "qa-calibrate", settings) as run,
        JsonlWriter(out_path) as out,
        progress_bar(console) as progress,
    ):
        task = progress.add_task("calibrating", total=len(todo))

        def write(record: QARecord) -> None:
            out.write(record)
            progress.advance(task)
            run.count("calibrated")
            run.progress(run.manifest["counts"]["calibrated"], len(todo), label="calibrating")

        levels = asyncio.run(_calibrate(state, store, todo, panel, k, max_level, write, run))
    return levels


def _calibrate_sharded(  # type: ignore[no-untyped-def]
    state: CliState,
    records: list[QARecord],
    out_path: Path,
    panel,
    k: int,
    max_level: int,
    kind: str,
    address: str | None,
) -> list[int]:
    """``--executor ray``: the records not calibrated yet as shards, merged by id."""
    from medresearcher.cli.executor_opts import run_sharded
    from medresearcher.executor.stage_quality import calibrate_job

    job, items = calibrate_job(
        records, settings=state.settings, out_path=out_path, panel=panel, k=k, max_level=max_level
    )
    with run_sharded(
        state,
        "qa-calibrate",
        job,
        items,
        kind=kind,
        address=address,
        task=f"calibrating ({kind})",
        label="calibrating",
    ) as (run, report):
        run.count("calibrated", int(report.counts.get("calibrated", 0)))
    levels = report.counts.get("levels") or {}
    return [int(level) for level, n in sorted(levels.items()) for _ in range(int(n))]


async def _calibrate(state, store, records, panel, k, max_level, write, run):  # type: ignore[no-untyped-def]
    from medresearcher.llm import LLMGateway
    from medresearcher.qa.calibration import calibrate_records
    from medresearcher.sampling import GraphView

    settings = state.settings
    async with LLMGateway(settings) as gateway:
        levels = await calibrate_records(
            records,
            gateway=gateway,
            store=store,
            view=GraphView.from_store(store),
            panel=panel,
            k=k,
            too_easy_above=settings.qa.too_easy_above,
            max_level=max_level,
            min_hops=settings.qa.min_hops,
            write=write,
        )
        run.record_usage(gateway.usage_report())
    return levels


def tag(
    ctx: typer.Context,
    file: Path | None = typer.Option(None, "--file", help="Default: <workspace>/qa.jsonl."),
    write: bool = typer.Option(False, "--write", help="Write <name>.tagged.jsonl."),
) -> None:
    """Tag specialties from the KG's classification of each chain's diseases (offline)."""
    from medresearcher.kg import open_graph_store
    from medresearcher.qa.specialties import SPECIALTIES, specialties_of

    state = state_of(ctx)
    path = qa_file(state, file)
    records = list(read_jsonl(path, QARecord))
    counts: Counter[str] = Counter()
    tagged = []
    with open_graph_store(state.settings) as store:
        for record in records:
            # Both lines of an intersect question count: its placeholders name them all.
            ids = dict.fromkeys([*record.chain[::2], *record.placeholders.values()])
            found = specialties_of(ids, store)
            counts.update(found or ["(none)"])
            tagged.append(record.model_copy(update={"specialties": found}))
    table = Table("specialty", "questions", title="specialties", title_justify="left")
    for name in [*SPECIALTIES, "(none)"]:
        table.add_row(name, str(counts.get(name, 0)))
    console.print(table)
    if write:
        out_path = path.with_name(path.stem + ".tagged.jsonl")
        with JsonlWriter(out_path) as out:
            for record in tagged:
                out.write(record)
        console.print(f"{len(tagged)} tagged questions → {out_path}")
