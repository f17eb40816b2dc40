"""``medresearcher corpus``: fetch documents from live sources into the workspace corpus.

Every ingestion writes ``<workspace>/corpus/<name>.jsonl`` (resumable: documents already
there are skipped), caches HTTP answers in ``cache/http.sqlite`` (a re-run asks the API
nothing it asked before) and records a run manifest.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from medresearcher.cli.state import CliState, console, state_of
from medresearcher.data import iter_documents
from medresearcher.workspace import Run, progress_bar

if TYPE_CHECKING:  # the connectors import the HTTP stack: only when a command runs
    from collections.abc import AsyncIterator, Callable

    from medresearcher.schema import Document
    from medresearcher.sources import SourceHttp

    # (shared HTTP layer, {"base_url": ...} when overridden) -> the connector's document stream
    Connector = Callable[[SourceHttp, dict[str, str]], AsyncIterator[Document]]

app = typer.Typer(help="Build the workspace corpus from live sources.", no_args_is_help=True)
ingest_app = typer.Typer(
    help="Fetch documents from a source into the corpus.", no_args_is_help=True
)
app.add_typer(ingest_app, name="ingest")

MAX_HELP = "Stop after this many documents."
OUT_HELP = "Corpus file name in <workspace>/corpus/ (default: the source's name)."
BASE_URL_HELP = "The API's base URL (a mirror, a proxy, or a test server)."


def _ingest(
    state: CliState,
    source: str,
    out: str | None,
    max_results: int,
    base_url: str | None,
    connector: Connector,
) -> None:
    """Run one connector into the corpus, recorded as a run; partial work is kept."""
    from medresearcher.sources import SourceHttp
    from medresearcher.sources.ingest import IngestCounts, ingest_documents

    ws = state.ws.ensure()
    path = ws.corpus_path(out or source)
    counts = IngestCounts()

    config = state.settings.sources

    async def go() -> None:
        async with SourceHttp(
            cache_path=ws.http_cache_path,
            cache_mode=config.cache,
            max_attempts=config.max_retries + 1,
            backoff_s=config.retry_backoff_s,
            timeout_s=config.timeout_s,
        ) as http:
            with progress_bar(console) as progress:
                await ingest_documents(
                    connector(http, {"base_url": base_url} if base_url else {}),
                    path,
                    counts=counts,
                    progress=progress,
                    description=source,
                    total=max_results,
                )

    with Run(ws, f"corpus-ingest-{source}", state.settings) as run:
        try:
            asyncio.run(go())
        finally:
            for name, value in counts.to_dict().items():
                run.count(name, value)
            if counts.read:
                console.print(
                    f"{counts.written} new documents in {path} "
                    f"({counts.skipped_existing} already there)"
                )


@ingest_app.command("pubmed")
def pubmed(
    ctx: typer.Context,
    query: str = typer.Option(..., "--query", "-q", help="PubMed query, e.g. 'fabry disease[mh]'."),
    max_results: int = typer.Option(500, "--max", help=MAX_HELP),
    out: str | None = typer.Option(None, "--out", help=OUT_HELP),
    base_url: str | None = typer.Option(None, help=BASE_URL_HELP, hidden=True),
) -> None:
    """PubMed through E-utilities (NCBI_API_KEY raises the limit from 3 to 10 requests/s)."""
    from medresearcher.sources import PubMed

    state = state_of(ctx)
    email = state.settings.sources.ncbi_email
    _ingest(
        state,
        "pubmed",
        out,
        max_results,
        base_url,
        lambda http, base: PubMed(http, email=email, **base).search_documents(
            query, max_results=max_results
        ),
    )


@ingest_app.command("europepmc")
def europepmc(
    ctx: typer.Context,
    query: str = typer.Option(..., "--query", "-q", help="Europe PMC query (Lucene syntax)."),
    max_results: int = typer.Option(500, "--max", help=MAX_HELP),
    out: str | None = typer.Option(None, "--out", help=OUT_HELP),
    base_url: str | None = typer.Option(None, help=BASE_URL_HELP, hidden=True),
) -> None:
    """Europe PMC: abstracts with MeSH, publication types and citation counts; preprints too."""
    from medresearcher.sources import EuropePMC

    _ingest(
        state_of(ctx),
        "europepmc",
        out,
        max_results,
        base_url,
        lambda http, base: EuropePMC(http, **base).search(query, max_results=max_results),
    )


@ingest_app.command("ctgov")
def ctgov(
    ctx: typer.Context,
    condition: str | None = typer.Option(None, "--condition", help="Condition, free text."),
    term: str | None = typer.Option(None, "--term", help="Any other search term."),
    intervention: str | None = typer.Option(None, "--intervention", help="Drug or procedure."),
    max_results: int = typer.Option(500, "--max", help=MAX_HELP),
    out: str | None = typer.Option(None, "--out", help=OUT_HELP),
    base_url: str | None = typer.Option(None, help=BASE_URL_HELP, hidden=True),
) -> None:
    """ClinicalTrials.gov (API v2): conditions, interventions, phase, status, outcomes."""
    from medresearcher.sources import ClinicalTrials

    if not (condition or term or intervention):
        raise typer.BadParameter("give --condition, --term or --intervention")
    _ingest(
        state_of(ctx),
        "ctgov",
        out,
        max_results,
        base_url,
        lambda http, base: ClinicalTrials(http, **base).studies(
            condition=condition, term=term, intervention=intervention, max_results=max_results
        ),
    )


@ingest_app.command("openfda")
def openfda(
    ctx: typer.Context,
    search: str = typer.Option(
        ..., "--search", help="openFDA search, e.g. 'openfda.generic_name:\"miglustat\"'."
    ),
    max_results: int = typer.Option(500, "--max", help=MAX_HELP),
    out: str | None = typer.Option(None, "--out", help=OUT_HELP),
    base_url: str | None = typer.Option(None, help=BASE_URL_HELP, hidden=True),
) -> None:
    """openFDA drug labels: indications, boxed warning, mechanism (OPENFDA_API_KEY optional)."""
    from medresearcher.sources import OpenFDA

    _ingest(
        state_of(ctx),
        "openfda",
        out,
        max_results,
        base_url,
        lambda http, base: OpenFDA(http, **base).labels(search, max_results=max_results),
    )


@ingest_app.command("pubmed-baseline")
def pubmed_baseline(
    ctx: typer.Context,
    path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="An NLM baseline or update file (.xml or .xml.gz)."
    ),
    out: str | None = typer.Option(None, "--out", help=OUT_HELP + " Default: pubmed-baseline."),
) -> None:
    """Stream one of NLM's annual PubMed baseline files at flat memory."""
    from medresearcher.sources.pubmed_xml import ingest_pubmed_baseline

    state = state_of(ctx)
    ws = state.ws.ensure()
    target = ws.corpus_path(out or "pubmed-baseline")
    with Run(ws, "corpus-ingest-pubmed-baseline", state.settings) as run:
        counts = ingest_pubmed_baseline(path, target)
        for name, value in counts.items():
            run.count(name, value)
    console.print(
        f"{counts['written']} new documents in {target} "
        f"({counts['skipped_existing']} already there, {counts['deleted']} deletions "
        f"listed, {counts['empty']} without title or abstract)"
    )


@app.command("merge")
def merge(
    ctx: typer.Context,
    inputs: list[Path] = typer.Argument(
        None, help="Corpus files (default: every file in <workspace>/corpus/ but the output)."
    ),
    bundle: str | None = typer.Option(
        "demo", help="Add this embedded bundle's corpus (demo, tiny); --bundle '' for none."
    ),
    out: str = typer.Option("corpus", "--out", help="Merged file name in <workspace>/corpus/."),
) -> None:
    """Merge corpus files into one, by doc_id (the first record of an id wins)."""
    from medresearcher.sources.ingest import merge_corpora

    state = state_of(ctx)
    ws = state.ws.ensure()
    target = ws.corpus_path(out)
    sources = inputs or sorted(p for p in ws.corpus_dir.glob("*.jsonl") if p != target)
    with Run(ws, "corpus-merge", state.settings) as run:
        counts = merge_corpora(sources, target, extra=iter_documents(bundle) if bundle else ())
        for name, value in counts.to_dict().items():
            run.count(name, value)
    console.print(
        f"{target}: {counts.written} documents added from {len(sources)} file(s)"
        f"{' and the ' + bundle + ' bundle' if bundle else ''} "
        f"({counts.skipped_existing} duplicates or already there)"
    )
