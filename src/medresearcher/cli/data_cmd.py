"""``medresearcher data``: what the embedded bundles hold, and under which licences."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from medresearcher.cli.state import console
from medresearcher.data import BUNDLES, bundle_manifest

app = typer.Typer(help="Inspect the embedded data bundles.", no_args_is_help=True)


@app.command("info")
def info(
    bundle: str = typer.Option(
        "demo", "--bundle", "-b", help=f"{' or '.join(BUNDLES)}, or a bundle folder."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Entity, relation and corpus counts by type and source, and the data licences."""
    manifest = bundle_manifest(bundle)
    if as_json:
        console.print_json(json.dumps(manifest))
        return
    print_bundle_info(manifest)


def print_bundle_info(manifest: dict) -> None:
    """Counts by type and source, then every source's licence and credit line."""
    counts = manifest["counts"]
    console.print(
        f"[bold]bundle {manifest['name']}[/]: {counts['rare_disorders']:,} rare disorders in "
        f"{counts['entities']:,} entities, "
        f"{counts['relations']:,} relations, {counts['documents']:,} documents, "
        f"{counts['phenotype_likelihoods']:,} phenotype likelihoods, "
        f"{counts['disease_priors']:,} disease priors"
    )
    grid = Table.grid(padding=(0, 2))
    grid.add_row(
        _count_table("entities by type", counts["entities_by_type"]),
        _count_table("relations by predicate", counts["relations_by_predicate"]),
        _count_table("documents by source type", counts["documents_by_source_type"]),
    )
    console.print(grid)
    grid = Table.grid(padding=(0, 2))
    grid.add_row(
        _count_table("entities by source", counts["entities_by_source"]),
        _count_table("relations by source", counts["relations_by_source"]),
        _count_table("documents by source", counts["documents_by_source"]),
    )
    console.print(grid)
    licences = Table(title="sources and licences", title_justify="left", show_lines=True)
    licences.add_column("source")
    licences.add_column("licence")
    licences.add_column("credit", overflow="fold")
    for source in manifest["licences"]:
        licences.add_row(
            f"{source['name']}\n{source['release']}", source["licence"], source["credit"]
        )
    console.print(licences)


def _count_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("count", justify="right")
    for key, value in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(key, f"{value:,}")
    return table


from medresearcher.cli import data_decontaminate_cmd  # noqa: E402  (heavy imports deferred inside)

app.command("decontaminate")(data_decontaminate_cmd.decontaminate)
