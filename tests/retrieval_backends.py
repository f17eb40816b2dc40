"""Build one corpus on every retriever backend, for the parametrised ``retriever`` fixtures.

The same tests run on the embedded engine and on Milvus (Lite, a local file): each backend
is built once per test module, and tests open it through the factory
(:func:`medresearcher.retrieval.open_index`) with the settings they need, so the switch
between backends is a configuration value, exactly as for users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from medresearcher.config import RetrievalSettings
from medresearcher.retrieval import RetrieverBackend, build_index, open_index
from medresearcher.retrieval.dense import Embedder
from medresearcher.retrieval.open import milvus_uri
from medresearcher.schema import Document

BACKENDS = ["embedded", "milvus"]

OpenRetriever = Callable[..., RetrieverBackend]


def build_backend(
    backend: str,
    documents: Iterable[Document],
    index_dir: Path,
    *,
    embedder: Embedder | None = None,
    batch_size: int = 256,
) -> None:
    """Index ``documents`` on ``backend`` where :func:`open_index` will look for them."""
    if backend == "embedded":
        build_index(documents, index_dir, embedder=embedder, source="test")
        return
    from medresearcher.retrieval.milvus_ingest import ingest_documents

    settings = RetrievalSettings(backend="milvus")
    ingest_documents(
        documents,
        milvus_uri(settings, index_dir),
        settings,
        embedder=embedder,
        batch_size=batch_size,
        source="test",
    )


def backend_fixture(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    documents: Callable[[], Iterable[Document]],
    *,
    embedder: Embedder | None = None,
    current_year: int | None = None,
) -> Iterator[OpenRetriever]:
    """Body of a module-scoped fixture parametrised over :data:`BACKENDS`: yields
    ``open(**retrieval_settings) -> RetrieverBackend`` and closes what it opened."""
    backend = request.param
    index_dir = tmp_path_factory.mktemp(backend) / "index"
    build_backend(backend, documents(), index_dir, embedder=embedder)
    opened: list[RetrieverBackend] = []

    def open_backend(**settings) -> RetrieverBackend:
        retriever = open_index(
            RetrievalSettings(backend=backend, **settings), index_dir, current_year=current_year
        )
        opened.append(retriever)
        return retriever

    yield open_backend
    for retriever in opened:
        retriever.close()
