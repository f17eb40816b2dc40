"""``medresearcher kg``: the knowledge graph in the workspace (``kg.sqlite``)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from medresearcher.cli.executor_opts import ADDRESS, EXECUTOR, executor_kind
from medresearcher.cli.state import console, state_of
from medresearcher.data import bundle_dir
from medresearcher.errors import InputError
from medresearcher.workspace import Run

if TYPE_CHECKING:  # the graph store imports networkx: only when a command runs
    from medresearcher.kg import GraphStore

app = typer.Typer(help="Build, inspect and export the knowledge graph.", no_args_is_help=True)


def open_store(ctx: typer.Context) -> GraphStore:
    from medresearcher.kg import open_graph_store

    return open_graph_store(state_of(ctx).settings)


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Path | None = typer.Argument(
        None,
        help="A folder with entities.jsonl[.gz] and "
        "relations.jsonl[.gz] (a bundle or a kg export).",
    ),
    demo: bool = typer.Option(False, "--demo", help="Import the embedded demo bundle."),
    bundle: str | None = typer.Option(
        None, "--bundle", help="Import an embedded bundle by name: demo or tiny."
    ),
) -> None:
    """Load entities and relations into <workspace>/kg.sqlite (importing twice is harmless)."""
    from medresearcher.kg import graph_location
    from medresearcher.kg.io import import_records

    if path is None and not demo and bundle is None:
        raise typer.BadParameter("give a PATH, --demo or --bundle NAME")
    folder = path if path is not None else bundle_dir(bundle or "demo")
    state = state_of(ctx)
    ws = state.ws.ensure()
    with Run(ws, "kg-import", state.settings) as run, open_store(ctx) as store:
        counts = import_records(store, folder)
        stats = store.stats()
        for name, value in counts.items():
            run.count(f"{name}_read", value)
    console.print(
        f"read {counts['entities']:,} entities and {counts['relations']:,} relations "
        f"from {folder}; the graph now holds {stats['entities']:,} entities and "
        f"{stats['relations']:,} relations ({graph_location(state.settings)})"
    )


@app.command("stats")
def stats(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Entity counts by type and relation counts by predicate and source."""
    with open_store(ctx) as store:
        figures = store.stats()
    if as_json:
        console.print_json(json.dumps(figures))
        return
    console.print(f"[bold]{figures['entities']:,} entities, {figures['relations']:,} relations[/]")
    grid = Table.grid(padding=(0, 2))
    grid.add_row(
        *(
            _counts(title, figures[key])
            for title, key in (
                ("entities by type", "entities_by_type"),
                ("relations by predicate", "relations_by_predicate"),
                ("assertions by source", "relation_assertions_by_source"),
            )
        )
    )
    console.print(grid)


