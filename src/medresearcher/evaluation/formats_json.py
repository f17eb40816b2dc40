"""The JSON benchmark formats: our QA JSONL, GAIA, PubMedQA and any JSONL (paper §5).

``qa`` reads :class:`~medresearcher.schema.QARecord` lines and keeps their hops, paradigm,
specialties and difficulty as metadata for the breakdowns; ``gaia`` its ``metadata.jsonl``
(validation split: the test split hides its answers); ``pubmedqa`` PQA-L ``ori_pqal.json``
in the reasoning-required setting; ``jsonl`` any JSONL with configurable (dotted) fields.
All share the JSON reading below, whose errors name file:line:column.
:func:`~medresearcher.evaluation.loaders.load_benchmark` calls these.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medresearcher.errors import InputError
from medresearcher.evaluation.formats_common import Fields, Loaded, content_id, entry, open_text
from medresearcher.schema import QARecord

__all__ = ["load_gaia", "load_jsonl", "load_pubmedqa", "load_qa"]


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) of each non-blank line; an InputError names the bad line."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{path}:{number}:{exc.colno}: not valid JSON: {exc.msg}"
                ) from None
            if not isinstance(data, dict):
                raise InputError(f"{path}:{number}: a line must be a JSON object")
            yield number, data


def _read_json(path: Path) -> Any:
    try:
        with open_text(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None


# -- our QA JSONL ----------------------------------------------------------------------------


def load_qa(path: Path, fields: Fields) -> Loaded:
    """Items of our QA JSONL; the id is the QA record's id."""
    loaded: Loaded = []
    for line, data in _iter_jsonl(path):
        try:
            record = QARecord.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(record)"
            raise InputError(f"{path}:{line}: {where}: {first['msg']}") from None
        metadata = {
            "hops": record.hops,
            "paradigm": record.paradigm,
            "specialties": list(record.specialties),
            "strategy": record.strategy,
            "level": record.difficulty.level,
            "language": record.language,
            "sample_id": record.sample_id,
            "answer_id": record.answer_id,
            "checks_passed": record.passed,
        }
        loaded.append(
            entry(
                path,
                line,
                item_id=record.id,
                question=record.question,
                gold=record.answer,
                aliases=record.answer_aliases,
                metadata=metadata,
            )
        )
    return loaded


# -- GAIA ------------------------------------------------------------------------------------


def load_gaia(path: Path, fields: Fields) -> Loaded:
    """GAIA items of ``metadata.jsonl`` (or its folder); attached files by path."""
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        path = path / "metadata.jsonl"
        if not path.exists():
            raise InputError(f"{folder}: no metadata.jsonl in this GAIA folder")
    loaded: Loaded = []
    for line, data in _iter_jsonl(path):
        for key in ("task_id", "Question", "Final answer"):
            if data.get(key) in (None, ""):
                raise InputError(f"{path}:{line}: {key}: missing")
        gold = str(data["Final answer"]).strip()
        if gold == "?":
            raise InputError(
                f"{path}:{line}: Final answer: '?' (the test split hides its "
                "answers; grade on the validation split)"
            )
        level = data.get("Level")
        file_name = str(data.get("file_name") or "").strip() or None
        metadata: dict[str, Any] = {
            "level": int(level) if str(level).strip().isdigit() else level,
            "has_file": file_name is not None,
        }
        if file_name and (folder / file_name).exists():
            metadata["file_path"] = str(folder / file_name)
        loaded.append(
            entry(
                path,
                line,
                item_id=str(data["task_id"]),
                question=str(data["Question"]),
                gold=gold,
                file_name=file_name,
                metadata=metadata,
            )
        )
    return loaded


# -- PubMedQA --------------------------------------------------------------------------------


def _first_existing(folder: Path, stem: str) -> Path | None:
    return next((folder / n for n in (f"{stem}.gz", stem) if (folder / n).exists()), None)


