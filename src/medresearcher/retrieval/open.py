"""One way to open the workspace's retriever, whichever engine holds the corpus.

Callers (the agent's tools, ``index search``, graph discovery, the demo) open the retriever
here and depend only on :class:`~medresearcher.retrieval.RetrieverBackend`, so switching
engine is one line of configuration (``[retrieval] backend = "milvus"``), never code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from medresearcher.config import RetrievalSettings, Settings
from medresearcher.retrieval.backend import RetrieverBackend

if TYPE_CHECKING:
    from medresearcher.retrieval.dense import Embedder
    from medresearcher.workspace import Workspace

__all__ = ["index_exists", "milvus_uri", "open_index", "open_retriever"]

MILVUS_LITE_FILE = "milvus.db"


def _retrieval(settings: Settings | RetrievalSettings) -> RetrievalSettings:
    return settings if isinstance(settings, RetrievalSettings) else settings.retrieval


def milvus_uri(settings: Settings | RetrievalSettings, index_dir: str | Path) -> str:
    """``[retrieval.milvus] uri``, or the Milvus Lite file ``<index_dir>/milvus.db``."""
    uri = _retrieval(settings).milvus.uri
    return uri if uri else str(Path(index_dir) / MILVUS_LITE_FILE)


def index_exists(settings: Settings | RetrievalSettings, index_dir: str | Path) -> bool:
    """Whether there is an index to open, without opening it.

    For a Milvus server this is assumed (asking would need a connection); opening it then
    says clearly when the collection is missing.
    """
    retrieval = _retrieval(settings)
    if retrieval.backend == "milvus":
        from medresearcher.retrieval.milvus import is_local_uri

        uri = milvus_uri(retrieval, index_dir)
        return not is_local_uri(uri) or Path(uri).exists()
    from medresearcher.retrieval.retriever import MANIFEST

    return (Path(index_dir) / MANIFEST).is_file()


def open_index(
    settings: Settings | RetrievalSettings,
    index_dir: str | Path,
    *,
    embedder: Embedder | None = None,
    current_year: int | None = None,
) -> RetrieverBackend:
    """The retriever of the index in ``index_dir`` (embedded), or of the Milvus collection
    that ``[retrieval.milvus]`` names (its Lite file defaulting to ``index_dir``)."""
    retrieval = _retrieval(settings)
    if retrieval.backend == "milvus":
        from medresearcher.retrieval.milvus import MilvusRetriever

        return MilvusRetriever(
            milvus_uri(retrieval, index_dir),
            retrieval,
            embedder=embedder,
            current_year=current_year,
        )
    from medresearcher.retrieval.retriever import EmbeddedRetriever

    return EmbeddedRetriever(index_dir, retrieval, embedder=embedder, current_year=current_year)


def open_retriever(
    settings: Settings | RetrievalSettings,
    workspace: Workspace | str | Path,
    *,
    embedder: Embedder | None = None,
    current_year: int | None = None,
) -> RetrieverBackend:
    """The workspace's retriever on the engine ``[retrieval] backend`` names.

    Parameters
    ----------
    settings:
        The settings (or just ``[retrieval]``).
    workspace:
        The workspace (or its root folder); the index lives in ``<workspace>/index``.
    embedder, current_year:
        Passed to the backend (query encoder; "now" for recency).
    """
    from medresearcher.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    return open_index(settings, ws.index_dir, embedder=embedder, current_year=current_year)
