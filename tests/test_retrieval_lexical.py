"""The BM25 tokenizer and LexicalIndex: real rankings on a small medical corpus."""

from __future__ import annotations

import json
from pathlib import Path

import bm25s
import numpy as np
import pytest

from medresearcher.errors import ConfigError, InputError
from medresearcher.retrieval import lexical
from medresearcher.retrieval.lexical import LexicalIndex
from medresearcher.retrieval.tokenize import STOPWORDS, tokenize

CORPUS = [
    # 0
    "Fabry disease\nAnderson-Fabry disease is an X-linked lysosomal storage disorder caused by "
    "deficiency of alpha-galactosidase A (GLA gene), with angiokeratoma, acroparesthesia and "
    "progressive kidney failure.",
    # 1
    "Alport syndrome\nA hereditary glomerulonephritis with hematuria, sensorineural hearing "
    "loss and ocular lesions, most often due to COL4A5 variants.",
    # 2
    "22q11.2 deletion syndrome\nDiGeorge syndrome: congenital heart defects, hypocalcemia, "
    "thymic hypoplasia and palatal anomalies after a deletion at 22q11.2.",
    # 3
    "Asthma\nA common chronic inflammatory disease of the airways with wheezing, cough and "
    "reversible bronchospasm.",
    # 4
    "Ankylosing spondylitis\nChronic inflammatory arthritis of the spine and sacroiliac joints, "
    "strongly associated with HLA-B27.",
    # 5
    "Gaucher disease\nA lysosomal storage disease due to glucocerebrosidase deficiency (GBA1): "
    "hepatosplenomegaly, cytopenia and bone crises; onset at ages 1-9 in type 3.",
    # 6
    "Marfan syndrome\nA connective tissue disorder caused by FBN1 variants: tall stature, "
    "lens dislocation and aortic root dilatation.",
    # 7
    "Cystic fibrosis\nAn autosomal recessive disease caused by CFTR variants with chronic lung "
    "infection, pancreatic insufficiency and a sweat chloride above 60 mmol/L.",
]


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex.build(CORPUS)


