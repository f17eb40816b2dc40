"""The one tokenizer of the lexical index: plain lower-cased tokens that keep medical names whole.

Why plain tokens: on our descriptive rare-disease queries, BM25 over plain tokens beat
BM25 over stemmed tokens with a full stopword list (MRR@10 .456 against .421,
``docs/measurements.md``), because the words that identify a rare disease are gene
symbols, hyphenated eponyms and cytogenetic bands, which stemmers and generic tokenizers
mangle: ``COL4A5`` must stay ``col4a5``, ``HLA-B27`` must stay ``hla-b27`` and ``22q11.2``
must stay ``22q11.2``.

What a token is: a run of letters or digits, joined into one token across internal
hyphens (``alpha-galactosidase``, ``1-9``) and across periods that precede a digit
(``22q11.2``, ``3.5``). Everything else (whitespace, parentheses, commas, slashes,
colons, semicolons, quotes, apostrophes, sentence-final periods) separates tokens. A
hyphenated token is emitted whole *and* as its parts, so a query that says ``Fabry``
matches a document that says ``Anderson-Fabry``. Accents are folded (``Sjögren`` →
``sjogren``) and Unicode dashes read as hyphens, so spelling variants meet.

Only the most common English function words are dropped (:data:`STOPWORDS`): they carry
no meaning for retrieval, and a query made only of them tokenizes to ``[]``, which the
retriever answers with an empty result instead of scoring every document at zero.

The regular expression does the scanning in C; Python only touches tokens, and only when
the text holds a hyphen does it look at each token twice. That keeps building an index
of millions of documents bounded by the regex engine, not by the interpreter.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["STOPWORDS", "TOKENIZER_VERSION", "tokenize"]

#: Bumped whenever :func:`tokenize` changes its output; stored in saved indexes so that an
#: index built with another tokenizer is rebuilt instead of silently mismatching queries.
TOKENIZER_VERSION = 1

#: The most frequent English function words (the top of any corpus frequency list).
#: Deliberately short: words like "not", "no", "without" or "type" carry clinical meaning
#: and are kept, and so is anything medical.
STOPWORDS: frozenset[str] = frozenset(
    {"the", "of", "and", "a", "an", "in", "to", "with", "is", "are", "by", "for", "or", "on"}
    | {"as", "at", "be", "that", "this", "which"}
)

# letters/digits ([^\W_]), joined across "-" before a letter/digit and "." before a digit.
_TOKEN = re.compile(r"[^\W_]+(?:(?:-|\.(?=\d))[^\W_]+)*")
# Unicode hyphens and dashes (U+2010-U+2015, minus sign) read as "-".
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"))
_COMBINING = re.compile(r"[\u0300-\u036f]+")


def _fold(text: str) -> str:
    """Dashes to ``-`` and accents removed; only called for non-ASCII text."""
    text = text.translate(_DASHES)
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text))


def tokenize(text: str) -> list[str]:
    """Split ``text`` into the lower-cased tokens the BM25 index stores and matches.

    Parameters
    ----------
    text : str
        Any text: a document (title and body) or a query.

    Returns
    -------
    list of str
        Tokens in text order. A hyphenated token is followed by its parts; stopwords
        (:data:`STOPWORDS`) are left out, also as parts. Empty for a text of only
        stopwords and punctuation.

    Examples
    --------
    >>> tokenize("Anderson-Fabry disease (GLA, HLA-B27) at 22q11.2; ages 1-9.")
    ['anderson-fabry', 'anderson', 'fabry', 'disease', 'gla', 'hla-b27', 'hla', 'b27', \
'22q11.2', 'ages', '1-9', '1', '9']
    >>> tokenize("the and of")
    []

    Notes
    -----
    No stemming: see the module docstring for the measurement behind this choice.

    References
    ----------
    .. [1] S. Robertson and H. Zaragoza, "The Probabilistic Relevance Framework: BM25 and
       Beyond", Foundations and Trends in Information Retrieval 3(4), 2009 — BM25 scores
       whatever tokens it is given; the tokenizer decides what can match.
    """
    if not text.isascii():
        text = _fold(text)
    tokens = _TOKEN.findall(text.lower())
    if "-" not in text:
        return [t for t in tokens if t not in STOPWORDS]
    out: list[str] = []
    for token in tokens:
        if token not in STOPWORDS:
            out.append(token)
        if "-" in token:
            out.extend(part for part in token.split("-") if part not in STOPWORDS)
    return out
