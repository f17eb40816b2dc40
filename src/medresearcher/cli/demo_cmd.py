"""``medresearcher demo``: the offline tour that ``make demo`` runs.

It runs every stage that has an honest model-free method on the bundled data and says,
for each stage that needs a model, that it needs one. As stages land, they join the tour.
"""

from __future__ import annotations

import random
from pathlib import Path

import typer
from rich.panel import Panel
from rich.table import Table

from medresearcher import __version__
from medresearcher.cli.data_cmd import print_bundle_info
from medresearcher.cli.index_cmd import print_entities
from medresearcher.cli.sample_cmd import chain_text
from medresearcher.cli.state import console, state_of
from medresearcher.data import bundle_dir, bundle_manifest, iter_documents
from medresearcher.workspace import JsonlWriter, Run

# (stage, command, status) — the pipeline of ARCHITECTURE.md §1 and where each part stands.
STAGES = [
    ("configuration, workspace, LLM gateway", "medresearcher config show / llm ping", "ready"),
    ("medical data bundle (Orphanet, DO, PubMedQA, ...)", "medresearcher data info", "ready"),
    (
        "live connectors: PubMed, Europe PMC, CT.gov, openFDA",
        "medresearcher corpus ingest",
        "ready",
    ),
    ("PrivateMedicalRetriever (λ·Rel + (1−λ)·Auth)", "medresearcher index build / search", "ready"),
    (
        "knowledge graph: store, rare seeds, expansion",
        "medresearcher kg import / mine-rare / expand",
        "ready",
    ),
    ("subgraph sampling, longest valid chain", "medresearcher sample / sample show", "ready"),
    (
        "QA synthesis: template writer, checks, specialties, calibration",
        "medresearcher qa generate / check / calibrate / stats",
        "ready",
    ),
    (
        "agent and tools (ReAct; retriever, reader, search, DDx)",
        "medresearcher agent ask / tools call / ddx",
        "ready",
    ),
    (
        "trajectory synthesis: MTG, α = 0.7, filters, exports",
        "medresearcher traj generate / filter / rewrite / export / stats",
        "ready",
    ),
    (
        "evaluation: loaders, rules + LLM judge, pass@k, reports",
        "medresearcher eval run / ask / report / compare",
        "ready",
    ),
    ("training on TRL / verl", "medresearcher train ...", "planned"),
    ("web UI", "medresearcher web", "planned"),
]


# The paper's τ = 1e-6 assumes ~10⁹ corpus tokens; the demo corpus has under 10⁶, where one
# mention is already ~1e-6. This keeps entities mentioned fewer than ~4 times.
DEMO_TAU = 5e-6
DEMO_SEED = 7
DEMO_SAMPLES = 5
# A researcher's description, not the disease's name.
DEMO_QUERY = "GLA mutation, angiokeratoma, acroparesthesia, X-linked"