# ---------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BRCA1 and COL4A5", ["brca1", "col4a5"]),
        ("HLA-B27 positive", ["hla-b27", "hla", "b27", "positive"]),
        ("Anderson-Fabry disease", ["anderson-fabry", "anderson", "fabry", "disease"]),
        ("alpha-galactosidase A", ["alpha-galactosidase", "alpha", "galactosidase"]),
        ("del 22q11.2, 3.5 mg/kg", ["del", "22q11.2", "3.5", "mg", "kg"]),
        ("ages 1-9.", ["ages", "1-9", "1", "9"]),
        ('(GBA1); "quoted": x/y', ["gba1", "quoted", "x", "y"]),
        ("End of sentence. Next", ["end", "sentence", "next"]),
        ("Sjögren syndrome", ["sjogren", "syndrome"]),
        ("Guillain\u2013Barré", ["guillain-barre", "guillain", "barre"]),
    ],
)
def test_tokenize_keeps_medical_names_whole(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_stopword_only_query_gives_no_tokens() -> None:
    assert tokenize("the of and which is a") == []
    assert tokenize("  ,;() ") == []
    assert {"not", "no", "without"}.isdisjoint(STOPWORDS)


# ------------------------------------------------------------------------------ ranking
@pytest.mark.parametrize(
    ("query", "expected_first"),
    [
        ("enzyme deficiency with angiokeratoma and kidney failure", 0),
        ("fabry", 0),
        ("COL4A5 hematuria hearing loss", 1),
        ("22q11.2 deletion heart defect", 2),
        ("wheezing cough airways", 3),
        ("HLA-B27 spine arthritis", 4),
        ("glucocerebrosidase hepatosplenomegaly", 5),
        ("FBN1 aortic root", 6),
        ("sweat chloride CFTR", 7),
    ],
)
def test_right_document_ranks_first(index: LexicalIndex, query: str, expected_first: int) -> None:
    ids, scores = index.search(query, 3)
    assert ids[0] == expected_first
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert np.all(np.diff(scores) <= 0) and np.all(scores > 0)


def test_hyphen_part_matches_and_whole_token_is_rarer(index: LexicalIndex) -> None:
    ids, _ = index.search("anderson", 5)
    assert ids.tolist() == [0]
    ids, _ = index.search("b27", 5)
    assert ids.tolist() == [4]


def test_allowed_mask_is_honoured(index: LexicalIndex) -> None:
    query = "lysosomal storage deficiency"
    ids, _ = index.search(query, 5)
    assert set(ids[:2].tolist()) == {0, 5}
    allowed = np.ones(index.n_docs, dtype=bool)
    allowed[0] = False
    ids, scores = index.search(query, 5, allowed=allowed)
    assert 0 not in ids.tolist()
    assert ids[0] == 5
    assert scores[0] == pytest.approx(index.scores(query)[5])
    none_allowed = np.zeros(index.n_docs, dtype=bool)
    assert index.search(query, 5, allowed=none_allowed)[0].size == 0
    with pytest.raises(ValueError, match="shape"):
        index.search(query, 5, allowed=np.ones(3, dtype=bool))


def test_unknown_or_stopword_query_is_empty(index: LexicalIndex) -> None:
    for query in ("zebrafish xylophone", "the of and", ""):
        ids, scores = index.search(query, 10)
        assert ids.size == 0 and scores.size == 0
        assert ids.dtype == np.int64
    assert not index.scores("zebrafish").any()
    assert index.search("fabry", 0)[0].size == 0


def test_scores_agree_with_search(index: LexicalIndex) -> None:
    query = "chronic inflammatory disease variants"
    all_scores = index.scores(query)
    assert all_scores.shape == (len(CORPUS),) and all_scores.dtype == np.float32
    ids, scores = index.search(query, 100)  # k above the number of matches
    assert ids.size == int((all_scores > 0).sum())
    np.testing.assert_array_equal(scores, all_scores[ids])
    assert set(np.flatnonzero(all_scores > 0).tolist()) == set(ids.tolist())
    top2, _ = index.search(query, 2)
    np.testing.assert_array_equal(top2, ids[:2])


def test_matrix_equals_bm25s_own_index() -> None:
    """Our streaming build reproduces bm25s.BM25.index bit for bit."""
    ours = LexicalIndex.build(CORPUS, k1=1.2, b=0.6)
    reference = bm25s.BM25(k1=1.2, b=0.6, method="lucene")
    reference.index([tokenize(t) for t in CORPUS], show_progress=False)
    for query in ("fabry kidney", "disease variants chronic", "22q11.2", "hla-b27 spine"):
        tokens = [t for t in tokenize(query) if t in reference.vocab_dict]
        np.testing.assert_array_equal(ours.scores(query), reference.get_scores(tokens))


def test_chunked_streaming_build_is_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = LexicalIndex.build(CORPUS)
    monkeypatch.setattr(lexical, "_CHUNK_TOKENS", 7)  # a chunk every document or so
    chunked = LexicalIndex.build(text for text in CORPUS)  # a generator is fine
    assert chunked.n_docs == whole.n_docs == len(CORPUS)
    for query in ("disease", "lysosomal deficiency", "col4a5 hearing"):
        np.testing.assert_array_equal(chunked.scores(query), whole.scores(query))


def test_documents_without_tokens_never_match() -> None:
    index = LexicalIndex.build(["the of", "fabry disease", ""])
    assert index.n_docs == 3
    ids, _ = index.search("fabry disease", 5)
    assert ids.tolist() == [1]


def test_save_load_round_trip(index: LexicalIndex, tmp_path: Path) -> None:
    index.save(tmp_path / "lex")
    meta = json.loads((tmp_path / "lex" / "lexical.json").read_text())
    assert meta["n_docs"] == len(CORPUS) and meta["method"] == "lucene"
    for mmap in (True, False):
        loaded = LexicalIndex.load(tmp_path / "lex", mmap=mmap)
        assert loaded.n_docs == index.n_docs and loaded.n_terms == index.n_terms
        for query in ("fabry", "COL4A5 hematuria", "chronic disease", "unknownword"):
            a_ids, a_scores = index.search(query, 5)
            b_ids, b_scores = loaded.search(query, 5)
            np.testing.assert_array_equal(a_ids, b_ids)
            np.testing.assert_array_equal(a_scores, b_scores)


def test_load_refuses_missing_or_stale_index(index: LexicalIndex, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no lexical index"):
        LexicalIndex.load(tmp_path / "nothing")
    index.save(tmp_path / "lex")
    meta_path = tmp_path / "lex" / "lexical.json"
    meta = json.loads(meta_path.read_text())
    meta["tokenizer_version"] = -1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="rebuild"):
        LexicalIndex.load(tmp_path / "lex")


def test_build_rejects_empty_corpus_and_bad_parameters() -> None:
    with pytest.raises(InputError):
        LexicalIndex.build([])
    with pytest.raises(ConfigError):
        LexicalIndex.build(CORPUS, b=1.5)