def _pubmedqa_question(record: dict[str, Any], where: str) -> str:
    """The PQA-L reasoning-required setting: the question with the abstract minus its conclusion."""
    contexts, labels = record.get("CONTEXTS") or [], record.get("LABELS") or []
    if not isinstance(contexts, list) or not isinstance(labels, list):
        raise InputError(f"{where}.CONTEXTS: must be a list of paragraphs")
    paragraphs = [
        f"{labels[i]}: {text}" if i < len(labels) and labels[i] else str(text)
        for i, text in enumerate(contexts)
    ]
    question = str(record["QUESTION"]).strip()
    if paragraphs:
        question += "\n\nAbstract (without its conclusion):\n" + "\n".join(paragraphs)
    return question + "\n\nAnswer yes, no or maybe."


def load_pubmedqa(path: Path, fields: Fields) -> Loaded:
    """PubMedQA PQA-L items; ``split`` test/dev when the ground-truth file is beside it."""
    if path.is_dir():
        found = _first_existing(path, "ori_pqal.json")
        if found is None:
            raise InputError(f"{path}: no ori_pqal.json[.gz] in this PubMedQA folder")
        path = found
    data = _read_json(path)
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}: expected an object of PMID → record (ori_pqal.json)")
    if all(isinstance(value, str) for value in data.values()):
        raise InputError(f"{path}: this is a label file (PMID → label); give ori_pqal.json")
    truth = _first_existing(path.parent, "test_ground_truth.json")
    test_ids = set(_read_json(truth)) if truth else None
    loaded: Loaded = []
    for number, (pmid, record) in enumerate(data.items(), start=1):
        where = f"{path}: {pmid}"
        if not isinstance(record, dict):
            raise InputError(f"{where}: a record must be an object")
        for key in ("QUESTION", "final_decision"):
            if not str(record.get(key) or "").strip():
                raise InputError(f"{where}.{key}: missing")
        gold = str(record["final_decision"]).strip().lower()
        if gold not in ("yes", "no", "maybe"):
            raise InputError(f"{where}.final_decision: {gold!r} is not yes, no or maybe")
        metadata: dict[str, Any] = {"pmid": str(pmid), "raw_question": str(record["QUESTION"])}
        if record.get("YEAR"):
            metadata["year"] = str(record["YEAR"])
        if test_ids is not None:
            metadata["split"] = "test" if str(pmid) in test_ids else "dev"
        question = _pubmedqa_question(record, where)
        loaded.append(
            entry(path, number, item_id=str(pmid), question=question, gold=gold, metadata=metadata)
        )
    return loaded


# -- any JSONL -------------------------------------------------------------------------------


def _get(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _answer_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    return None


def _plain(value: Any) -> bool:
    """A value small and flat enough to carry in metadata (a scalar or a list of scalars)."""
    scalar = (str, int, float, bool)
    return (
        value is None
        or isinstance(value, scalar)
        or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))
    )


def load_jsonl(path: Path, fields: Fields) -> Loaded:
    """Items of any JSONL; other plain fields are kept as metadata."""
    q_field, a_field = fields.question or "question", fields.answer or "answer"
    id_field = fields.id or "id"
    used = {q_field.split(".")[0], a_field.split(".")[0], id_field.split(".")[0]}
    used |= {"metadata", "aliases", "answer_aliases"}
    loaded: Loaded = []
    for line, data in _iter_jsonl(path):
        question = _get(data, q_field)
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{path}:{line}: {q_field}: missing or not a text")
        answer = _get(data, a_field)
        texts = [_answer_text(a) for a in (answer if isinstance(answer, list) else [answer])]
        if not texts or not texts[0] or any(t is None for t in texts):
            raise InputError(f"{path}:{line}: {a_field}: missing or not a text, number or list")
        given = _get(data, id_field)
        if fields.id and given in (None, ""):
            raise InputError(f"{path}:{line}: {id_field}: missing")
        aliases = [str(a) for a in (data.get("aliases") or data.get("answer_aliases") or [])]
        metadata = dict(data["metadata"]) if isinstance(data.get("metadata"), dict) else {}
        for key, value in data.items():
            if key not in used and _plain(value):
                metadata.setdefault(key, value)
        item_id = str(given) if given not in (None, "") else ""
        loaded.append(
            entry(
                path,
                line,
                item_id=item_id or content_id("jsonl", question, texts[0]),
                question=question,
                gold=texts[0],
                aliases=[*texts[1:], *aliases],
                metadata=metadata,
            )
        )
    return loaded