def demo(ctx: typer.Context) -> None:
    """Run the offline demo: everything that needs no model, on the bundled data."""
    # The stages' libraries (graph, retriever, sampling, agent) load here, not at CLI start.
    from medresearcher.cli.demo_agent_steps import demo_qa_and_agent
    from medresearcher.kg import open_graph_store
    from medresearcher.kg.io import import_records
    from medresearcher.kg.rarity import mine_rare_entities, write_seeds
    from medresearcher.retrieval import build_index, open_retriever
    from medresearcher.sampling import STRATEGIES, GraphView, mixed

    state = state_of(ctx)
    settings = state.settings
    console.print(
        Panel.fit(
            f"[bold]medresearcher {__version__}[/] — build, train and evaluate medical "
            "deep-research agents\n(knowledge graph → multi-hop QA → agent trajectories → "
            "training → evaluation).\n[dim]Research software, not clinical advice.[/]",
            border_style="cyan",
        )
    )
    ws = state.ws.ensure()
    with Run(ws, "demo", settings) as run:
        table = Table(title="pipeline stages", title_justify="left")
        table.add_column("stage")
        table.add_column("command")
        table.add_column("status")
        for stage, command, status in STAGES:
            colour = "green" if status == "ready" else "yellow"
            table.add_row(stage, command, f"[{colour}]{status}[/]")
            run.count(f"stages_{status}")
        console.print(table)

        console.print("\n[bold cyan]1. The embedded medical data[/] (medresearcher data info)")
        manifest = bundle_manifest("demo")
        print_bundle_info(manifest)
        run.count("bundle_entities", manifest["counts"]["entities"])
        run.count("bundle_documents", manifest["counts"]["documents"])

        console.print(
            "\n[bold cyan]2. The medical retriever[/] (medresearcher index build; index search)"
        )
        if settings.retrieval.backend == "milvus":  # the configured engine, as for users
            from medresearcher.retrieval.milvus_ingest import ingest_documents
            from medresearcher.retrieval.open import milvus_uri

            uri = milvus_uri(settings, ws.index_dir)
            index = ingest_documents(
                iter_documents("demo"), uri, settings.retrieval, source="bundle:demo"
            )
        else:
            index = build_index(iter_documents("demo"), ws.index_dir, source="bundle:demo")
        console.print(
            f"indexed {index['n_docs']:,} documents in {index['build_s']} s "
            f"(lexical; add --dense for MiniLM embeddings) → {ws.index_dir}"
        )
        retriever = open_retriever(settings, ws)
        print_entities(DEMO_QUERY, retriever.search_entities(DEMO_QUERY, k=5))
        retriever.close()
        run.count("index_documents", index["n_docs"])

        console.print(
            "\n[bold cyan]3. The knowledge graph[/] (medresearcher kg import --demo; "
            "kg stats; kg mine-rare)"
        )
        with open_graph_store(settings) as store:
            import_records(store, bundle_dir("demo"))
            stats = store.stats()
            predicates = ", ".join(
                f"{p} {n:,}" for p, n in list(stats["relations_by_predicate"].items())[:5]
            )
            console.print(
                f"{stats['entities']:,} entities, {stats['relations']:,} relations "
                f"({predicates}, …) in {ws.kg_path}"
            )
            report = mine_rare_entities(iter_documents("demo"), store.iter_entities(), tau=DEMO_TAU)
            seeds = write_seeds(ws.root / "seeds.jsonl", report)
        console.print(f"rare seeds at τ = {DEMO_TAU:g}: {report.describe()}")
        console.print(
            f"{seeds} new seeds in {ws.root / 'seeds.jsonl'}; growing the graph from "
            "them by discovery needs an LLM endpoint (\\[llm.extractor]): "
            "`medresearcher kg expand --seeds workspace/seeds.jsonl` "
            "(or --discover off to walk only)"
        )
        run.count("kg_entities", stats["entities"])
        run.count("rare_seeds", len(report.candidates))

        console.print(
            "\n[bold cyan]4. Subgraph sampling[/] (medresearcher sample --strategy S "
            "--max-hops 4; sample show ID)"
        )
        with open_graph_store(settings) as store:
            view = GraphView.from_store(store)
            anchors = sorted(
                e.id
                for e in store.iter_entities()
                if e.id.startswith("ORPHA:") and e.attrs.get("rare")
            )
            picked = random.Random(DEMO_SEED).sample(anchors, DEMO_SAMPLES)
            with JsonlWriter(ws.samples_path) as writer:
                for name, strategy in {**STRATEGIES, "mixed": mixed}.items():
                    hops = []
                    for index, anchor in enumerate(picked):
                        drawn = strategy(view, anchor, max_hops=4, seed=DEMO_SEED + index)
                        writer.write(drawn)
                        hops.append(drawn.hops)
                    console.print(f"{name}: {len(hops)} samples, hops {sorted(hops)}")
                    run.count(f"samples_{name}", len(hops))
            example = STRATEGIES["max_chain"](view, picked[0], max_hops=4, seed=DEMO_SEED)
            console.print(f"e.g. {chain_text(example, store)}")
            console.print(
                f"[dim]unique answer: {example.unique} "
                f"({example.competing_ends} competing ends); samples in "
                f"{ws.samples_path}[/]"
            )

        demo_qa_and_agent(ws, settings, run)

        console.print(f"\n[bold]workspace[/] {Path(ws.root).resolve()}")
        console.print(
            f"[bold]config[/]    {settings.source or 'built-in defaults (no medresearcher.toml)'}"
        )
        if settings.llm:
            names = ", ".join(sorted(settings.llm))
            console.print(
                f"[bold]models[/]    endpoints configured: {names} "
                "(check one with [cyan]medresearcher llm ping[/])"
            )
        else:
            console.print(
                "[bold]models[/]    none configured, so this demo runs offline: stages that need "
                "a model say so and stop; nothing fakes a model's answer.\n"
                "          To add one: [cyan]medresearcher config init[/], edit base_url/model, "
                "then [cyan]medresearcher llm ping[/]."
            )
    console.print(
        f"\nrecorded as run [bold]{run.run_id}[/] — see [cyan]medresearcher runs show "
        f"{run.run_id}[/]"
    )
