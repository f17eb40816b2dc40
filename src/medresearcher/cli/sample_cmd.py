"""``medresearcher sample``: subgraphs and reasoning chains for QA synthesis (paper §3.1.2)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from medresearcher.cli.state import console, state_of
from medresearcher.errors import InputError
from medresearcher.schema import Sample
from medresearcher.workspace import JsonlWriter, Run, progress_bar, read_jsonl

if TYPE_CHECKING:  # the graph store imports networkx: only when a command runs
    from medresearcher.kg import GraphStore

STRATEGY_HELP = "max_chain, augmented_chain, community_core_path, dual_core_bridge or mixed."

app = typer.Typer(
    help="Sample subgraphs and their longest medically valid chains.", invoke_without_command=True
)


@app.callback()
def sample(
    ctx: typer.Context,
    strategy: str = typer.Option("max_chain", "--strategy", help=STRATEGY_HELP),
    n: int = typer.Option(100, "--n", help="How many samples (one anchor each)."),
    max_hops: int = typer.Option(4, "--max-hops", help="Chain length asked for."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same samples."),
    anchors: Path | None = typer.Option(
        None,
        "--anchors",
        exists=True,
        dir_okay=False,
        help="Anchor entities (seeds JSONL or ids); default: "
        "<workspace>/seeds.jsonl, else rare disorders.",
    ),
    out: str = typer.Option("samples", "--out", help="<workspace>/<out>.jsonl"),
) -> None:
    """Sample N subgraphs around rare anchors and write them to samples.jsonl (resumable)."""
    if ctx.invoked_subcommand is not None:
        return
    from medresearcher.kg import graph_location, open_graph_store
    from medresearcher.sampling import STRATEGIES, GraphView, mixed

    strategies = {**STRATEGIES, "mixed": mixed}  # mixed draws among the other four

    if strategy not in strategies:
        raise typer.BadParameter(f"--strategy is one of {', '.join(strategies)}")
    state = state_of(ctx)
    ws = state.ws.ensure()
    with open_graph_store(state.settings) as store:
        view = GraphView.from_store(store)
        if not len(view):
            raise InputError(
                f"{graph_location(state.settings)} is empty: "
                "run `medresearcher kg import --demo` first"
            )
        pool = _anchors(anchors or ws.root / "seeds.jsonl", store)
    chosen = random.Random(seed).sample(pool, min(n, len(pool)))
    path = ws.root / f"{out}.jsonl"
    lengths: dict[int, int] = {}
    with (
        Run(ws, f"sample-{strategy}", state.settings) as run,
        JsonlWriter(path) as writer,
        progress_bar(console) as progress,
    ):
        task = progress.add_task(f"sampling ({strategy})", total=len(chosen))
        for index, anchor in enumerate(chosen):
            result = strategies[strategy](view, anchor, max_hops=max_hops, seed=seed + index)
            if result is not None:
                writer.write(result)
                lengths[result.hops] = lengths.get(result.hops, 0) + 1
            progress.advance(task)
        run.count("samples_written", writer.written)
    spread = ", ".join(f"{hops} hops: {count}" for hops, count in sorted(lengths.items()))
    console.print(f"{writer.written} new samples in {path} ({spread or 'none'})")


@app.command("show")
def show(
    ctx: typer.Context,
    sample_id: str = typer.Argument(..., help="A sample id from samples.jsonl."),
    samples: str = typer.Option("samples", "--samples", help="<workspace>/<name>.jsonl"),
) -> None:
    """Draw a sample's chain as text, with the entities' names."""
    from medresearcher.kg import open_graph_store

    ws = state_of(ctx).ws
    path = ws.root / f"{samples}.jsonl"
    found = next((s for s in read_jsonl(path, Sample) if s.id == sample_id), None)
    if found is None:
        raise InputError(f"{path}: no sample {sample_id!r}")
    with open_graph_store(state_of(ctx).settings) as store:
        console.print(chain_text(found, store))
        console.print(
            f"[dim]{found.strategy}, seed {found.seed}, {found.hops} hops, "
            f"{len(found.nodes)} nodes; unique answer: {found.unique} "
            f"({found.competing_ends} competing ends)[/]"
        )


def chain_text(sample: Sample, store: GraphStore) -> str:
    """``Fabry disease (ORPHA:324) —associated_gene→ GLA (HGNC:4296) ←…— …``."""

    def label(entity_id: str) -> str:
        entity = store.entity(entity_id)
        return f"{entity.name if entity else entity_id} [dim]({entity_id})[/]"

    parts = [label(sample.chain[0])]
    for index in range(1, len(sample.chain), 2):
        predicate, target = sample.chain[index], sample.chain[index + 1]
        arrow = f" ←{predicate[1:]}— " if predicate.startswith("^") else f" —{predicate}→ "
        parts.append(arrow + label(target))
    return "".join(parts)


def _anchors(path: Path, store: GraphStore) -> list[str]:
    if path.is_file():
        ids = []
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line:
                ids.append(json.loads(line)["entity_id"] if line.startswith("{") else line)
        present = [i for i in ids if store.entity(i) is not None]
        if present:
            return sorted(set(present))
    return sorted(
        e.id for e in store.iter_entities() if e.id.startswith("ORPHA:") and e.attrs.get("rare")
    )
