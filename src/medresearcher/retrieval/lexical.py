"""BM25 over :func:`~medresearcher.retrieval.tokenize.tokenize` tokens, stored and scored by bm25s.

Why bm25s: it is pure numpy, keeps the index as one sparse matrix of precomputed
per-(term, document) BM25 contributions that saves to ``.npy`` files and loads memory-mapped,
and scores a query with a few slices of that matrix (~1.5 ms on the 11k-document corpus,
``docs/measurements.md``). No Java, no server.

Why we build the matrix ourselves: bm25s's own ``index()`` keeps every document's token
list as Python lists of Python ints and counts terms with one ``Counter`` per document,
which for a million documents of ~150 tokens costs several gigabytes and minutes. Here the
documents are tokenized as a stream into 32-bit ids, term frequencies are counted per
chunk of documents with numpy, and the compressed-sparse-column matrix is assembled
with one stable sort. The arithmetic is bm25s's own ``lucene`` variant (idf
``log(1 + (N - df + 0.5) / (df + 0.5))``, tf part ``tf / (k1 (1 - b + b |d| / avgdl) + tf)``),
in the same order and precision, so the matrix equals what ``bm25s.BM25.index`` builds
from the same tokens (the tests check this), and the index is a plain ``bm25s.BM25`` object
for saving, loading and scoring.
"""

from __future__ import annotations

import json
import logging
import time
from array import array
from collections.abc import Iterable, Sized
from pathlib import Path

import bm25s
import numpy as np

from medresearcher.errors import ConfigError, InputError
from medresearcher.retrieval.tokenize import TOKENIZER_VERSION, tokenize
from medresearcher.retrieval.topk import top_k

__all__ = ["LexicalIndex"]

log = logging.getLogger(__name__)

FORMAT = 1
META = "lexical.json"
# Token ids counted per numpy pass: big enough to amortise numpy's call overhead, small
# enough that the pass's int64 temporaries stay around 50 MB.
_CHUNK_TOKENS = 1 << 22


class _Vocabulary(dict):
    """token -> id, giving the next id to a token seen for the first time.

    ``map(vocab.__getitem__, tokens)`` then turns a document into ids at C speed: Python
    code runs only for new tokens.
    """

    def __missing__(self, token: str) -> int:
        index = self[token] = len(self)
        return index


class _Postings:
    """Accumulates (document, term, tf) triples chunk by chunk, as compact numpy arrays."""

    def __init__(self) -> None:
        self.docs: list[np.ndarray] = []
        self.terms: list[np.ndarray] = []
        self.tfs: list[np.ndarray] = []

    def add(self, ids: array, lengths: array, first_doc: int) -> None:
        token_ids = np.asarray(ids, dtype=np.int64)  # copies: `ids` is reused
        local_doc = np.repeat(
            np.arange(len(lengths), dtype=np.int64), np.asarray(lengths, dtype=np.int64)
        )
        keys, counts = np.unique((local_doc << 32) | token_ids, return_counts=True)
        self.docs.append(((keys >> 32) + first_doc).astype(np.int32))
        self.terms.append((keys & 0xFFFFFFFF).astype(np.int32))
        self.tfs.append(counts.astype(np.float32))

    @property
    def nnz(self) -> int:
        return sum(d.size for d in self.docs)


