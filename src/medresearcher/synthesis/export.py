"""Training sets from trajectories, in the layouts trainers read (paper §4.1; ecosystem.md §2.2).

One canonical record, five files, written by :func:`export_trajectories`:

==========  ==========================  ====================================================
format      file                        for
==========  ==========================  ====================================================
openai      ``openai.jsonl``            TRL SFT: ``{"id", "messages", "tools"}``
sharegpt    ``sharegpt.jsonl``          LLaMA-Factory, with ``dataset_info.json``
verl-sft    ``verl_sft.parquet``        verl multi-turn SFT (``messages``, ``tools``)
verl-rl     ``verl_rl.parquet``         verl agentic RL (``prompt``, ``reward_model``, ...)
text        ``text.jsonl``              any plain-text SFT: the Qwen2.5 template's rendering
==========  ==========================  ====================================================

Rules every format keeps (ecosystem.md §2.3):

- tool-call ``arguments`` are JSON strings on disk and become dicts only where a template needs
  them (:func:`~medresearcher.synthesis.chat_template.template_ready`), so nothing is encoded
  twice; a record whose arguments are not one JSON object is skipped with its reason;
- nothing whose keys vary from row to row is a nested parquet column (Arrow would merge them);
- the training prompt is the clean one recorded in ``Trajectory.messages``: the MTG scaffold
  (§3.2) lives in ``stats["generation"]["guidance"]``, and a record whose messages contain it
  is refused (reason ``guidance_in_messages``), never exported;
- ``reasoning_content`` is kept apart (``think="separate"``) or inlined as
  ``<think>\\n…\\n</think>\\n\\n`` before the content (``think="inline"``). ShareGPT has one place
  for it either way, LLaMA-Factory's thought words, and the Qwen2.5 template has none (the
  ``text`` export keeps reasoning only when inlined).

Thought before every call (paper §4.1, intermediate thought supervision; the
``thought_before_call`` filter rule) survives every format, in the place its trainer reads it:
OpenAI and verl-sft keep ``content`` (and ``reasoning_content``) beside ``tool_calls``;
ShareGPT puts the thought inside the ``function_call`` turn between LLaMA-Factory's thought
words, before the call JSON; ``text`` renders the content before ``<tool_call>``, and when a
calling turn's thought is only in ``reasoning_content`` under ``think="separate"`` that
reasoning becomes the turn's content in ``text.jsonl`` (the Qwen2.5 template would drop it,
leaving a bare call); verl-rl holds prompts only.

Every export also writes a dataset card, ``card.md`` and ``card.json``
(:mod:`medresearcher.synthesis.card`): counts, shares, filter and behaviour statistics,
sources and licences, endpoints, decontamination and the recorded commands.

Rejected trajectories (``filters.passed`` false) are skipped. Each file is written through a
temporary file and renamed, and ``manifest.json`` beside them gives rows and skip reasons.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from medresearcher.errors import InputError
from medresearcher.schema import QARecord, Trajectory
from medresearcher.synthesis.card import CARD_JSON, CARD_MD, CardTally, dataset_card, find_workspace
from medresearcher.synthesis.card import write_card as _write_card
from medresearcher.synthesis.chat_template import ArgumentsError, render_qwen25
from medresearcher.synthesis.export_messages import (
    Conversation,
    ExportSkip,
    inline_reasoning,
    prepare_conversation,
    prompt_messages,
    tool_names,
)
from medresearcher.synthesis.export_sharegpt import (
    THINK_CLOSE,
    THINK_OPEN,
    dataset_info,
    sharegpt_row,
)
from medresearcher.synthesis.export_verl import (
    VERL_SFT_SCHEMA,
    verl_rl_row,
    verl_rl_schema,
    verl_sft_batch,
)

__all__ = [
    "DATASET_INFO_NAME",
    "FILE_NAMES",
    "FORMATS",
    "MANIFEST_NAME",
    "THINK_MODES",
    "ArgumentsError",
    "Conversation",
    "ExportSkip",
    "export_trajectories",
]

log = logging.getLogger(__name__)

FORMATS = ("openai", "sharegpt", "verl-sft", "verl-rl", "text")
THINK_MODES = ("separate", "inline")
FILE_NAMES = {
    "openai": "openai.jsonl",
    "sharegpt": "sharegpt.jsonl",
    "verl-sft": "verl_sft.parquet",
    "verl-rl": "verl_rl.parquet",
    "text": "text.jsonl",
}
DATASET_INFO_NAME = "dataset_info.json"
MANIFEST_NAME = "manifest.json"
_PARQUET_BATCH = 256


def export_trajectories(
    trajectories: Iterable[Trajectory],
    qa_records: Iterable[QARecord] | Mapping[str, QARecord] | None,
    out_dir: str | os.PathLike[str],
    formats: Sequence[str] = FORMATS,
    *,
    think: str = "separate",
    name: str = "medresearcher",
    data_source: str = "medresearcher",
    ability: str = "medical-deep-research",
    agent_name: str = "tool_agent",
    workspace: str | os.PathLike[str] | None = None,
    run: str | None = None,
    bundle: str = "demo",
) -> dict[str, Path]:
    """Write ``trajectories`` as training sets into ``out_dir`` (usually ``<workspace>/export``).

    Parameters
    ----------
    trajectories:
        Canonical records (filtered ones, usually); read once, so an iterator is fine.
    qa_records:
        The QA records the trajectories answer: ``verl-rl`` takes its ground truth from them.
        May be ``None`` when ``verl-rl`` is not asked for.
    out_dir:
        The folder of the files; made when missing. Files of formats not asked for are left.
    formats:
        Any of :data:`FORMATS`.
    think:
        ``separate``: ``reasoning_content`` stays its own field; ``inline``: it goes before the
        content as ``<think>\\n…\\n</think>\\n\\n``.
    name:
        The dataset's name in LLaMA-Factory's ``dataset_info.json``.
    data_source, ability, agent_name:
        The verl RL row fields of those names (``agent_name`` picks verl's agent loop).
    workspace, run, bundle:
        For the dataset card: where its run manifests and decontamination reports are, which
        trajectory run it is, which data bundle's licences apply. By default read from an
        ``out_dir`` laid out as ``<workspace>/export/<run>``.

    Returns
    -------
    dict
        Format → path of its file. ``manifest.json`` (rows, skip reasons, notes), the card
        (``card.md``, ``card.json``) and, with ``sharegpt``, ``dataset_info.json`` are written
        beside them.

    Raises
    ------
    InputError
        An unknown format or think mode, or ``verl-rl`` without QA records.
    """
    formats = _checked_formats(formats)
    if think not in THINK_MODES:
        raise InputError(f"think mode {think!r}: use one of {', '.join(THINK_MODES)}")
    qa_by_id = _qa_index(qa_records)
    if "verl-rl" in formats and qa_by_id is None:
        raise InputError("the verl-rl export needs the QA records (their gold answers)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {fmt: out / FILE_NAMES[fmt] for fmt in formats}
    rows = Counter({fmt: 0 for fmt in formats})
    skipped: dict[str, Counter[str]] = {fmt: Counter() for fmt in formats}
    dropped: Counter[str] = Counter()
    seen = exported = reasoning_turns = promoted = 0
    tally = CardTally()
    rl_items: dict[str, dict[str, Any]] = {}

    with contextlib.ExitStack() as stack:
        jsonl = {
            fmt: stack.enter_context(_atomic_file(paths[fmt]))
            for fmt in ("openai", "sharegpt", "text")
            if fmt in formats
        }
        sft = (
            stack.enter_context(_ParquetSink(paths["verl-sft"])) if "verl-sft" in formats else None
        )
        for trajectory in trajectories:
            seen += 1
            try:
                conversation = prepare_conversation(trajectory)
            except ExportSkip as skip:
                dropped[skip.reason] += 1
                log.warning("not exported: trajectory %s: %s", trajectory.id, skip)
                tally.add(trajectory, exported=False)
                continue
            tally.add(trajectory, exported=True)
            exported += 1
            reasoning_turns += conversation.reasoning_turns
            messages = (
                inline_reasoning(conversation.messages)
                if think == "inline"
                else conversation.messages
            )
            if "openai" in jsonl:
                row = {"id": conversation.id, "messages": messages, "tools": conversation.tools}
                _write_line(jsonl["openai"], row)
                rows["openai"] += 1
            if "sharegpt" in jsonl:
                try:
                    _write_line(jsonl["sharegpt"], sharegpt_row(conversation))
                    rows["sharegpt"] += 1
                except ExportSkip as skip:
                    skipped["sharegpt"][skip.reason] += 1
                    log.info("sharegpt: trajectory %s left out: %s", conversation.id, skip)
            if "text" in jsonl:
                text_messages, moved = _thoughts_as_content(messages)
                promoted += moved
                text = render_qwen25(text_messages, conversation.tools)
                _write_line(jsonl["text"], {"id": conversation.id, "text": text})
                rows["text"] += 1
            if sft is not None:
                sft.add(_verl_sft_row(conversation, messages))
                rows["verl-sft"] += 1
            if "verl-rl" in formats:
                reason = _collect_rl_item(rl_items, conversation, qa_by_id or {})
                if reason:
                    skipped["verl-rl"][reason] += 1
        if "verl-rl" in formats:
            rows["verl-rl"] = _write_verl_rl(
                paths["verl-rl"], rl_items, qa_by_id or {}, data_source, ability, agent_name
            )

    files = {fmt: FILE_NAMES[fmt] for fmt in formats}
    if "sharegpt" in formats:
        _update_dataset_info(out / DATASET_INFO_NAME, name, FILE_NAMES["sharegpt"])
        files["dataset_info"] = DATASET_INFO_NAME
    manifest = {
        "name": name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "think": think,
        "trajectories": seen,
        "exported": exported,
        "skipped": dict(dropped),
        "reasoning_turns": reasoning_turns,
        "formats": {
            fmt: {"file": FILE_NAMES[fmt], "rows": rows[fmt], "skipped": dict(skipped[fmt])}
            for fmt in formats
        },
        "files": files,
        "notes": _notes(formats, think, reasoning_turns, promoted),
    }
    ws_root, run_name = (workspace, run) if workspace is not None else find_workspace(out)
    card = dataset_card(
        tally, qa_by_id, manifest, workspace=ws_root, run=run or run_name, bundle=bundle
    )
    _write_card(card, out)
    manifest["files"].update(card=CARD_MD, card_json=CARD_JSON)
    _write_json(out / MANIFEST_NAME, manifest)
    log.info("exported %d of %d trajectories to %s", exported, seen, out)
    return paths


def _checked_formats(formats: Sequence[str]) -> list[str]:
    wanted = [f.strip() for f in formats if f.strip()]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise InputError(
            f"unknown export format {', '.join(unknown) or '(none)'}: use {', '.join(FORMATS)}"
        )
    return list(dict.fromkeys(wanted))


def _qa_index(
    qa_records: Iterable[QARecord] | Mapping[str, QARecord] | None,
) -> dict[str, QARecord] | None:
    if qa_records is None:
        return None
    values = qa_records.values() if isinstance(qa_records, Mapping) else qa_records
    index: dict[str, QARecord] = {}
    for record in values:
        record = record if isinstance(record, QARecord) else QARecord.model_validate(record)
        index[record.id] = record
    return index


def _verl_sft_row(conversation: Conversation, messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "qa_id": conversation.qa_id,
        "messages": messages,
        "tools": json.dumps(conversation.tools, ensure_ascii=False),
    }


def _collect_rl_item(
    items: dict[str, dict[str, Any]], conversation: Conversation, qa_by_id: Mapping[str, QARecord]
) -> str | None:
    """Group trajectories by question: verl RL takes one row per QA item. Returns a skip
    reason, or ``None``."""
    if conversation.qa_id is None:
        return "no_qa_id"
    if conversation.qa_id not in qa_by_id:
        return "qa_record_missing"
    item = items.setdefault(
        conversation.qa_id,
        {"prompt": prompt_messages(conversation.messages), "tools": conversation.tools, "ids": []},
    )
    item["ids"].append(conversation.id)
    return None


def _write_verl_rl(
    path: Path,
    items: Mapping[str, Mapping[str, Any]],
    qa_by_id: Mapping[str, QARecord],
    data_source: str,
    ability: str,
    agent_name: str,
) -> int:
    names = list(dict.fromkeys(n for item in items.values() for n in tool_names(item["tools"])))
    schema = verl_rl_schema(names)
    rows = [
        verl_rl_row(
            index=index,
            prompt=item["prompt"],
            qa=qa_by_id[qa_id],
            trajectory_ids=item["ids"],
            tools=item["tools"],
            tool_names=names,
            data_source=data_source,
            ability=ability,
            agent_name=agent_name,
        )
        for index, (qa_id, item) in enumerate(items.items())
    ]
    with _atomic_file(path, binary=True) as handle:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), handle)
    return len(rows)


def _update_dataset_info(path: Path, name: str, file_name: str) -> None:
    """Add (or replace) this dataset's entry, keeping any others the file already lists."""
    info: dict[str, Any] = {}
    if path.is_file():
        with contextlib.suppress(ValueError, OSError):
            loaded = json.loads(path.read_text(encoding="utf-8"))
            info = loaded if isinstance(loaded, dict) else {}
    info[name] = dataset_info(file_name)
    _write_json(path, info)


def _thoughts_as_content(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """For ``text``: a calling turn whose only thought is ``reasoning_content`` gets it as
    content, so the thought precedes ``<tool_call>`` (Qwen2.5 has no reasoning field)."""
    moved = 0
    result = []
    for message in messages:
        reasoning = message.get("reasoning_content")
        if message.get("tool_calls") and reasoning and not (message.get("content") or "").strip():
            message = {**message, "content": reasoning}
            moved += 1
        result.append(message)
    return result, moved


def _notes(formats: Sequence[str], think: str, reasoning_turns: int, promoted: int) -> list[str]:
    notes = []
    if "openai" in formats or "verl-sft" in formats:
        notes.append(
            "tool-call arguments are JSON strings: parse them (chat_template.template_ready) "
            "right before a chat template renders the messages"
        )
    if "verl-sft" in formats:
        notes.append(
            "verl_sft.parquet: tools is JSON text; decode rows with "
            "export_verl.decode_verl_sft_row in a dataset subclass"
        )
    if "sharegpt" in formats:
        notes.append(
            f"sharegpt: thoughts and reasoning are inside LLaMA-Factory's thought words "
            f"{THINK_OPEN!r}…{THINK_CLOSE!r}, whatever the think mode"
        )
    if "text" in formats and think == "separate" and reasoning_turns:
        notes.append(
            f"text: the Qwen2.5 template has no place for reasoning_content, so the reasoning "
            f"of {reasoning_turns} assistant turns is not in text.jsonl (use think=inline)"
        )
    if promoted:
        notes.append(
            f"text: {promoted} tool-calling turns had their thought only in reasoning_content; "
            "it is their content in text.jsonl, so no call there is bare"
        )
    return notes


def _write_json(path: Path, value: Any) -> None:
    with _atomic_file(path) as handle:
        handle.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _write_line(handle: IO[str], row: Mapping[str, Any]) -> None:
    handle.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


@contextlib.contextmanager
def _atomic_file(path: Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """A file written under a temporary name and renamed into place when the block ends
    without an error, so a reader sees the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        mode = "wb" if binary else "w"
        with os.fdopen(fd, mode, **({} if binary else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class _ParquetSink:
    """verl-sft rows streamed to parquet in batches, through :func:`_atomic_file`."""

    def __init__(self, path: Path) -> None:
        self._file = _atomic_file(path, binary=True)
        self._rows: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> _ParquetSink:
        handle = self._file.__enter__()
        self._writer = pq.ParquetWriter(handle, VERL_SFT_SCHEMA)
        return self

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= _PARQUET_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._rows and self._writer is not None:
            self._writer.write_table(verl_sft_batch(self._rows))
            self._rows = []

    def __exit__(self, *exc: Any) -> bool | None:
        if exc[0] is None:
            self._flush()
        if self._writer is not None:
            self._writer.close()
        return self._file.__exit__(*exc)
