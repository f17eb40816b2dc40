"""Bulk ingestion of a corpus into Milvus, in batches, resumable (``index build`` with
``[retrieval] backend = "milvus"``).

A corpus of 30 million abstracts (the paper's PubMed scale) takes hours to embed and insert;
a build that dies half-way must not start over. So every batch first asks Milvus which of its
document ids are already in the collection and inserts only the others: re-running the same
command resumes where the last one stopped, and running it on a grown corpus adds only the new
documents. Embeddings go through the same workspace cache as the embedded index.

Each document keeps its position in the corpus (the count of documents before it), which the
retriever uses to break score ties the way the embedded engine does.

Milvus Lite 3.2.2 computes BM25 statistics (IDF, average length) per segment, and its manual
compaction is a no-op: a build run in one go is one segment (up to its 128 MB memtable: the
demo corpus is one) and ranks exactly like the embedded index, but each resumed run adds a
segment with its own statistics, so BM25 scores differ slightly until the collection is
rebuilt (``index build --fresh``). A Milvus server has no such limit.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from medresearcher.config import RetrievalSettings
from medresearcher.errors import InputError
from medresearcher.retrieval.authority import document_journal
from medresearcher.retrieval.dense import Embedder
from medresearcher.retrieval.embedding_cache import CachedEmbedder
from medresearcher.retrieval.milvus import (
    BODY,
    DENSE,
    META_PROPERTY,
    RECORD,
    SCHEMA_FORMAT,
    analyzed_text,
    connect,
    read_meta,
    sparse_field,
)
from medresearcher.retrieval.retriever import document_text
from medresearcher.retrieval.tokenize import TOKENIZER_VERSION
from medresearcher.schema import Document

__all__ = ["collection_fields", "drop_collection", "ingest_documents"]

log = logging.getLogger(__name__)

MAX_VARCHAR = 65535  # bytes, Milvus's limit for one VARCHAR value
MAX_ENTITY_IDS = 1024
MAX_ID = 512


def collection_fields(settings: RetrievalSettings) -> list[str]:
    """The text fields with a BM25 field: body, the configured ones, every weighted one."""
    named = set(settings.milvus.text_fields) | set(settings.field_weights)
    named |= set(settings.entity_field_weights)
    return [BODY, *sorted(named - {BODY})]


def drop_collection(uri: str, settings: RetrievalSettings) -> bool:
    """Remove the collection (for a fresh build); True when there was one."""
    client = connect(uri, settings.milvus.token_env)
    try:
        name = settings.milvus.collection
        if not client.has_collection(name):
            return False
        client.drop_collection(name)
        return True
    finally:
        client.close()


def _create(client: Any, settings: RetrievalSettings, embedder: Embedder | None) -> dict:
    from pymilvus import DataType, Function, FunctionType

    fields = collection_fields(settings)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID)
    schema.add_field("position", DataType.INT64)
    schema.add_field("source_type", DataType.VARCHAR, max_length=64)
    schema.add_field("year", DataType.INT64)
    schema.add_field("journal", DataType.VARCHAR, max_length=MAX_ID)
    schema.add_field(
        "entity_ids",
        DataType.ARRAY,
        element_type=DataType.VARCHAR,
        max_capacity=MAX_ENTITY_IDS,
        max_length=MAX_ID,
    )
    schema.add_field(RECORD, DataType.VARCHAR, max_length=MAX_VARCHAR)
    index = client.prepare_index_params()
    for name in fields:
        schema.add_field(
            name,
            DataType.VARCHAR,
            max_length=MAX_VARCHAR,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "standard"},
        )
        schema.add_field(sparse_field(name), DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name=f"{name}_bm25_fn",
                function_type=FunctionType.BM25,
                input_field_names=[name],
                output_field_names=[sparse_field(name)],
            )
        )
        index.add_index(
            sparse_field(name),
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": 1.5, "bm25_b": 0.75},  # the embedded index's Lucene defaults
        )
    dense = None
    if embedder is not None:
        schema.add_field(DENSE, DataType.FLOAT_VECTOR, dim=embedder.dim)
        index.add_index(DENSE, index_type=settings.milvus.dense_index, metric_type="COSINE")
        dense = {"model": embedder.name, "dim": embedder.dim}
    name = settings.milvus.collection
    client.create_collection(name, schema=schema, index_params=index)
    meta = {"format": SCHEMA_FORMAT, "tokenizer": TOKENIZER_VERSION, "fields": fields}
    meta["dense"] = dense
    client.alter_collection_properties(name, properties={META_PROPERTY: json.dumps(meta)})
    return meta


def _check(meta: dict, embedder: Embedder | None, where: str) -> None:
    """Refuse to add documents a collection cannot hold consistently."""
    if meta.get("format") != SCHEMA_FORMAT or meta.get("tokenizer") != TOKENIZER_VERSION:
        raise InputError(f"{where}: built by another version; rebuild it (index build --fresh)")
    dense = meta.get("dense")
    wanted = {"model": embedder.name, "dim": embedder.dim} if embedder else None
    if dense != wanted:
        raise InputError(
            f"{where}: dense vectors {dense or 'none'}, this build asks for {wanted or 'none'}; "
            "use the same --dense option to resume, or rebuild (index build --fresh)"
        )


def _fit(text: str, limit: int = MAX_VARCHAR) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes at a token boundary (tokens are space-separated)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore").rsplit(" ", 1)[0]


def _row(doc: Document, position: int, fields: list[str]) -> dict[str, Any]:
    record = doc.model_dump_json()
    if len(record.encode("utf-8")) > MAX_VARCHAR:
        raise InputError(
            f"document {doc.doc_id}: its record is over {MAX_VARCHAR} bytes, Milvus's limit; "
            "split it into passages"
        )
    row: dict[str, Any] = {
        "doc_id": doc.doc_id,
        "position": position,
        "source_type": doc.source_type,
        "year": doc.year or 0,
        "journal": document_journal(doc),
        "entity_ids": list(doc.entity_ids)[:MAX_ENTITY_IDS],
        RECORD: record,
        BODY: _fit(analyzed_text(document_text(doc))),
    }
    for name in fields[1:]:
        row[name] = _fit(analyzed_text(doc.fields.get(name, "")))
    return row


def _batches(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(documents)
    while batch := list(islice(iterator, size)):
        yield batch


def ingest_documents(
    documents: Iterable[Document],
    uri: str,
    settings: RetrievalSettings,
    *,
    embedder: Embedder | None = None,
    embedding_cache: str | Path | None = None,
    source: str = "",
    batch_size: int | None = None,
    progress: bool = False,
) -> dict:
    """Insert ``documents`` into the collection of ``settings.milvus`` at ``uri``, resumably.

    Creates the collection on first use (one BM25 field per text field, a dense field when
    ``embedder`` is given). Documents whose id is already there are skipped, so a re-run
    resumes an interrupted build. Returns a manifest like :func:`~medresearcher.retrieval.
    build_index`'s, with ``inserted`` and ``skipped`` counts.
    """
    config = settings.milvus
    size = batch_size or config.batch_size
    client = connect(uri, config.token_env)
    name = config.collection
    where = f"{uri}: collection {name!r}"
    started = time.perf_counter()
    try:
        meta = read_meta(client, name)
        if meta is None:
            meta = _create(client, settings, embedder)
        else:
            _check(meta, embedder, where)
        fields: list[str] = meta["fields"]
        encoder = embedder
        if embedder is not None and embedding_cache:
            encoder = CachedEmbedder(embedder, embedding_cache)
        position = _count(client, name)
        inserted = skipped = 0
        embed_s = 0.0
        status = None
        if progress:
            from rich.console import Console

            status = Console(stderr=True).status("Milvus: ingesting")
            status.start()
        for batch in _batches(documents, size):
            ids = [doc.doc_id for doc in batch]
            present = {
                row["doc_id"]
                for row in client.query(
                    name,
                    filter=f"doc_id in {json.dumps(ids, ensure_ascii=False)}",
                    output_fields=["doc_id"],
                    limit=len(ids),
                )
            }
            fresh = [doc for doc in batch if doc.doc_id not in present]
            skipped += len(batch) - len(fresh)
            if not fresh:
                continue
            rows = []
            for doc in fresh:
                rows.append(_row(doc, position, fields))
                position += 1
            if encoder is not None:
                t_embed = time.perf_counter()
                vectors = encoder.encode([document_text(doc) for doc in fresh])
                embed_s += time.perf_counter() - t_embed
                # Rounded to float16 like the embedded index's matrix, so cosines agree.
                rounded = np.asarray(vectors, dtype=np.float16).astype(np.float32)
                for row, vector in zip(rows, rounded, strict=True):
                    row[DENSE] = vector.tolist()
            client.insert(name, rows)
            inserted += len(rows)
            if status is not None:
                status.update(f"Milvus: {inserted:,} inserted, {skipped:,} already there")
        if status is not None:
            status.stop()
        client.flush(name)
        n_docs = _count(client, name)
        if n_docs == 0:
            raise InputError(f"{source or 'corpus'}: no documents to index")
        seconds = time.perf_counter() - started
        meta.update(
            source=source,
            n_docs=n_docs,
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        client.alter_collection_properties(name, properties={META_PROPERTY: json.dumps(meta)})
    finally:
        client.close()
    log.info("milvus: %d inserted, %d skipped in %.1f s", inserted, skipped, seconds)
    return {
        "backend": "milvus",
        "uri": uri,
        "collection": name,
        "source": source,
        "n_docs": n_docs,
        "inserted": inserted,
        "skipped": skipped,
        "build_s": round(seconds, 2),
        "docs_per_s": round(inserted / max(seconds, 1e-9), 1),
        "lexical": {"engine": "milvus-bm25", "fields": fields},
        "dense": (
            None
            if embedder is None
            else {
                **meta["dense"],
                "embed_s": round(embed_s, 2),
                "embedded": getattr(encoder, "encoded", inserted),
            }
        ),
    }


def _count(client: Any, name: str) -> int:
    rows = client.query(name, filter="", output_fields=["count(*)"])
    return int(rows[0]["count(*)"])