class LexicalIndex:
    """A BM25 index of a fixed list of documents, addressed by their position (0..n-1).

    Build with :meth:`build`, query with :meth:`search` or :meth:`scores`, persist with
    :meth:`save` / :meth:`load`.
    """

    def __init__(self, bm25: bm25s.BM25) -> None:
        self._bm25 = bm25
        self._vocab: dict[str, int] = bm25.vocab_dict
        self._n_docs = int(bm25.scores["num_docs"])

    # ----------------------------------------------------------------------------- build
    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        progress: bool = False,
    ) -> LexicalIndex:
        """Tokenize ``texts`` and build their BM25 (Lucene variant) index.

        Parameters
        ----------
        texts : iterable of str
            The documents, in the order that defines their indices. A generator is fine:
            texts are read once and not kept.
        k1, b : float
            BM25 term-frequency saturation and length normalisation (Lucene defaults).
        progress : bool
            Show a progress bar while tokenizing.

        Returns
        -------
        LexicalIndex

        Raises
        ------
        InputError
            If there are no documents.
        ConfigError
            If ``k1`` is not positive or ``b`` is outside [0, 1].

        Notes
        -----
        Memory is about 28 bytes per distinct (term, document) pair at the final sort, plus
        the vocabulary: a million documents of ~150 tokens stay well under 8 GB.

        References
        ----------
        .. [1] C. Kamphuis, A. de Vries, L. Boytsov, J. Lin, "Which BM25 Do You Mean? A
           Large-Scale Reproducibility Study of Scoring Variants", ECIR 2020 (the
           ``lucene`` variant).
        .. [2] X. H. Lù, "BM25S: Orders of magnitude faster lexical search via eager
           sparse scoring", arXiv:2407.03618, 2024.
        """
        if k1 <= 0 or not 0.0 <= b <= 1.0:
            raise ConfigError(f"BM25 needs k1 > 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        started = time.perf_counter()
        vocab = _Vocabulary()
        lookup = vocab.__getitem__
        postings = _Postings()
        lengths = array("i")
        chunk_ids, chunk_lengths, first_doc = array("i"), array("i"), 0
        for text in _progress(texts, progress):
            tokens = tokenize(text)
            chunk_ids.extend(map(lookup, tokens))
            chunk_lengths.append(len(tokens))
            if len(chunk_ids) >= _CHUNK_TOKENS:
                postings.add(chunk_ids, chunk_lengths, first_doc)
                lengths.extend(chunk_lengths)
                first_doc += len(chunk_lengths)
                chunk_ids, chunk_lengths = array("i"), array("i")
        if chunk_lengths:
            postings.add(chunk_ids, chunk_lengths, first_doc)
            lengths.extend(chunk_lengths)
        del chunk_ids, chunk_lengths
        n_docs = len(lengths)
        if n_docs == 0:
            raise InputError("cannot build a lexical index of zero documents")
        tokenized = time.perf_counter()
        data, indices, indptr = _bm25_matrix(postings, np.asarray(lengths), len(vocab), k1, b)
        bm25 = bm25s.BM25(k1=k1, b=b, method="lucene", backend="numpy", csc_backend="numpy")
        bm25.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}
        bm25.vocab_dict = dict(vocab)
        bm25.nonoccurrence_array = None  # only the bm25l / bm25+ variants use it
        del vocab
        log.info(
            "lexical index: %d documents, %d terms, %d postings in %.2f s (tokenizing %.2f s)",
            n_docs,
            len(bm25.vocab_dict),
            data.size,
            time.perf_counter() - started,
            tokenized - started,
        )
        return cls(bm25)

    # ---------------------------------------------------------------------------- query
    @property
    def n_docs(self) -> int:
        """The number of documents indexed."""
        return self._n_docs

    @property
    def n_terms(self) -> int:
        """The size of the vocabulary."""
        return len(self._vocab)

    def _query_ids(self, query: str) -> list[int]:
        vocab = self._vocab
        return [vocab[t] for t in tokenize(query) if t in vocab]

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every document for ``query`` (float32, length :attr:`n_docs`).

        A query token repeated counts repeatedly, as in bm25s; tokens outside the
        vocabulary are ignored, so an unmatched query scores 0 everywhere.
        """
        ids = self._query_ids(query)
        if not ids:
            return np.zeros(self._n_docs, dtype=np.float32)
        return self._bm25.get_scores_from_ids(ids)

    def search(
        self, query: str, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best-scoring documents for ``query``.

        Parameters
        ----------
        query : str
            Free text, tokenized like the documents.
        k : int
            At most this many results.
        allowed : numpy.ndarray of bool, optional
            One flag per document; only flagged documents are returned (search filters).

        Returns
        -------
        indices : numpy.ndarray of int64
            Document positions, best first; ties go to the lower position.
        scores : numpy.ndarray of float32
            Their BM25 scores, all > 0. Both arrays are empty when no query token is in
            the vocabulary or no allowed document matches.
        """
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (self._n_docs,):
                raise ValueError(f"allowed has shape {allowed.shape}, expected ({self._n_docs},)")
        ids = self._query_ids(query)
        if not ids or k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        # bm25s multiplies every score by the mask: disallowed documents score 0 and drop out.
        scores = self._bm25.get_scores_from_ids(ids, weight_mask=allowed)
        matched = np.flatnonzero(scores > 0)
        matched_scores = scores[matched]
        best = top_k(matched_scores, k)
        return matched[best].astype(np.int64), matched_scores[best]

    # ------------------------------------------------------------------------ persist
    def save(self, folder: str | Path) -> None:
        """Write the index to ``folder``: bm25s's files plus ``lexical.json``.

        ``lexical.json`` records the tokenizer version, so that :meth:`load` refuses an
        index whose tokens a changed tokenizer would no longer match.
        """
        folder = Path(folder)
        self._bm25.save(folder, show_progress=False)
        meta = {
            "format": FORMAT,
            "engine": "bm25s",
            "bm25s_version": bm25s.__version__,
            "tokenizer_version": TOKENIZER_VERSION,
            "method": self._bm25.method,
            "k1": self._bm25.k1,
            "b": self._bm25.b,
            "n_docs": self._n_docs,
            "n_terms": self.n_terms,
        }
        (folder / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path, *, mmap: bool = True) -> LexicalIndex:
        """Open an index written by :meth:`save`.

        With ``mmap`` (the default) the score matrix is memory-mapped: loading costs only
        the vocabulary, and pages are read as queries touch them.

        Raises
        ------
        ConfigError
            If the folder holds no index, or one written by another format or tokenizer
            version (rebuild it).
        """
        folder = Path(folder)
        meta_path = folder / META
        if not meta_path.is_file():
            raise ConfigError(f"{folder}: no lexical index here ({META} missing)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("tokenizer_version") != TOKENIZER_VERSION:
            raise ConfigError(
                f"{meta_path}: lexical index format {meta.get('format')} / tokenizer "
                f"{meta.get('tokenizer_version')}, this version uses {FORMAT} / "
                f"{TOKENIZER_VERSION}: rebuild the index"
            )
        started = time.perf_counter()
        bm25 = bm25s.BM25.load(folder, mmap=mmap, load_corpus=False, show_progress=False)
        bm25.unique_token_ids_set = None  # only bm25s.retrieve() on id lists needs it
        log.debug("lexical index loaded from %s in %.3f s", folder, time.perf_counter() - started)
        return cls(bm25)


def _bm25_matrix(
    postings: _Postings, lengths: np.ndarray, n_terms: int, k1: float, b: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSC arrays (data, indices, indptr) of BM25 contributions, as bm25s lays them out."""
    n_docs = lengths.size
    avg_len = lengths.mean()  # a numpy float64, as in bm25s, so the arithmetic matches
    nnz = postings.nnz
    terms = np.empty(nnz, dtype=np.int32)
    docs = np.empty(nnz, dtype=np.int32)
    start = 0
    for chunk_docs, chunk_terms in zip(postings.docs, postings.terms, strict=True):
        terms[start : start + chunk_terms.size] = chunk_terms
        docs[start : start + chunk_docs.size] = chunk_docs
        start += chunk_terms.size
    postings.docs.clear()
    postings.terms.clear()
    df = np.bincount(terms, minlength=n_terms)
    # bm25s._score_idf_lucene, computed in float64 and stored as float32
    idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    data = np.empty(nnz, dtype=np.float32)
    start = 0
    for tf32 in postings.tfs:
        end = start + tf32.size
        tf = tf32.astype(np.float64)
        doc_len = lengths[docs[start:end]].astype(np.float64)
        # bm25s._score_tfc_lucene: tf / (k1 * ((1 - b) + b * l_d / l_avg) + tf)
        tfc = tf / (k1 * ((1 - b) + b * doc_len / avg_len) + tf)
        data[start:end] = idf[terms[start:end]] * tfc
        start = end
    postings.tfs.clear()
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    # Postings are in document order, so a stable sort by term gives each column's
    # documents ascending, exactly like bm25s's CSC builder.
    order = np.argsort(terms, kind="stable")
    del terms
    indices = docs[order]
    del docs
    data = data[order]
    return data, indices, indptr


def _progress(texts: Iterable[str], show: bool) -> Iterable[str]:
    if not show:
        return texts
    from rich.progress import track

    total = len(texts) if isinstance(texts, Sized) else None
    return track(texts, total=total, description="BM25: tokenizing", transient=True)
