"""Rare-entity mining: the seeds of question synthesis (MedResearcher-R1 §3.1.1).

The paper seeds every question with a *rare* entity: mention rate below τ = 10⁻⁶ in a large
medical corpus (30 M PubMed abstracts), kept only when an LLM judges it clinically
significant (typos, generic words, non-medical terms dropped). Here:
:class:`MentionMatcher` (Aho–Corasick, word boundaries) → :func:`mine_rare_entities`
(streamed counts, ``0 < mentions / tokens < τ``) → :func:`filter_candidates` (the LLM) →
:func:`write_seeds` (resumable JSONL).

τ and corpus size: one mention has rate ``1 / tokens``. On the paper's ~7·10⁹ tokens,
τ = 10⁻⁶ means fewer than ~7,000 mentions; the demo corpus has under 10⁶ tokens, so one
mention is already above 10⁻⁶ and nothing qualifies. Choose τ from the rate scale that
:meth:`RarityReport.describe` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from medresearcher.kg.mentions import Match, MentionMatcher
from medresearcher.llm.errors import StructuredOutputError
from medresearcher.schema import Document, Entity
from medresearcher.workspace.jsonl import JsonlWriter

if TYPE_CHECKING:
    from medresearcher.llm.gateway import LLMGateway

__all__ = [
    "DEFAULT_TAU",
    "FILTER_PROMPT",
    "RARE_TYPES",
    "Match",
    "MentionMatcher",
    "RareCandidate",
    "RareVerdict",
    "RarityReport",
    "filter_candidates",
    "mine_rare_entities",
    "select_rare",
    "write_seeds",
]

DEFAULT_TAU = 1e-6
RARE_TYPES: tuple[str, ...] = ("disease", "gene", "phenotype", "drug", "pathogen")


@dataclass(frozen=True)
class RareCandidate:
    """An entity whose corpus mention rate is below τ."""

    entity_id: str
    name: str
    type: str
    mentions: int
    rate: float


@dataclass
class RarityReport:
    """What :func:`mine_rare_entities` measured: corpus size, counts and candidates."""

    tokens: int
    documents: int
    counts: dict[str, int]
    candidates: list[RareCandidate]
    tau: float = DEFAULT_TAU
    min_mentions: int = 1

    @property
    def rate_of_one(self) -> float:
        """The rate of a single mention, ``1 / tokens``: the smallest non-zero rate."""
        return 1.0 / self.tokens if self.tokens else float("inf")

    def describe(self) -> str:
        """For people: the corpus, the rate scale and what τ selects."""
        mentioned = sum(1 for n in self.counts.values() if n > 0)
        least = max(1, self.min_mentions)
        most = math.ceil(self.tau * self.tokens) - 1  # the most mentions below τ
        keeps = f"{least:,} to {most:,} mentions" if most >= least else "no mention count"
        text = (
            f"{self.documents:,} documents, {self.tokens:,} tokens, {mentioned:,} entities "
            f"mentioned.\nRate scale: 1 mention = {self.rate_of_one:.2e}; τ = {self.tau:.1e} "
            f"keeps {keeps}: {len(self.candidates):,} candidates."
        )
        if self.tau <= self.rate_of_one:
            text += (
                "\nτ is at or below the rate of one mention, so nothing can qualify (the "
                f"paper's 1e-6 assumes ~10⁹ tokens); try τ ≈ {10 * self.rate_of_one:.0e}."
            )
        return text


def mine_rare_entities(
    documents: Iterable[Document | str],
    entities: Iterable[Entity],
    *,
    tau: float = DEFAULT_TAU,
    allowed_types: Sequence[str] = RARE_TYPES,
    min_mentions: int = 1,
    matcher: MentionMatcher | None = None,
    progress: bool = False,
) -> RarityReport:
    """Count entity mentions over a corpus and select the rare ones (§3.1.1).

    Parameters
    ----------
    documents:
        The corpus, streamed: documents (title and text) or strings; no text is kept,
        so memory stays flat whatever the corpus size.
    entities:
        The knowledge-graph entities; names and aliases are matched.
    tau:
        The threshold τ: a candidate has ``0 < mentions / tokens < tau``. The paper's
        10⁻⁶ fits 30 M abstracts; for a small corpus see :meth:`RarityReport.describe`.
    allowed_types:
        Entity types that may be seeds.
    min_mentions:
        The fewest mentions of a candidate.
    matcher:
        A prebuilt matcher over ``entities``.
    progress:
        Show a progress bar.

    Returns
    -------
    RarityReport
        Tokens (whitespace-separated), documents, mentions per entity id, and the
        candidates sorted by rate, then id.

    References
    ----------
    MedResearcher-R1 §3.1.1: rare entities (mention rate < τ = 10⁻⁶) as seeds.
    """
    entity_list = list(entities)
    matcher = matcher or MentionMatcher(entity_list)
    counts: Counter[str] = Counter()
    tokens = n_docs = 0
    with contextlib.ExitStack() as stack:
        advance = None
        if progress:
            from medresearcher.workspace.progress import progress_bar

            bar = stack.enter_context(progress_bar(transient=True))
            advance = functools.partial(bar.advance, bar.add_task("counting mentions", total=None))
        for doc in documents:
            text = doc if isinstance(doc, str) else f"{doc.title}\n{doc.text}"
            tokens += len(text.split())
            n_docs += 1
            counts.update(matcher.count(text))
            if advance is not None:
                advance()
    return select_rare(
        counts,
        entity_list,
        tokens=tokens,
        documents=n_docs,
        tau=tau,
        allowed_types=allowed_types,
        min_mentions=min_mentions,
    )


def select_rare(
    counts: Mapping[str, int],
    entities: Iterable[Entity],
    *,
    tokens: int,
    documents: int,
    tau: float = DEFAULT_TAU,
    allowed_types: Sequence[str] = RARE_TYPES,
    min_mentions: int = 1,
) -> RarityReport:
    """The rare candidates of mention ``counts`` over a corpus of ``tokens`` (§3.1.1).

    The selection step of :func:`mine_rare_entities`, on its own so that counts made
    elsewhere — one PubMed baseline file per task on a cluster, summed — select the same
    candidates as one pass over the whole corpus.
    """
    allowed, least = set(allowed_types), max(1, min_mentions)
    candidates = {
        e.id: RareCandidate(e.id, e.name, e.type, counts.get(e.id, 0), counts.get(e.id, 0) / tokens)
        for e in entities
        if e.type in allowed and counts.get(e.id, 0) >= least and counts.get(e.id, 0) / tokens < tau
    }
    ordered = sorted(candidates.values(), key=lambda c: (c.rate, c.entity_id))
    return RarityReport(tokens, documents, dict(counts), ordered, tau, min_mentions)


# -- the LLM filter -------------------------------------------------------------------------

FILTER_PROMPT = """\
You curate seed entities for hard medical research questions. Each candidate below is a \
name from a medical knowledge graph that is rarely mentioned in the medical literature \
(mention rate below {tau:.0e}).