@app.command("show")
def show(
    ctx: typer.Context,
    entity_id: str = typer.Argument(
        ..., help="An id (ORPHA:324), an xref (OMIM:301500) or a name."
    ),
    limit: int = typer.Option(12, help="Neighbours shown per predicate (0: all)."),
) -> None:
    """An entity, its attributes, and its neighbours by predicate with frequencies and sources."""
    with open_store(ctx) as store:
        resolved = store.resolve(entity_id) or next(iter(store.find(entity_id)), None)
        if resolved is None:
            raise InputError(f"no entity {entity_id!r} in {store.path}")
        entity = store.entity(resolved)
        neighbours = store.neighbours(resolved)
    assert entity is not None
    console.print(f"[bold]{entity.name}[/] ({entity.id}, {entity.type}; {entity.source})")
    if entity.aliases:
        console.print(f"aliases: {'; '.join(entity.aliases[:12])}")
    if entity.xrefs:
        console.print(f"xrefs: {', '.join(entity.xrefs)}")
    for key in ("inheritance", "onset", "prevalence_class", "disorder_type"):
        if entity.attrs.get(key):
            value = entity.attrs[key]
            console.print(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    groups: dict[str, list] = defaultdict(list)
    for relation, other in neighbours:
        arrow = "→" if relation.subj == entity.id else "←"
        groups[f"{arrow} {relation.pred}"].append((relation, other))
    for items in groups.values():  # the most frequent findings first
        items.sort(key=lambda pair: -float(pair[0].clinical.get("freq_mid", 0)))
    for label, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        table = Table(title=f"{label} ({len(items)})", title_justify="left")
        for column in ("entity", "name", "context", "source"):
            table.add_column(column, overflow="fold")
        for relation, other in items[: limit or None]:
            table.add_row(other.id, other.name, _context(relation.clinical), relation.source)
        if limit and len(items) > limit:
            table.add_row("…", f"{len(items) - limit} more (--limit 0 shows all)", "", "")
        console.print(table)


@app.command("export")
def export(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="A folder for jsonl, a file for graphml and d3."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, graphml or d3."),
) -> None:
    """Export the graph: JSONL (re-importable), GraphML (Gephi, Cytoscape) or D3 JSON."""
    from medresearcher.kg.io import export_graph

    if fmt not in ("jsonl", "graphml", "d3"):
        raise typer.BadParameter("--format is jsonl, graphml or d3")
    with open_store(ctx) as store:
        written = export_graph(store, out, fmt)  # type: ignore[arg-type]
    console.print(f"wrote {written}")


def _context(clinical: dict) -> str:
    if "frequency" in clinical:
        return str(clinical["frequency"])
    return ", ".join(f"{k}: {v}" for k, v in clinical.items())


def _counts(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(key, f"{value:,}")
    return table


@app.command("expand")
def expand_(
    ctx: typer.Context,
    seeds: Path = typer.Option(
        ...,
        "--seeds",
        exists=True,
        dir_okay=False,
        help="Seed entities: JSONL with entity_id (kg mine-rare writes one), or one id per line.",
    ),
    steps: int = typer.Option(20, "--steps", help="Steps per seed."),
    max_nodes: int | None = typer.Option(
        None, "--max-nodes", help="Stop after adding this many entities."
    ),
    walk_probability: float = typer.Option(
        0.5,
        "--walk-probability",
        min=0.0,
        max=1.0,
        help="p of walking to a neighbour; else discover.",
    ),
    discover: str = typer.Option(
        "on", "--discover", help="on: discover through the retriever and an LLM; off: walk only."
    ),
    endpoint: str = typer.Option("extractor", "--endpoint", help="LLM endpoint for extraction."),
    seed: int = typer.Option(0, "--seed", help="Random seed (runs are reproducible)."),
    run_name: str = typer.Option(
        "expand", "--run", help="Step log name; re-running the same name resumes it."
    ),
) -> None:
    """Grow the graph from seeds (paper §3.1.1): walk to a random neighbour with probability
    p, else discover new entities and 6-tuple relations in retrieved documents."""
    import asyncio

    from medresearcher.kg.expand import ExpansionConfig, expand
    from medresearcher.llm import LLMGateway
    from medresearcher.retrieval import open_retriever

    if discover not in ("on", "off"):
        raise typer.BadParameter("--discover is on or off")
    state = state_of(ctx)
    ws = state.ws.ensure()
    discovering = discover == "on"
    if discovering and endpoint not in state.settings.llm:
        raise InputError(
            f"discovery needs an LLM endpoint: add [llm.{endpoint}] to the config (see "
            "`medresearcher config init`), or run with --discover off to walk only"
        )
    seed_ids = _read_seeds(seeds)
    config = ExpansionConfig(
        walk_probability=walk_probability,
        max_steps=steps,
        max_nodes=max_nodes,
        seed=seed,
        endpoint=endpoint,
        discover=discovering,
    )
    log_path = ws.runs_root / f"kg-{run_name}.steps.jsonl"

    async def go():
        retriever = open_retriever(state.settings, ws) if discovering else None
        if not discovering:
            return await expand(
                store, seed_ids, retriever=None, gateway=None, config=config, log_path=log_path
            )
        async with LLMGateway(state.settings) as gateway:
            report = await expand(
                store,
                seed_ids,
                retriever=retriever,
                gateway=gateway,
                config=config,
                log_path=log_path,
            )
            run.record_usage(gateway.usage_report())
            return report

    with Run(ws, "kg-expand", state.settings) as run, open_store(ctx) as store:
        report = asyncio.run(go())
        for name in ("steps", "walks", "discoveries", "stuck", "entities_added", "relations_added"):
            run.count(name, getattr(report, name))
    rejected = ", ".join(f"{k}: {v}" for k, v in report.relations_rejected.items()) or "none"
    console.print(
        f"{report.steps} steps ({report.walks} walks, {report.discoveries} "
        f"discoveries, {report.stuck} stuck); +{report.entities_added} entities, "
        f"+{report.relations_added} relations; rejected: {rejected}; step log "
        f"{log_path}"
    )


def _read_seeds(path: Path) -> list[str]:
    ids = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                ids.append(str(json.loads(line)["entity_id"]))
            except (ValueError, KeyError):
                raise InputError(f"{path}:{number}: entity_id: missing or not JSON") from None
        else:
            ids.append(line)
    return ids


@app.command("mine-rare")
def mine_rare(
    ctx: typer.Context,
    tau: float = typer.Option(
        1e-6,
        "--tau",
        help="Rate threshold: mentions / corpus tokens "
        "(paper: 1e-6 on ~10⁹ tokens; the scale is printed).",
    ),
    min_mentions: int = typer.Option(
        1,
        "--min-mentions",
        help="Ignore entities mentioned fewer times (0-mention entities never qualify).",
    ),
    corpus: Path | None = typer.Option(
        None,
        "--corpus",
        exists=True,
        dir_okay=False,
        help="Corpus JSONL (default: <workspace>/corpus/"
        "corpus.jsonl if present, else the demo bundle).",
    ),
    bundle: str | None = typer.Option(
        None, "--bundle", help="Use an embedded bundle's corpus: demo or tiny."
    ),
    llm_filter: str | None = typer.Option(
        None,
        "--filter",
        help="LLM endpoint that keeps clinically significant candidates (optional).",
    ),
    out: str = typer.Option("seeds", "--out", help="Seeds file <workspace>/<out>.jsonl."),
    baseline: list[Path] | None = typer.Option(
        None,
        "--baseline",
        metavar="FILE",
        exists=True,
        dir_okay=False,
        help="PubMed baseline/update XML files (.xml, .xml.gz) to count instead of a corpus; "
        "repeat for each file. Counts per file are kept in <workspace>/<out>.mentions.jsonl "
        "(resumable).",
    ),
    executor: str | None = EXECUTOR,
    ray_address: str | None = ADDRESS,
) -> None:
    """Rare seed entities: mention rate in the corpus below τ (paper §3.1.1)."""
    import asyncio

    from medresearcher.kg.rarity import filter_candidates, mine_rare_entities, write_seeds
    from medresearcher.llm import LLMGateway

    state = state_of(ctx)
    ws = state.ws.ensure()
    if baseline and (corpus is not None or bundle is not None):
        raise typer.BadParameter("give --baseline files or --corpus / --bundle, not both")
    kind = executor_kind(state.settings, executor)
    if baseline:
        source, documents = f"{len(baseline)} baseline files", None
    else:
        if kind == "ray":
            console.print("[dim]--executor ray splits --baseline files; a corpus is one pass[/]")
        from medresearcher.cli.index_cmd import corpus_source

        source, documents = corpus_source(state, corpus, bundle)
    with Run(ws, "kg-mine-rare", state.settings) as run, open_store(ctx) as store:
        entities = list(store.iter_entities())
        if not entities:
            raise InputError(f"{store.path} is empty: run `medresearcher kg import --demo` first")
        if baseline:
            counts_path = ws.root / f"{out}.mentions.jsonl"
            report = _mine_baseline(
                state, run, baseline, entities, counts_path, kind, ray_address, tau, min_mentions
            )
        else:
            report = mine_rare_entities(
                documents, entities, tau=tau, min_mentions=min_mentions, progress=True
            )
        verdicts = None
        if llm_filter:
            state.settings.endpoint(llm_filter)  # unknown names fail here, listing the known

            async def ask():
                async with LLMGateway(state.settings) as gateway:
                    found = await filter_candidates(report.candidates, gateway, llm_filter, tau=tau)
                    run.record_usage(gateway.usage_report())
                    return found

            verdicts = asyncio.run(ask())
        seeds_path = ws.root / f"{out}.jsonl"
        written = write_seeds(seeds_path, report, verdicts)
        run.count("candidates", len(report.candidates))
        run.count("seeds_written", written)
    console.print(f"corpus {source}: {report.describe()}")
    kept = [c for c in report.candidates][:8]
    if kept:
        table = Table(title="rarest mentioned entities", title_justify="left")
        for column in ("entity", "name", "type", "mentions", "rate"):
            table.add_column(column)
        for c in kept:
            table.add_row(c.entity_id, c.name, c.type, str(c.mentions), f"{c.rate:.2e}")
        console.print(table)
    console.print(
        f"{written} new seeds in {seeds_path}"
        + ("" if llm_filter else " (no LLM filter: --filter ENDPOINT adds one)")
    )


def _mine_baseline(state, run, files, entities, counts_path, kind, address, tau, min_mentions):  # type: ignore[no-untyped-def]
    """Mention counts per baseline file (one work item each; local or Ray), summed."""
    from medresearcher.executor.stage_rarity import count_files, mentions_job, report_from_counts

    if kind == "ray":
        from medresearcher.cli.executor_opts import open_executor, record
        from medresearcher.executor import run_job

        job, items = mentions_job(files, settings=state.settings, counts_path=counts_path)
        with open_executor(state.settings, kind, address) as executor:
            report, _ = run_job(executor, job, items)
        record(run, kind, [report])
        run.count("files_counted", len(items))
    else:
        counted = [0]

        def on_file(name: str) -> None:
            counted[0] += 1
            run.progress(counted[0], len(files), label="baseline files")

        run.count("files_counted", count_files(files, entities, counts_path, on_file=on_file))
    console.print(f"[dim]mention counts per file → {counts_path}[/]")
    return report_from_counts(counts_path, files, entities, tau=tau, min_mentions=min_mentions)
