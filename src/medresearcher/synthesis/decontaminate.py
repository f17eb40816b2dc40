"""Decontamination: training questions that copy, paraphrase or share the answer of an
evaluation item (issue 15 §3).

Synthetic QA built from public knowledge (Orphanet, HPO…) can land on the very questions a
benchmark later scores (paper §5: MedBrowseComp, GAIA, xbench-DeepSearch, our held-out QA).
A training item is flagged against an evaluation item by any of four signals, all computed on
text normalised by :func:`~medresearcher.grading.normalise.normalise_answer` (case, accents,
punctuation, possessives folded) and cut into word n-grams by
:func:`~medresearcher.qa.near_duplicates.shingles` (each CJK character is a word):

``ngram``
    The share of the evaluation question's word ``ngram``-grams (default 8) found in the
    training question reaches ``overlap_threshold`` (0.5). Containment, not Jaccard: a
    training question that embeds a benchmark question in more text is still a copy.
``ngram13``
    Any word 13-gram shared by the two questions (both at least 13 words long). This is the
    rule of GPT-3 (Brown et al. 2020, App. C: an example is dirty when it shares a 13-gram
    with the training data); Llama 2 (Touvron et al. 2023, App. A.6) counts tokens covered by
    shared spans of ≥ 10 tokens instead. Long shared spans are never chance.
``shingle``
    The share of the evaluation question's content-word 3-grams (a short list of function
    words removed) found in the training question reaches ``shingle_threshold`` (0.5).
    Paraphrases that change a few words and swap a clause keep most content 3-grams while
    breaking every 8-gram. Questions with fewer than ``min_shingles`` content 3-grams are
    too short to judge this way ("What is the inheritance of X?" shares its wording with
    every question of its template) and are left to the other signals.
``answer_entity``
    Same normalised answer (or alias) AND at least one shared entity: for QA records the
    chain's entity ids and, when a name lookup is given, their names; for every item the
    capitalised terms and identifiers (``ORPHA:558``, ``HP:0001250``, gene symbols) of its
    question. A question reworded beyond recognition still teaches its answer when it
    starts from the same entity.

N-grams that recur in two evaluation items, or in training questions with many different
answers, are template wording, not a copy, and are left out of all three overlap signals
(:func:`_drop_boilerplate`); on a few dozen template questions this cannot be learnt yet and
the 13-gram rule flags template phrases: turn it off there (``shared_13gram=False``).

The report (:class:`DecontaminationReport`) is written as JSON by ``medresearcher data
decontaminate``; evaluation runs list the reports whose evaluation file matches theirs by
sha256 (:func:`checked_training_sets`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from medresearcher.evaluation.items import BenchmarkItem
from medresearcher.grading.normalise import normalise_answer
from medresearcher.qa.near_duplicates import shingles
from medresearcher.schema import QARecord, Trajectory

__all__ = [
    "ContaminationFlag",
    "DecontaminationReport",
    "EvalSetSummary",
    "TrainingText",
    "checked_training_sets",
    "decontaminate",
    "entity_terms",
    "file_sha256",
    "report_markdown",
    "training_text",
]

Signal = Literal["ngram", "ngram13", "shingle", "answer_entity"]
_GPT3_NGRAM = 13

# Function words dropped before the content 3-grams (English question wording).
_STOPWORDS = frozenset(
    re.findall(
        r"\S+",
        "a an the of in on at to for from by with and or but not no is are was were be been being "
        "this that these those it its which what who whom whose when where why how does do did "
        "has have had can could may might should would will shall than then there their they "
        "them as into also such same other any each one some all both only very",
    )
)
# Capitalised words that name no entity: question words and the names of the sources
# every synthesised question cites.
_GENERIC_TERMS = frozenset(
    re.findall(
        r"\S+",
        "what which who whom whose when where why how this that these those it its the a an in "
        "on of for from start identify name give find is are was does do patients patient "
        "disease disorder gene orphanet omim hpo mondo pubmed ncbi uniprot i",
    )
) | {"disease ontology"}
# Database ids (ORPHA:558, HP:0001250) and codes mixing letters and digits (17p12, NCT02122952).
_IDENTIFIER = re.compile(
    r"\b[A-Za-z]{1,12}[:_]\d[\w.]*\b|\b(?=[^\W_]*\d)(?=[^\W_]*[A-Za-z])[^\W_]{3,}\b"
)
_CAPITALISED_RUN = re.compile(r"[A-Z][\w'’\-]*(?:[ \t]+[A-Z0-9][\w'’\-]*)*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n)\s*[\"“(]*$")


@dataclass(frozen=True)
class TrainingText:
    """One training item as decontamination sees it (from a QA record or a trajectory)."""

    item_id: str
    question: str
    answer: str | None = None
    aliases: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    qa_id: str | None = None


class ContaminationFlag(BaseModel):
    """One training item found too close to one evaluation item by one signal."""

    train_id: str
    qa_id: str | None = None
    eval_set: str
    eval_item_id: str
    signal: Signal
    score: float = Field(description="Share of the eval item's n-grams found; 1.0 for answers.")
    detail: str | None = Field(default=None, description="Shared answer and entity, if any.")


class EvalSetSummary(BaseModel):
    """Counts for one evaluation set, and the file it was read from."""

    name: str = Field(description="The label of the set (NAME of --against NAME:PATH).")
    benchmark: str | None = Field(default=None, description="The loader that read it.")
    path: str | None = None
    sha256: str | None = Field(default=None, description="Of the file (a folder: its files).")
    items: int
    flagged_train: int = Field(description="Training items flagged against this set.")
    flagged_eval: int = Field(description="Evaluation items some training item hit.")
    by_signal: dict[str, int] = Field(default_factory=dict, description="Flags per signal.")


class DecontaminationReport(BaseModel):
    """What ``data decontaminate`` found: read by eval runs and the dataset card."""

    train_file: str | None = None
    train_sha256: str | None = None
    train_items: int
    parameters: dict[str, Any]
    eval_sets: dict[str, EvalSetSummary]
    flagged_train_ids: list[str] = Field(description="Sorted; every id flagged by any signal.")
    flags: list[ContaminationFlag]
    created_at: str


# -- text ------------------------------------------------------------------------------------


def _normalised(text: str) -> str:
    return normalise_answer(text or "")


def _content(norm: str) -> str:
    return " ".join(w for w in norm.split() if w not in _STOPWORDS)


def entity_terms(text: str) -> set[str]:
    """Normalised capitalised terms and identifiers of ``text``: the entities a question names.

    A run of capitalised words is one term ("Anderson-Fabry Disease"); a question word that
    opens a sentence is dropped from its run, a lone capitalised word opening a sentence is
    dropped unless it looks like a symbol (all capitals or digits), and source names
    ("Orphanet") are not entities.
    """
    terms: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        terms.add(_normalised(match.group()))
    masked = _IDENTIFIER.sub(lambda m: " " * len(m.group()), text)
    for match in _CAPITALISED_RUN.finditer(masked):
        words = match.group().split()
        at_start = bool(_SENTENCE_START.search(masked[: match.start()]))
        if at_start:
            if len(words) == 1 and not (words[0].isupper() or any(c.isdigit() for c in words[0])):
                continue
            while words and _normalised(words[0]) in _GENERIC_TERMS:
                words = words[1:]
        term = _normalised(" ".join(words))
        if term and term not in _GENERIC_TERMS and len(term) > 1:
            terms.add(term)
    return terms


def _shares_entity(a: set[str], b: set[str]) -> str | None:
    """A term of ``a`` equal to one of ``b``, or a multi-word one inside it as whole words."""
    for x in sorted(a):
        for y in b:
            short, long = (x, y) if len(x) <= len(y) else (y, x)
            if short == long or (" " in short and f" {short} " in f" {long} "):
                return x if x == short else y
    return None


# -- training items --------------------------------------------------------------------------


def training_text(
    record: QARecord | Trajectory | TrainingText, names: Callable[[str], str | None] | None = None
) -> TrainingText:
    """The question, answer and entities of a QA record or a trajectory.

    ``names`` maps a KG id to its name (e.g. a :class:`~medresearcher.kg.store.GraphStore`
    lookup); without it a QA record's entities are its chain ids only. A trajectory's answer
    is its final answer, its id its own (``qa_id`` kept for the report).
    """
    if isinstance(record, TrainingText):
        return record
    if isinstance(record, QARecord):
        ids = [x for i, x in enumerate(record.chain) if i % 2 == 0]
        ids += [record.answer_id] if record.answer_id else []
        ids += list(record.placeholders.values())
        entities = list(dict.fromkeys(ids))
        if names is not None:
            entities += [n for n in (names(i) for i in dict.fromkeys(ids)) if n]
        return TrainingText(
            record.id,
            record.question,
            record.answer,
            tuple(record.answer_aliases),
            tuple(entities),
            record.id,
        )
    return TrainingText(record.id, record.question, record.final_answer, (), (), record.qa_id)


# -- the index of one evaluation set ---------------------------------------------------------


@dataclass
class _EvalIndex:
    items: list[BenchmarkItem]
    grams: list[dict[str, frozenset[str]]] = field(default_factory=list)
    postings: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    size: dict[str, list[int]] = field(default_factory=dict)
    answers: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    entities: list[set[str]] = field(default_factory=list)


_OVERLAP_SIGNALS = ("ngram", "ngram13", "shingle")


def _grams(norm: str, ngram: int) -> dict[str, frozenset[str]]:
    """The question's word ``ngram``-grams, 13-grams and content 3-grams (none when the text
    is too short for the size)."""
    grams = {
        "ngram": shingles(norm, ngram),
        "ngram13": shingles(norm, _GPT3_NGRAM),
        "shingle": shingles(_content(norm), 3),
    }
    for signal, size in (("ngram13", _GPT3_NGRAM), ("shingle", 3)):
        if any(g.count(" ") != size - 1 for g in grams[signal]):
            grams[signal] = frozenset()
    return grams


def _index(items: list[BenchmarkItem], ngram: int) -> _EvalIndex:
    index = _EvalIndex(items)
    index.postings = {s: defaultdict(list) for s in _OVERLAP_SIGNALS}
    for position, item in enumerate(items):
        index.grams.append(_grams(_normalised(item.question), ngram))
        for signal, grams in index.grams[-1].items():
            for gram in grams:
                index.postings[signal][gram].append(position)
        golds = {_normalised(a) for a in (item.gold, *item.aliases)} - {""}
        for gold in golds:
            index.answers[gold].append(position)
        index.entities.append(entity_terms(item.question) - golds)
    return index


def _drop_boilerplate(
    index: _EvalIndex, train_df: Mapping[str, Counter[str]], train_limit: int, min_shingles: int
) -> None:
    """Forget the n-grams that recur in two evaluation items, or whose evaluation item and
    training questions together have ``train_limit`` distinct answers: template wording
    ("with a clinical feature annotated to 9 disorders") is shared by unrelated questions and
    would flag every one. Scores are shares of the distinctive n-grams that remain."""
    for signal in _OVERLAP_SIGNALS:
        postings = index.postings[signal]
        common = {
            gram
            for gram, where in postings.items()
            if len(set(where)) >= 2 or train_df[signal][gram] + 1 >= train_limit
        }
        for gram in common:
            del postings[gram]
        index.size[signal] = [len(g[signal] - common) for g in index.grams]
        if signal == "shingle":  # too few distinctive 3-grams to judge a paraphrase by
            small = [i for i, n in enumerate(index.size[signal]) if n < min_shingles]
            for gram, where in list(postings.items()):
                postings[gram] = [p for p in where if p not in small]
    index.grams = []


def _matches(
    text: TrainingText, index: _EvalIndex, ngram: int, thresholds: Mapping[str, float], **opts
) -> Iterable[tuple[int, Signal, float, str | None]]:
    grams = _grams(_normalised(text.question), ngram)
    for signal in _OVERLAP_SIGNALS:
        hits = Counter(p for g in grams[signal] for p in index.postings[signal].get(g, ()))
        for position, shared in hits.items():
            score = shared / index.size[signal][position]
            if score >= thresholds[signal]:
                yield position, signal, round(score, 4), None  # type: ignore[misc]
    if not opts["answer_entity"] or not text.answer:
        return
    golds = {_normalised(a) for a in (text.answer, *text.aliases)} - {""}
    mine = ({_normalised(e) for e in text.entities} | entity_terms(text.question)) - golds - {""}
    for position in sorted({p for g in golds for p in index.answers.get(g, ())}):
        shared = _shares_entity(mine, index.entities[position])
        if shared is not None:
            answer = _normalised(index.items[position].gold)
            yield position, "answer_entity", 1.0, f"answer {answer!r}, entity {shared!r}"


def decontaminate(
    train_items: Iterable[QARecord | Trajectory | TrainingText],
    eval_sets: Mapping[str, list[BenchmarkItem]],
    *,
    ngram: int = 8,
    overlap_threshold: float = 0.5,
    shingle_threshold: float = 0.5,
    min_shingles: int = 3,
    boilerplate_share: float = 0.01,
    boilerplate_min: int = 3,
    shared_13gram: bool = True,
    answer_entity: bool = True,
    names: Callable[[str], str | None] | None = None,
    eval_files: Mapping[str, tuple[str, str | Path]] | None = None,
    train_file: str | Path | None = None,
) -> DecontaminationReport:
    """Flag training items too close to any evaluation item (rules in the module docstring).

    Parameters
    ----------
    train_items:
        QA records, trajectories or :class:`TrainingText`.
    eval_sets:
        Label → benchmark items (:func:`~medresearcher.evaluation.loaders.load_benchmark`).
    ngram, overlap_threshold:
        The ``ngram`` signal: word n-gram size and the share of the evaluation question's
        n-grams that must recur in the training question.
    shingle_threshold, min_shingles:
        The ``shingle`` signal on content-word 3-grams, and the fewest an evaluation
        question needs for it.
    boilerplate_share, boilerplate_min:
        An n-gram found in training questions with this share of the distinct training
        answers (and at least ``boilerplate_min`` of them), or in two evaluation items, is
        template wording and does not count (:func:`_drop_boilerplate`). Counting answers,
        not questions, keeps paraphrases of one question (one answer) from hiding each other.
    shared_13gram:
        Whether any shared 13-gram flags (GPT-3's rule). Off for small sets of template
        questions, whose template wording cannot yet be told from a copy.
    answer_entity:
        Whether same answer + shared entity is a signal.
    names:
        KG id → name, to compare a QA record's chain by names as well as ids.
    eval_files, train_file:
        Label → (benchmark, path) and the training file, hashed into the report.
    """
    if ngram < 1 or not 0 < overlap_threshold <= 1 or not 0 < shingle_threshold <= 1:
        raise ValueError("ngram must be ≥ 1 and both thresholds in (0, 1]")
    thresholds = {
        "ngram": overlap_threshold,
        "ngram13": 1e-9 if shared_13gram else 2.0,
        "shingle": shingle_threshold,
    }
    indexes = {name: _index(items, ngram) for name, items in eval_sets.items()}
    texts = [training_text(r, names) for r in train_items]
    # One answer per distinct question (rollouts of one question collapse into one).
    questions: dict[str, str] = {}
    for t in texts:
        questions.setdefault(_normalised(t.question), _normalised(t.answer or t.question))
    train_limit = max(boilerplate_min, math.ceil(boilerplate_share * len(set(questions.values()))))
    for index in indexes.values():
        answers_of: dict[str, dict[str, set[str]]] = {s: defaultdict(set) for s in _OVERLAP_SIGNALS}
        for question, answer in questions.items():
            for signal, grams in _grams(question, ngram).items():
                for gram in grams:
                    if gram in index.postings[signal]:
                        answers_of[signal][gram].add(answer)
        train_df = {s: Counter({g: len(a) for g, a in d.items()}) for s, d in answers_of.items()}
        _drop_boilerplate(index, train_df, train_limit, min_shingles)
    flags: list[ContaminationFlag] = []
    for text in texts:
        for name, index in indexes.items():
            for position, signal, score, detail in _matches(
                text,
                index,
                ngram,
                thresholds,
                min_shingles=min_shingles,
                answer_entity=answer_entity,
            ):
                flags.append(
                    ContaminationFlag(
                        train_id=text.item_id,
                        qa_id=text.qa_id,
                        eval_set=name,
                        eval_item_id=index.items[position].item_id,
                        signal=signal,
                        score=score,
                        detail=detail,
                    )
                )
    summaries: dict[str, EvalSetSummary] = {}
    for name, items in eval_sets.items():
        mine = [f for f in flags if f.eval_set == name]
        benchmark, path = (eval_files or {}).get(name, (None, None))
        summaries[name] = EvalSetSummary(
            name=name,
            benchmark=benchmark,
            path=str(path) if path is not None else None,
            sha256=file_sha256(path) if path is not None else None,
            items=len(items),
            flagged_train=len({f.train_id for f in mine}),
            flagged_eval=len({f.eval_item_id for f in mine}),
            by_signal=dict(Counter(f.signal for f in mine)),
        )
    return DecontaminationReport(
        train_file=str(train_file) if train_file is not None else None,
        train_sha256=file_sha256(train_file) if train_file is not None else None,
        train_items=len(texts),
        parameters={
            "ngram": ngram,
            "overlap_threshold": overlap_threshold,
            "ngram13": _GPT3_NGRAM if shared_13gram else None,
            "shingle": 3,
            "shingle_threshold": shingle_threshold,
            "min_shingles": min_shingles,
            "boilerplate": {
                "eval_items": 2,
                "train_share": boilerplate_share,
                "train_min": boilerplate_min,
            },
            "answer_entity": answer_entity,
            "entity_names": names is not None,
        },
        eval_sets=summaries,
        flagged_train_ids=sorted({f.train_id for f in flags}),
        flags=flags,
        created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


# -- files -----------------------------------------------------------------------------------


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes; of a folder, of its files' relative paths and bytes in order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def checked_training_sets(workspace: str | Path, eval_file: str | Path) -> list[dict[str, Any]]:
    """The decontamination reports in ``<workspace>/decontamination/`` made against
    ``eval_file`` (same sha256): what an evaluation run records as checked against it."""
    folder = Path(workspace) / "decontamination"
    if not folder.is_dir() or not Path(eval_file).exists():
        return []
    sha = file_sha256(eval_file)
    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")):
        try:
            report = DecontaminationReport.model_validate(json.loads(path.read_text("utf-8")))
        except (ValueError, OSError):
            continue
        for summary in report.eval_sets.values():
            if summary.sha256 == sha:
                found.append(
                    {
                        "report": str(path),
                        "train_file": report.train_file,
                        "train_sha256": report.train_sha256,
                        "eval_set": summary.name,
                        "flagged_train": summary.flagged_train,
                        "created_at": report.created_at,
                    }
                )
    return found


def report_markdown(report: DecontaminationReport, *, max_flags: int = 50) -> str:
    """The report as Markdown: parameters, counts per evaluation set, the first flags."""
    p = report.parameters
    lines = [
        f"# Decontamination of {report.train_file or 'training items'}",
        "",
        f"{report.train_items} training items, {len(report.flagged_train_ids)} flagged "
        f"({report.created_at}).",
        "",
        f"Rules: {p['ngram']}-gram containment ≥ {p['overlap_threshold']}; any shared "
        f"{p['ngram13'] or 'no'}-gram (GPT-3 practice); content 3-gram containment ≥ "
        f"{p['shingle_threshold']} (eval questions with ≥ {p['min_shingles']} of them); "
        f"same answer + shared entity: {'on' if p['answer_entity'] else 'off'}.",
        "",
        "| eval set | benchmark | items | flagged training | eval items hit | by signal | sha256 |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for s in report.eval_sets.values():
        signals = ", ".join(f"{k} {v}" for k, v in sorted(s.by_signal.items())) or "-"
        lines.append(
            f"| {s.name} | {s.benchmark or '-'} | {s.items} | {s.flagged_train} | "
            f"{s.flagged_eval} | {signals} | {(s.sha256 or '-')[:16]} |"
        )
    if report.flags:
        lines += ["", "| training id | eval set | eval item | signal | score | detail |"]
        lines.append("|---|---|---|---|---:|---|")
        for f in report.flags[:max_flags]:
            lines.append(
                f"| {f.train_id} | {f.eval_set} | {f.eval_item_id} | {f.signal} | "
                f"{f.score:.2f} | {f.detail or ''} |"
            )
        if len(report.flags) > max_flags:
            lines.append(f"\n… and {len(report.flags) - max_flags} more flags in the JSON report.")
    return "\n".join(lines) + "\n"