Keep a candidate when it is a clinically significant rare medical entity: a rare disease, \
syndrome, gene, drug, pathogen or clinical finding that a clinician or researcher could \
ask about. Drop it when it is a typo or misspelling, a generic or ambiguous word, an \
abbreviation that mostly means something else, or not a medical term.

Give one verdict per candidate, using its id exactly as written: keep (true or false) and a \
short reason.

Candidates:
{candidates}
"""


class _Verdict(BaseModel):
    id: str = Field(description="The candidate id, exactly as given.")
    keep: bool = Field(description="True for a clinically significant rare medical entity.")
    reason: str = Field(description="One short sentence.")


class _FilterAnswer(BaseModel):
    verdicts: list[_Verdict]


@dataclass(frozen=True)
class RareVerdict:
    """The filter's decision on one candidate; ``keep`` is None when the filter failed."""

    entity_id: str
    keep: bool | None
    reason: str

    @property
    def status(self) -> str:
        """``kept``, ``dropped`` or ``failed``."""
        return {True: "kept", False: "dropped", None: "failed"}[self.keep]


async def filter_candidates(
    candidates: Sequence[RareCandidate],
    gateway: LLMGateway,
    endpoint: str,
    *,
    batch_size: int = 20,
    context: Mapping[str, str] | None = None,
    tau: float = DEFAULT_TAU,
) -> list[RareVerdict]:
    """Ask a model which candidates are clinically significant (the §3.1.1 LLM filter).

    Parameters
    ----------
    candidates:
        From :attr:`RarityReport.candidates`.
    gateway, endpoint:
        The model, asked through :meth:`LLMGateway.structured`.
    batch_size:
        Candidates per request; batches run concurrently (the gateway limits how many).
    context:
        Optional text per entity id shown with its candidate (a definition, a sentence).
    tau:
        Quoted in the prompt.

    Returns
    -------
    list of RareVerdict
        One per candidate, in order. A batch whose answer does not validate (after the
        repair round) gets ``keep=None`` with a reason "filter failed: ...", and so does a
        candidate the answer leaves out; verdicts on ids not asked about are ignored.

    Raises
    ------
    LLMCallError
        The endpoint failed for good; a re-run gets answered batches from the cache.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batches = [candidates[i : i + batch_size] for i in range(0, len(candidates), batch_size)]
    results = await asyncio.gather(
        *(_ask(batch, gateway, endpoint, context or {}, tau) for batch in batches),
        return_exceptions=True,
    )
    verdicts: list[RareVerdict] = []
    for batch, result in zip(batches, results, strict=True):
        if isinstance(result, StructuredOutputError):
            verdicts.extend(
                RareVerdict(c.entity_id, None, f"filter failed: {result}") for c in batch
            )
        elif isinstance(result, BaseException):
            raise result
        else:
            verdicts.extend(result)
    return verdicts


async def _ask(
    batch: Sequence[RareCandidate],
    gateway: LLMGateway,
    endpoint: str,
    context: Mapping[str, str],
    tau: float,
) -> list[RareVerdict]:
    lines = []
    for c in batch:
        line = f"- id: {c.entity_id} | name: {c.name} | type: {c.type} | mentions: {c.mentions}"
        if c.entity_id in context:
            line += f" | context: {' '.join(context[c.entity_id].split())}"
        lines.append(line)
    prompt = FILTER_PROMPT.format(tau=tau, candidates="\n".join(lines))
    answer = await gateway.structured(
        endpoint, [{"role": "user", "content": prompt}], _FilterAnswer
    )
    given = {v.id.strip(): v for v in answer.verdicts}
    out = []
    for c in batch:
        v = given.get(c.entity_id)
        if v is None:
            out.append(RareVerdict(c.entity_id, None, "filter failed: no verdict in the answer"))
        else:
            out.append(RareVerdict(c.entity_id, v.keep, v.reason))
    return out


def write_seeds(
    path: str | os.PathLike[str],
    report: RarityReport,
    verdicts: Iterable[RareVerdict] | None = None,
) -> int:
    """Write one JSONL line per candidate, resumably: ids already in the file are skipped.

    A line holds ``entity_id, name, type, mentions, rate, tau, filter, reason``; ``filter``
    is ``kept``, ``dropped``, ``failed`` or ``not run``. Returns the lines written.
    """
    by_id = {v.entity_id: v for v in verdicts or ()}
    with JsonlWriter(path, key="entity_id", fsync=False) as out:
        for c in report.candidates:
            verdict = by_id.get(c.entity_id)
            out.write(
                {
                    "entity_id": c.entity_id,
                    "name": c.name,
                    "type": c.type,
                    "mentions": c.mentions,
                    "rate": c.rate,
                    "tau": report.tau,
                    "filter": verdict.status if verdict else "not run",
                    "reason": verdict.reason if verdict else None,
                }
            )
        return out.written
