"""Benchmark loaders: each file format of paper §5 turned into :class:`BenchmarkItem` records.

=================  =========================================================================
name               what ``path`` is
=================  =========================================================================
``qa``             our QA JSONL (``qa.jsonl``, one :class:`~medresearcher.schema.QARecord` a line)
``medbrowsecomp``  a MedBrowseComp CSV (``prompt``, ``gold``, task column), plain or in its
                   published per-cell encoding (``final50_cell_combo_shift3_b64.csv``…),
                   detected from the header
``gaia``           GAIA ``metadata.jsonl`` (or its folder): ``task_id``, ``Question``,
                   ``Final answer``, ``Level``, ``file_name``
``xbench``         xbench-DeepSearch CSV *as decrypted by the user* (columns ``id``, ``prompt``,
                   ``answer``, ``reference_steps``, ``canary``; question = ``prompt``,
                   gold = ``answer``; ``reference_steps`` is the solution and is never read)
``pubmedqa``       PubMedQA PQA-L ``ori_pqal.json[.gz]`` or its folder (the layout of
                   ``shared/data/pubmedqa``); ``test_ground_truth.json[.gz]`` beside it marks the
                   official test split in ``metadata["split"]``
``jsonl``          any JSONL; ``question_field`` / ``answer_field`` / ``id_field`` (dotted paths
                   reach into nested objects) default to ``question`` / ``answer`` / ``id``
=================  =========================================================================

Items keep a benchmark's own id; where there is none the id is a hash of question and gold
(ARCHITECTURE §3: ids are never list positions). Bad input raises :class:`InputError` naming
the file, the line and the field; a duplicate id names both lines.

MedBrowseComp's published cells are escaped: prompts are wrapped in double quotes and carry a
literal ``\\n``; both are undone here so the agent reads the question as its authors meant it.
"""

from __future__ import annotations

import base64
import binascii
import csv
import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from medresearcher.errors import ConfigError, InputError
from medresearcher.evaluation.items import BenchmarkItem
from medresearcher.grading.normalise import is_na
from medresearcher.schema import QARecord

__all__ = ["BENCHMARK_NAMES", "decode_shifted_base64", "load_benchmark"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


@dataclass(frozen=True)
class _Fields:
    question: str | None = None
    answer: str | None = None
    id: str | None = None


Loaded = list[tuple[int, BenchmarkItem]]  # (line, item): lines for duplicate-id messages


# -- shared readers --------------------------------------------------------------------------


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) of each non-blank line; an InputError names the bad line."""
    with _open_text(path) as handle:
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


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the (first line, cells) of each non-blank row."""
    rows: list[tuple[int, list[str]]] = []
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise InputError(f"{path}:1: empty file, expected a CSV header")
        start = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):
                if len(cells) != len(header):
                    raise InputError(
                        f"{path}:{start}: {len(cells)} cells, the header has {len(header)}"
                    )
                rows.append((start, cells))
            start = reader.line_num + 1
    return [cell.strip() for cell in header], rows


def _find_column(header: list[str], wanted: str | None, candidates: tuple[str, ...]) -> int | None:
    """Index of column ``wanted`` (else the first of ``candidates`` present), case-insensitive."""
    lowered = [name.casefold() for name in header]
    for name in (wanted,) if wanted else candidates:
        if name.casefold() in lowered:
            return lowered.index(name.casefold())
    return None


def _column(header: list[str], wanted: str | None, candidates: tuple[str, ...], path: Path) -> int:
    """Like :func:`_find_column`, but a missing column is an InputError naming the columns."""
    index = _find_column(header, wanted, candidates)
    if index is None:
        names = " or ".join((wanted,) if wanted else candidates)
        raise InputError(f"{path}:1: no column {names}; the columns are {header}")
    return index


def _content_id(prefix: str, question: str, gold: str) -> str:
    digest = hashlib.sha256(f"{question}\x1f{gold}".encode()).hexdigest()
    return f"{prefix}-{digest[:12]}"


