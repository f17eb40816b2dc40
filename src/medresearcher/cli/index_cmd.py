"""``medresearcher index``: build and search the PrivateMedicalRetriever index."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from medresearcher.cli.state import CliState, console, state_of
from medresearcher.data import iter_documents
from medresearcher.schema import Document
from medresearcher.workspace import Run, read_jsonl

if TYPE_CHECKING:  # the retriever imports bm25s, scipy and numpy: only when a command runs
    from medresearcher.retrieval import EntityHit, SearchHit
    from medresearcher.retrieval.dense import Embedder

app = typer.Typer(help="Build and search the medical retriever's index.", no_args_is_help=True)

DISCLAIMER = "[dim]Research software, not clinical advice; every result names its source.[/]"


def corpus_source(state: CliState, corpus: Path | None, bundle: str | None) -> tuple[str, object]:
    """What to index: --corpus, else --bundle, else the merged workspace corpus, else demo."""
    if corpus is not None:
        return str(corpus), read_jsonl(corpus, Document)
    merged = state.ws.corpus_path("corpus")
    if bundle is None and merged.is_file():
        return str(merged), read_jsonl(merged, Document)
    name = bundle or "demo"
    return f"bundle:{name}", iter_documents(name)


@app.command("build")
def build(
    ctx: typer.Context,
    corpus: Path | None = typer.Option(
        None,
        "--corpus",
        exists=True,
        dir_okay=False,
        help="A corpus JSONL (default: <workspace>/corpus/"
        "corpus.jsonl if present, else the demo bundle).",
    ),
    bundle: str | None = typer.Option(
        None, "--bundle", help="Index an embedded bundle: demo or tiny."
    ),
    dense: bool = typer.Option(
        False,
        "--dense",
        help="Also build the dense index (MiniLM; needs the 'dense' extra; ~24 docs/s per core).",
    ),
    dense_model: str = typer.Option(
        "minilm", "--dense-model", hidden=True, help="minilm, or hashing (a model-free stand-in)."
    ),
    fresh: bool = typer.Option(
        False,
        "--fresh",
        help="Milvus backend: drop the collection first (a build otherwise resumes, adding "
        "only documents not yet there).",
    ),
) -> None:
    """Index a corpus for `index search` and the agent's medical retriever tool."""
    from medresearcher.retrieval import build_index
    from medresearcher.retrieval.dense import HashingEmbedder, MiniLMEmbedder

    state = state_of(ctx)
    ws = state.ws.ensure()
    source, documents = corpus_source(state, corpus, bundle)
    embedder: Embedder | None = None
    if dense:
        embedder = HashingEmbedder() if dense_model == "hashing" else MiniLMEmbedder()
    if state.settings.retrieval.backend == "milvus":
        build_milvus(state, source, documents, embedder, fresh=fresh)
        return
    with Run(ws, "index-build", state.settings) as run:
        manifest = build_index(
            documents,
            ws.index_dir,
            embedder=embedder,
            embedding_cache=ws.cache_dir / "embeddings.sqlite",
            source=source,
            progress=True,
        )
        run.count("documents", manifest["n_docs"])
        run.timing("build_s", manifest["build_s"])
    lexical = manifest["lexical"]
    line = (
        f"indexed {manifest['n_docs']:,} documents from {source} in {manifest['build_s']} s "
        f"(lexical {lexical['docs_per_s']:,.0f} docs/s"
    )
    if manifest["dense"]:
        line += f"; dense {manifest['dense']['model']} {manifest['dense']['docs_per_s']} docs/s"
    console.print(line + f") → {ws.index_dir}")


def build_milvus(
    state: CliState,
    source: str,
    documents: Iterable[Document],
    embedder: Embedder | None,
    *,
    fresh: bool,
) -> None:
    """``index build`` with ``[retrieval] backend = "milvus"``: batches into the collection,
    resuming (documents already there are skipped) unless ``fresh``."""
    from medresearcher.retrieval.milvus_ingest import drop_collection, ingest_documents
    from medresearcher.retrieval.open import milvus_uri

    ws, retrieval = state.ws, state.settings.retrieval
    uri = milvus_uri(retrieval, ws.index_dir)
    if fresh and drop_collection(uri, retrieval):
        console.print(f"dropped collection {retrieval.milvus.collection!r} at {uri}")
    with Run(ws, "index-build", state.settings) as run:
        manifest = ingest_documents(
            documents,
            uri,
            retrieval,
            embedder=embedder,
            embedding_cache=ws.cache_dir / "embeddings.sqlite",
            source=source,
            progress=True,
        )
        run.count("documents", manifest["n_docs"])
        run.count("inserted", manifest["inserted"])
        run.count("skipped", manifest["skipped"])
        run.timing("build_s", manifest["build_s"])
    console.print(
        f"indexed {manifest['n_docs']:,} documents from {source} in Milvus "
        f"({manifest['inserted']:,} inserted at {manifest['docs_per_s']:,.0f} docs/s, "
        f"{manifest['skipped']:,} already there) → {uri} [{manifest['collection']}]"
    )


