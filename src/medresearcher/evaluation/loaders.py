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

The formats themselves live in :mod:`.formats_csv` and :mod:`.formats_json`; this module
names them, checks the options and the ids, and re-exports :func:`decode_shifted_base64`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medresearcher.errors import ConfigError, InputError
from medresearcher.evaluation.formats_common import Fields, Loaded
from medresearcher.evaluation.formats_csv import (
    decode_shifted_base64,
    load_medbrowsecomp,
    load_xbench,
)
from medresearcher.evaluation.formats_json import load_gaia, load_jsonl, load_pubmedqa, load_qa
from medresearcher.evaluation.items import BenchmarkItem

__all__ = ["BENCHMARK_NAMES", "decode_shifted_base64", "load_benchmark"]


_LOADERS: dict[str, Callable[[Path, Fields], Loaded]] = {
    "qa": load_qa,
    "medbrowsecomp": load_medbrowsecomp,
    "gaia": load_gaia,
    "xbench": load_xbench,
    "pubmedqa": load_pubmedqa,
    "jsonl": load_jsonl,
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
    fields = Fields(question_field, answer_field, id_field)
    if key in _FIXED_SCHEMA and fields != Fields():
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
