"""``medresearcher qa``: multi-hop questions from sampled chains (paper §3.1.2–3.1.3)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from medresearcher.cli.executor_opts import ADDRESS, EXECUTOR, executor_kind
from medresearcher.cli.sample_cmd import STRATEGY_HELP, _anchors, chain_text
from medresearcher.cli.state import CliState, console, state_of
from medresearcher.errors import InputError
from medresearcher.schema import QARecord, Sample
from medresearcher.workspace import JsonlWriter, Run, progress_bar, read_jsonl

app = typer.Typer(
    help="Synthesise, check, calibrate and inspect multi-hop questions.", no_args_is_help=True
)


def qa_file(state: CliState, file: Path | None) -> Path:
    path = file or state.ws.qa_path
    if not path.is_file():
        raise InputError(f"{path} does not exist: run `medresearcher qa generate` first")
    return path


@app.command("generate")
def generate(
    ctx: typer.Context,
    writer: str = typer.Option("template", "--writer", help="template (offline) or llm."),
    n: int = typer.Option(100, "--n", help="Questions wanted in the output (resumable)."),
    strategy: str = typer.Option("mixed", "--strategy", help=STRATEGY_HELP),
    max_hops: int = typer.Option(4, "--max-hops", help="Chain length asked of sampling."),
    paradigm: str | None = typer.Option(
        None, "--paradigm", help="identify, attribute, count or intersect (default: mixed)."
    ),
    level: int = typer.Option(1, "--level", min=1, help="Obfuscation / complexity level."),
    language: str = typer.Option("en", "--language", help="en or zh."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same questions."),
    workers: int = typer.Option(16, "--workers", min=1, help="Concurrent writer calls."),
    endpoint: str = typer.Option("writer", "--endpoint", help="\\[llm.*] endpoint (llm writer)."),
    qps: float | None = typer.Option(None, "--qps", help="Override the endpoint's rate limit."),
    anchors: Path | None = typer.Option(
        None, "--anchors", exists=True, dir_okay=False, help="Anchor ids or seeds JSONL."
    ),
    balance: bool = typer.Option(
        True,
        "--balance-specialties/--no-balance-specialties",
        help="Start with a few anchors of every specialty, so small ones are not left out.",
    ),
    out: Path | None = typer.Option(None, "--out", help="Default: <workspace>/qa.jsonl."),
    executor: str | None = EXECUTOR,
    ray_address: str | None = ADDRESS,
) -> None:
    """Sample chains around rare anchors and write N checked questions (append-only)."""
    from medresearcher.kg import graph_location, open_graph_store
    from medresearcher.qa.batch import QABatchOptions, sampler_of
    from medresearcher.sampling import GraphView

    if writer not in ("template", "llm"):
        raise typer.BadParameter("--writer is template or llm")
    if language not in ("en", "zh"):
        raise typer.BadParameter("--language is en or zh")
    if paradigm not in (None, "identify", "attribute", "count", "intersect"):
        raise typer.BadParameter("--paradigm is identify, attribute, count or intersect")
    sampler_of(strategy)  # fail on an unknown strategy before any work
    state = state_of(ctx)
    settings = state.settings
    if writer == "llm":
        endpoint_settings = settings.endpoint(endpoint)
        if qps is not None:
            endpoint_settings.qps = qps
    ws = state.ws.ensure()
    options = QABatchOptions(
        n=n,
        strategy=strategy,
        max_hops=max_hops,
        seed=seed,
        writer=writer,  # type: ignore[arg-type]
        endpoint=endpoint,
        language=language,  # type: ignore[arg-type]
        paradigm=paradigm,
        level=level,
        min_hops=settings.qa.min_hops,
        near_duplicate_threshold=settings.qa.near_duplicate_threshold,
        workers=workers,
        balance_specialties=balance,
    )
    kind = executor_kind(settings, executor)
    path = out or ws.qa_path
    rejected_path = path.with_name(path.stem + ".rejected.jsonl")
    with open_graph_store(settings) as store:
        view = GraphView.from_store(store)
        if not len(view):
            raise InputError(
                f"{graph_location(state.settings)} is empty: "
                "run `medresearcher kg import --demo` first"
            )
        pool = _anchors(anchors or ws.root / "seeds.jsonl", store)
        with (
            Run(ws, f"qa-generate-{writer}", settings) as run,
            JsonlWriter(path) as qa_out,
            JsonlWriter(rejected_path, key="sample_id") as rejected,
            JsonlWriter(ws.samples_path) as samples,
            progress_bar(console) as progress,
        ):
            task = progress.add_task(f"questions ({writer})", total=n)
            done = [min(len(qa_out), n)]
            progress.update(task, completed=done[0])
            run.progress(done[0], n, label="questions")

            def advance() -> None:
                progress.advance(task)
                done[0] += 1
                run.progress(done[0], n, label="questions")

            writers = (qa_out, rejected, samples)
            if kind == "ray":
                counts = _generate_sharded(
                    state, store, view, pool, options, writers, advance, run, kind, ray_address
                )
            else:
                counts = asyncio.run(_generate(state, store, view, pool, options, writers, advance))
            for key, value in counts.as_dict().items():
                if isinstance(value, int):
                    run.count(key, value)
    failed = ", ".join(f"{k} {v}" for k, v in counts.failed_checks.most_common()) or "none"
    console.print(
        f"{counts.written} new questions in {path} ({counts.already_done} already there; "
        f"{counts.passed} passed every check; {counts.near_duplicates} near duplicates "
        f"dropped; {counts.rejected} rejected → {rejected_path.name}; no sample for "
        f"{counts.no_sample} anchors)\nfailed checks: {failed}"
    )
    if counts.unsupported_paradigm:
        console.print(
            f"[dim]{counts.unsupported_paradigm} samples skipped: their end has nothing a "
            f"{paradigm} question can ask for[/]"
        )


async def _generate(state, store, view, pool, options, writers, advance):  # type: ignore[no-untyped-def]
    from medresearcher.qa.batch import generate_qa

    qa_out, rejected, samples = writers
    kwargs = {"out": qa_out, "rejected": rejected, "samples": samples, "on_item": advance}
    if options.writer == "template":
        return await generate_qa(store, view, pool, options, **kwargs)
    from medresearcher.llm import LLMGateway

    async with LLMGateway(state.settings) as gateway:
        return await generate_qa(store, view, pool, options, gateway=gateway, **kwargs)


def _generate_sharded(state, store, view, pool, options, writers, advance, run, kind, address):  # type: ignore[no-untyped-def]
    """``--executor ray``: the writer calls in shard tasks; checks and order stay here."""
    from medresearcher.cli.executor_opts import open_executor, record
    from medresearcher.executor.stage_qa import generate_qa_sharded

    qa_out, rejected, samples = writers
    with open_executor(state.settings, kind, address) as executor:
        counts, rounds = asyncio.run(
            generate_qa_sharded(
                executor,
                store,
                view,
                pool,
                options,
                settings=state.settings,
                out=qa_out,
                rejected=rejected,
                samples=samples,
                on_item=advance,
            )
        )
    record(run, kind, rounds)
    return counts


@app.command("show")
def show(
    ctx: typer.Context,
    qa_id: str = typer.Argument(..., help="A question id from qa.jsonl."),
    file: Path | None = typer.Option(None, "--file", help="Default: <workspace>/qa.jsonl."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
) -> None:
    """One question with its answer, chain, cheat sheet, checks and difficulty."""
    from medresearcher.kg import open_graph_store

    state = state_of(ctx)
    path = qa_file(state, file)
    record = next((r for r in read_jsonl(path, QARecord) if r.id == qa_id), None)
    if record is None:
        raise InputError(f"{path}: no question {qa_id!r}")
    if as_json:
        console.print_json(record.model_dump_json())
        return
    console.print(f"[bold]{escape(record.question)}[/]")
    aliases = ", ".join(record.answer_aliases[:6])
    console.print(
        f"answer: [green]{escape(record.answer)}[/]"
        + (f"  (also: {escape(aliases)})" if aliases else "")
    )
    with open_graph_store(state.settings) as store:
        sample = Sample(
            id=record.sample_id,
            strategy=record.strategy,
            seed=0,
            anchor=record.chain[0],
            nodes=record.chain[::2],
            edges=[],
            chain=record.chain,
            hops=record.hops,
        )
        console.print(f"chain: {chain_text(sample, store)}")
    console.print("cheat sheet:")
    for number, step in enumerate(record.cheat_sheet, start=1):
        console.print(f"  {number}. {escape(step)}")
    masked = "  ".join("(" + ", ".join(t) + ")" for t in record.masked_chain)
    console.print(f"masked chain: {escape(masked)}")
    table = Table("check", "result", "detail", title="checks", title_justify="left")
    for name, check in record.checks.items():
        mark = "[green]pass[/]" if check.passed else "[red]fail[/]"
        table.add_row(name, mark, escape(check.detail or ""))
    console.print(table)
    console.print(
        f"[dim]{record.paradigm}, {record.hops} hops, level {record.difficulty.level}, "
        f"specialties: {', '.join(record.specialties) or '-'}, language {record.language}, "
        f"writer {record.provenance.get('writer')}, strategy {record.strategy}[/]"
    )


@app.command("stats")
def stats(
    ctx: typer.Context,
    file: Path | None = typer.Option(None, "--file", help="Default: <workspace>/qa.jsonl."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Counts by hops, paradigm, specialty and language, and which checks fail."""
    records = list(read_jsonl(qa_file(state_of(ctx), file), QARecord))
    summary = qa_summary(records)
    if as_json:
        console.print_json(json.dumps(summary))
        return
    console.print(
        f"{summary['questions']} questions, {summary['passed_all_checks']} pass every check"
    )
    for title in ("hops", "paradigm", "specialty", "language", "writer", "failed_checks"):
        table = Table(title, "questions", title=title.replace("_", " "), title_justify="left")
        for key, count in summary[title].items():
            table.add_row(str(key), str(count))
        console.print(table)


def qa_summary(records: list[QARecord]) -> dict:  # type: ignore[type-arg]
    """The figures ``qa stats`` prints, as plain data."""
    specialties: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for record in records:
        specialties.update(record.specialties or ["(untagged)"])
        failed.update(name for name, check in record.checks.items() if not check.passed)
    return {
        "questions": len(records),
        "passed_all_checks": sum(r.passed for r in records),
        "hops": dict(sorted(Counter(r.hops for r in records).items())),
        "paradigm": dict(Counter(r.paradigm for r in records).most_common()),
        "specialty": dict(specialties.most_common()),
        "language": dict(Counter(r.language for r in records).most_common()),
        "writer": dict(Counter(str(r.provenance.get("writer")) for r in records).most_common()),
        "failed_checks": dict(failed.most_common()),
    }


# Registered last: qa_quality_cmd imports qa_file and qa_summary from this module.
from medresearcher.cli import qa_quality_cmd  # noqa: E402

app.command("check")(qa_quality_cmd.check)
app.command("calibrate")(qa_quality_cmd.calibrate)
app.command("tag")(qa_quality_cmd.tag)