@app.command("search")
def search(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="A question or keywords."),
    k: int = typer.Option(10, "-k", help="How many results."),
    source_type: list[str] = typer.Option(
        [],
        "--source-type",
        help="Only these source types (repeatable): guideline, fda_label, rct, ...",
    ),
    year_from: int | None = typer.Option(None, "--year-from"),
    year_to: int | None = typer.Option(None, "--year-to"),
    entity: list[str] = typer.Option(
        [],
        "--entity",
        help="Only documents linked to these entity ids (repeatable), e.g. ORPHA:324.",
    ),
    relevance_weight: float | None = typer.Option(
        None, "--lambda", min=0.0, max=1.0, help="λ for this search (default 0.4)."
    ),
    no_dense: bool = typer.Option(False, "--no-dense", help="Lexical relevance only."),
    documents: bool = typer.Option(
        False, "--documents", help="One row per document instead of one per entity."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Search the index: Score = λ·Rel + (1−λ)·Auth, each part shown."""
    from medresearcher.retrieval import SearchFilters, open_retriever

    state = state_of(ctx)
    retriever = open_retriever(state.settings, state.ws)
    filters = SearchFilters.of(
        source_types=source_type, year_from=year_from, year_to=year_to, entity_ids=entity
    )
    options = {
        "k": k,
        "filters": filters,
        "relevance_weight": relevance_weight,
        "use_dense": not no_dense,
    }
    if documents:
        hits = retriever.search(query, **options)
        if as_json:
            console.print_json(json.dumps([_hit_json(h) for h in hits]))
        else:
            print_hits(query, hits)
        return
    entities = retriever.search_entities(query, **options)
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {"entity_id": e.entity_id, "doc_ids": e.doc_ids, **_hit_json(e.best)}
                    for e in entities
                ]
            )
        )
    else:
        print_entities(query, entities)


def print_hits(query: str, hits: list[SearchHit]) -> None:
    if not hits:
        console.print(f"no results for {query!r}")
        return
    table = Table(title=f"search: {query}", title_justify="left")
    for column, justify in (
        ("#", "right"),
        ("score", "right"),
        ("Rel", "right"),
        ("Auth", "right"),
        ("source type", "left"),
        ("year", "right"),
        ("document", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        doc = hit.document
        table.add_row(
            str(rank),
            f"{hit.score:.3f}",
            f"{hit.relevance:.3f}",
            f"{hit.authority:.3f}",
            doc.source_type,
            str(doc.year or ""),
            f"{doc.title} [dim]({doc.doc_id}, {doc.source})[/]",
        )
    console.print(table)
    console.print(DISCLAIMER)


def print_entities(query: str, entities: list[EntityHit]) -> None:
    """One row per entity: its best document's scores, and all its documents."""
    if not entities:
        console.print(f"no results for {query!r}")
        return
    table = Table(title=f"search: {query}", title_justify="left")
    for column, justify in (
        ("#", "right"),
        ("entity", "left"),
        ("score", "right"),
        ("Rel", "right"),
        ("Auth", "right"),
        ("best document", "left"),
        ("documents", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")
    for rank, entity in enumerate(entities, start=1):
        hit, doc = entity.best, entity.best.document
        table.add_row(
            str(rank),
            entity.entity_id,
            f"{hit.score:.3f}",
            f"{hit.relevance:.3f}",
            f"{hit.authority:.3f}",
            f"{doc.title} [dim]({doc.source_type}, {doc.year or 'n.d.'})[/]",
            ", ".join(entity.doc_ids),
        )
    console.print(table)
    console.print(DISCLAIMER)


def _hit_json(hit: SearchHit) -> dict:
    return {
        "doc_id": hit.document.doc_id,
        "title": hit.document.title,
        "source": hit.document.source,
        "source_type": hit.document.source_type,
        "year": hit.document.year,
        "url": hit.document.url,
        "score": hit.score,
        "relevance": hit.relevance,
        "authority": hit.authority,
        "lexical": hit.lexical,
        "dense": hit.dense,
        "reranked": hit.reranked,
    }
