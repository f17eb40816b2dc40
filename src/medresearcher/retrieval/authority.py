"""Clinical authority Auth(d) ∈ [0, 1] of a document (MedResearcher-R1 §2.2).

The paper's retriever scores Score(d, q) = λ·Rel(d, q) + (1 − λ)·Auth(d), with Auth the
clinical authority of the source ("impact, guideline status"). Here Auth is the weighted
mean of the components a document has:

- **type**: a prior by source type — practice guideline 1.0, FDA label 0.95, systematic
  review or meta-analysis 0.9, RCT 0.8, curated reference (Orphanet, Disease Ontology)
  0.75, other clinical study 0.6–0.7, narrative review 0.55, case report 0.35, preprint
  0.2, web page 0.1, retracted 0 (``[retrieval.authority] type_prior``);
- **impact**: log(1 + IF) / log(1 + cap) from a journal impact table the user provides
  (by ISSN or journal name); absent when the journal is not in the table;
- **recency**: 0.5 ** (age / half-life), absent when the year is unknown.

A missing component is left out of the mean rather than counted as zero, so a curated
definition without a journal is not punished for having none.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

import numpy as np

from medresearcher.config import AuthoritySettings
from medresearcher.errors import InputError
from medresearcher.schema import Document

__all__ = [
    "authority_score",
    "authority_scores",
    "document_journal",
    "journal_impacts",
    "journal_key",
    "load_impact_table",
]

FALLBACK_TYPE = "article"


def journal_key(name_or_issn: str) -> str:
    """The lookup key of a journal: an ISSN as ``NNNN-NNNN``, or a case-folded title."""
    text = name_or_issn.strip()
    compact = text.replace("-", "")
    if len(compact) == 8 and compact[:7].isdigit() and compact[7] in "0123456789Xx":
        return f"{compact[:4]}-{compact[4:]}".upper()
    return " ".join(text.casefold().replace(".", " ").split())


def document_journal(document: Document) -> str:
    """The lookup key of the document's journal (its ISSN if it has one, else its title),
    '' when it names none: what the indexes store per document for :func:`journal_impacts`."""
    journal = document.metadata.get("issn") or document.metadata.get("journal") or ""
    return journal_key(journal) if isinstance(journal, str) and journal else ""


def journal_impacts(journals: Sequence[str], table: Mapping[str, float]) -> np.ndarray:
    """The impact factor of each journal key in ``table`` (NaN where unknown or '')."""
    return np.array([table.get(j, np.nan) if j else np.nan for j in journals])


def load_impact_table(path: str | Path) -> dict[str, float]:
    """Journal or ISSN → impact factor, from a CSV or TSV with a header row.

    Columns: ``issn`` and/or ``journal``, and ``impact_factor``. A bad number is an error
    naming the file and line.
    """
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;")
        reader = csv.DictReader(handle, dialect=dialect)
        fields = {name.strip().lower(): name for name in reader.fieldnames or []}
        if "impact_factor" not in fields or not ({"issn", "journal"} & set(fields)):
            raise InputError(f"{path}:1: need columns impact_factor and issn or journal")
        table: dict[str, float] = {}
        for number, row in enumerate(reader, start=2):
            raw = (row[fields["impact_factor"]] or "").strip()
            try:
                value = float(raw)
            except ValueError:
                raise InputError(f"{path}:{number}: impact_factor: not a number: {raw!r}") from None
            for column in ("issn", "journal"):
                if column in fields and (row[fields[column]] or "").strip():
                    table[journal_key(row[fields[column]])] = value
    return table


def authority_scores(
    source_types: Sequence[str],
    years: np.ndarray,
    impacts: np.ndarray,
    settings: AuthoritySettings,
    *,
    current_year: int | None = None,
) -> np.ndarray:
    """Auth for many documents at once (float32 in [0, 1]).

    Parameters
    ----------
    source_types:
        Each document's ``source_type``.
    years:
        Publication years; 0 where unknown.
    impacts:
        Journal impact factors; NaN where unknown.
    settings:
        Weights, priors, half-life and cap (``[retrieval.authority]``).
    current_year:
        "Now" for recency (default: this year), fixed in tests and benchmarks.
    """
    now = current_year or date.today().year
    fallback = settings.type_prior.get(FALLBACK_TYPE, 0.5)
    prior = np.array([settings.type_prior.get(t, fallback) for t in source_types], np.float64)
    years = np.asarray(years, dtype=np.float64)
    impacts = np.asarray(impacts, dtype=np.float64)

    total = settings.weight_type * prior
    weight = np.full(len(prior), settings.weight_type, dtype=np.float64)

    known_impact = ~np.isnan(impacts)
    impact = np.log1p(np.clip(np.nan_to_num(impacts), 0, None)) / math.log1p(settings.impact_cap)
    total += np.where(known_impact, settings.weight_impact * np.clip(impact, 0, 1), 0.0)
    weight += np.where(known_impact, settings.weight_impact, 0.0)

    known_year = years > 0
    age = np.clip(now - years, 0, None)
    recency = np.power(0.5, age / settings.recency_half_life_years)
    total += np.where(known_year, settings.weight_recency * recency, 0.0)
    weight += np.where(known_year, settings.weight_recency, 0.0)

    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(weight > 0, total / weight, prior)
    return np.clip(scores, 0.0, 1.0).astype(np.float32)


def authority_score(
    document: Document,
    settings: AuthoritySettings,
    *,
    impact_table: Mapping[str, float] | None = None,
    current_year: int | None = None,
) -> float:
    """Auth(d) of one document; see :func:`authority_scores` and the module docstring."""
    impact = journal_impact(document, impact_table or {})
    return float(
        authority_scores(
            [document.source_type],
            np.array([document.year or 0]),
            np.array([np.nan if impact is None else impact]),
            settings,
            current_year=current_year,
        )[0]
    )


def journal_impact(document: Document, table: Mapping[str, float]) -> float | None:
    """The impact factor of the document's journal, by ISSN first, then by title."""
    if not table:
        return None
    for field in ("issn", "journal"):
        value = document.metadata.get(field)
        if isinstance(value, str) and value and journal_key(value) in table:
            return table[journal_key(value)]
    return None