def _entry(path: Path, line: int, **fields: Any) -> tuple[int, BenchmarkItem]:
    """(line, item); a field the item rejects is reported at file:line:field."""
    try:
        return line, BenchmarkItem(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(item)"
        raise InputError(f"{path}:{line}: {where}: {first['msg']}") from None


def _language(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


# -- our QA JSONL ----------------------------------------------------------------------------


def _load_qa(path: Path, fields: _Fields) -> Loaded:
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
            _entry(
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


# -- MedBrowseComp ---------------------------------------------------------------------------


def decode_shifted_base64(cell: str, shift: int = 3) -> str:
    """One cell of MedBrowseComp's published CSVs in plain text.

    Each cell (header included) is the base64 of the UTF-8 text after every character's code
    point was raised by ``shift``; this undoes both. Raises ``ValueError`` on a cell that is not
    such an encoding.
    """
    try:
        raw = base64.b64decode(cell.strip(), validate=True).decode("utf-8")
        return "".join(chr(ord(char) - shift) for char in raw)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a shifted base64 cell ({exc})") from None


# Hop of each task, in the order the questions chain (docs/benchmarks-and-grading.md §1.2).
_MBC_HOPS = (
    ("ingredient", 1),
    ("applicant", 2),
    ("patent", 3),
    ("exclusivity", 4),
    ("open_on_approval", 5),
    ("close_on_approval", 5),
)


def _mbc_prompt(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text.replace("\\n", "\n")


def _mbc_task(task: str) -> dict[str, Any]:
    task = re.sub(r"_prompt$", "", task.strip())
    hops = next((h for key, h in _MBC_HOPS if task.casefold().startswith(key)), None)
    return {"task": task, "hops": hops} if hops else {"task": task} if task else {}


def _load_medbrowsecomp(path: Path, fields: _Fields) -> Loaded:
    header, rows = _read_csv(path)
    wanted = {(fields.question or "prompt").casefold(), (fields.answer or "gold").casefold()}
    encoded = not wanted <= {name.casefold() for name in header}
    if encoded:
        try:
            header = [decode_shifted_base64(cell).strip() for cell in header]
        except ValueError:
            raise InputError(
                f"{path}:1: columns {header} are neither plain (prompt, gold, task) nor "
                "MedBrowseComp's encoded form"
            ) from None
    q_col = _column(header, fields.question, ("prompt",), path)
    a_col = _column(header, fields.answer, ("gold",), path)
    t_col = _find_column(header, None, ("task", "task_name"))
    if t_col is None and len(header) == 3:  # the 50 set names its task column after a task
        t_col = 2
    id_col = _column(header, fields.id, (), path) if fields.id else None
    loaded: Loaded = []
    for line, cells in rows:
        if encoded:
            try:
                cells = [decode_shifted_base64(cell) if cell else "" for cell in cells]
            except ValueError as exc:
                raise InputError(f"{path}:{line}: a cell is not encoded: {exc}") from None
        question, gold = _mbc_prompt(cells[q_col]), cells[a_col].strip()
        metadata = {"na_gold": is_na(gold), **_mbc_task(cells[t_col] if t_col is not None else "")}
        item_id = cells[id_col].strip() if id_col is not None else ""
        loaded.append(
            _entry(
                path,
                line,
                item_id=item_id or _content_id("mbc", question, gold),
                question=question,
                gold=gold,
                metadata=metadata,
            )
        )
    return loaded


# -- GAIA ------------------------------------------------------------------------------------


def _load_gaia(path: Path, fields: _Fields) -> Loaded:
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
            _entry(
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


# -- xbench-DeepSearch -----------------------------------------------------------------------


def _load_xbench(path: Path, fields: _Fields) -> Loaded:
    header, rows = _read_csv(path)
    q_col = _column(header, fields.question, ("prompt", "question", "问题"), path)
    a_col = _column(header, fields.answer, ("answer", "gold", "答案"), path)
    id_col = (
        _column(header, fields.id, (), path) if fields.id else _find_column(header, None, ("id",))
    )
    if rows and all(_BASE64.match(c[q_col].strip()) and len(c[q_col]) >= 16 for _, c in rows):
        raise InputError(
            f"{path}:{rows[0][0]}: {header[q_col]}: the questions look encrypted (base64, no "
            "plain text); decrypt the file with xbench's own script first"
        )
    loaded: Loaded = []
    for line, cells in rows:
        question, gold = cells[q_col].strip(), cells[a_col].strip()
        item_id = cells[id_col].strip() if id_col is not None else ""
        loaded.append(
            _entry(
                path,
                line,
                item_id=item_id or _content_id("xbench", question, gold),
                question=question,
                gold=gold,
                metadata={"language": _language(question)},
            )
        )
    return loaded


# -- PubMedQA --------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        with _open_text(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None


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


def _load_pubmedqa(path: Path, fields: _Fields) -> Loaded:
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
            _entry(path, number, item_id=str(pmid), question=question, gold=gold, metadata=metadata)
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


def _load_jsonl(path: Path, fields: _Fields) -> Loaded:
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
            _entry(
                path,
                line,
                item_id=item_id or _content_id("jsonl", question, texts[0]),
                question=question,
                gold=texts[0],
                aliases=[*texts[1:], *aliases],
                metadata=metadata,
            )
        )
    return loaded


# -- entry point -----------------------------------------------------------------------------

_LOADERS: dict[str, Callable[[Path, _Fields], Loaded]] = {
    "qa": _load_qa,
    "medbrowsecomp": _load_medbrowsecomp,
    "gaia": _load_gaia,
    "xbench": _load_xbench,
    "pubmedqa": _load_pubmedqa,
    "jsonl": _load_jsonl,
}
BENCHMARK_NAMES: tuple[str, ...] = tuple(_LOADERS)
_FIXED_SCHEMA = frozenset({"qa", "gaia", "pubmedqa"})


def load_benchmark(
    name: str,
    path: str | Path,
    *,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
) -> list[BenchmarkItem]:
    """The items of benchmark ``name`` read from ``path``, in file order.

    Parameters
    ----------
    name:
        One of :data:`BENCHMARK_NAMES` (see the module docstring for each format).
    path:
        The file, or for ``gaia`` / ``pubmedqa`` the folder holding it.
    question_field, answer_field, id_field:
        Column or field names overriding the defaults of ``jsonl``, ``xbench`` and
        ``medbrowsecomp`` (dotted paths for ``jsonl``).

    Raises
    ------
    ConfigError
        An unknown benchmark name, or field overrides for a format whose fields are fixed.
    InputError
        A missing file, or a malformed line (file:line:field), or an id used twice.
    """
    key = name.strip().lower()
    if key not in _LOADERS:
        raise ConfigError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARK_NAMES)}")
    fields = _Fields(question_field, answer_field, id_field)
    if key in _FIXED_SCHEMA and fields != _Fields():
        raise ConfigError(
            f"benchmark {key!r} has fixed fields; --question-field and friends "
            "apply to jsonl, xbench and medbrowsecomp"
        )
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir() and key not in ("gaia", "pubmedqa"):
        raise InputError(f"{path}: a folder; benchmark {key!r} reads one file")
    loaded = _LOADERS[key](path, fields)
    if not loaded:
        raise InputError(f"{path}: no items")
    seen: dict[str, int] = {}
    for line, item in loaded:
        if item.item_id in seen:
            raise InputError(
                f"{path}:{line}: id {item.item_id!r} already used on line {seen[item.item_id]}"
            )
        seen[item.item_id] = line
    return [item for _, item in loaded]
