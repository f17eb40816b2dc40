"""Training data from our exports: SFT rows with assistant-only labels, GRPO prompt rows.

**SFT** (paper §4.1) reads ``openai.jsonl`` from ``medresearcher traj export``: one row per
trajectory, ``{"id", "messages", "tools"}``, tool-call arguments as JSON strings. Each row is
rendered with the *model's own* chat template (``tokenizer.apply_chat_template``, tools
included) and tokenised once; the labels are the input ids with ``-100`` on every token that is
not written by the assistant, so the loss falls on the model's reasoning, calls and answers
and never on the system prompt, the question or a tool result.

Why we build ``input_ids``/``labels`` ourselves instead of ``SFTConfig(assistant_only_loss=True)``:
TRL's route needs ``{% generation %}`` markers (it swaps in its own copy of the Qwen2.5 template
for known families) and tokenises the messages from the Arrow dataset, where dict arguments get
merged keys across rows and string arguments are encoded twice (ecosystem.md §2.3, pitfalls
1–2). Here each assistant span is found from the template itself, for any template that is
prefix-preserving: the span of assistant message *i* is what ``render(messages[:i+1])`` adds to
``render(messages[:i], add_generation_prompt=True)``, up to and including the end-of-turn
token; both renderings are checked to be prefixes of the whole conversation, and the whole text
is checked to tokenise exactly as ``apply_chat_template(tokenize=True)`` does. TRL then receives
a pre-tokenised dataset and uses the labels as they are.

**GRPO** (paper §4.2) reads prompts: ``qa.jsonl`` (QA records), ``verl_rl.parquet`` (the
``verl-rl`` export) or a prompts JSONL (``{"prompt": [...] | "text", "answer": ...}``), and
yields TRL rows: ``prompt`` (system + question messages) plus the columns the reward functions
read (``answer``, ``answer_aliases``, ``question``, ``qa_id``, ``cheat_sheet``, ``paradigm``,
``language``, ``hops``, ``level``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medresearcher.errors import ConfigError, InputError
from medresearcher.synthesis.chat_template import ArgumentsError, template_ready
from medresearcher.synthesis.export_messages import inline_reasoning

__all__ = [
    "MASKING_RULE",
    "SFTDataStats",
    "SFTRow",
    "TokenizedConversation",
    "assistant_char_spans",
    "build_sft_dataset",
    "load_grpo_prompts",
    "read_openai_export",
    "template_renders_reasoning",
    "tokenize_conversation",
    "training_messages",
]

#: The masking rule, as the dry-run plan states it.
MASKING_RULE = (
    "assistant-only loss: labels = input ids on each assistant turn (what the template adds "
    "after the generation prompt, through the end-of-turn token); -100 on system, user and "
    "tool tokens, role headers, the template's separators and padding"
)


@dataclass(frozen=True)
class SFTRow:
    """One exported conversation: OpenAI messages (arguments as JSON strings) and tool schemas."""

    id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]


@dataclass(frozen=True)
class TokenizedConversation:
    """A rendered conversation: the text, its ids, labels (``-100`` = no loss) and the
    character spans of the assistant turns that carry the loss."""

    text: str
    input_ids: list[int]
    labels: list[int]
    spans: list[tuple[int, int]]
    truncated: bool = False

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != -100)


@dataclass
class SFTDataStats:
    """What went into the SFT dataset (printed by the plan and kept in the run manifest)."""

    rows_read: int = 0
    rows_used: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    truncated: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def read_openai_export(path: str | os.PathLike[str]) -> list[SFTRow]:
    """Rows of an ``openai.jsonl`` export. Raises :class:`InputError` naming the line."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source} does not exist: run `medresearcher traj export RUN` first")
    rows: list[SFTRow] = []
    for number, data in _jsonl_values(source):
        messages = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(messages, list) or not messages:
            raise InputError(f"{source}:{number}: field 'messages' must be a non-empty list")
        tools = data.get("tools") or []
        if isinstance(tools, str):
            tools = json.loads(tools)
        if not isinstance(tools, list):
            raise InputError(f"{source}:{number}: field 'tools' must be a list of schemas")
        rows.append(SFTRow(id=str(data.get("id", number)), messages=messages, tools=tools))
    if not rows:
        raise InputError(f"{source} holds no rows")
    return rows


def template_renders_reasoning(chat_template: str | None) -> bool:
    """Whether a chat template has a place for ``reasoning_content`` (Qwen2.5's has none)."""
    return bool(chat_template) and "reasoning_content" in str(chat_template)


def training_messages(
    messages: Sequence[Mapping[str, Any]], *, inline_think: bool
) -> list[dict[str, Any]]:
    """Messages ready for ``apply_chat_template``: arguments as dicts (so ``tojson`` encodes
    them once), ``None`` keys dropped, and with ``inline_think`` the ``reasoning_content``
    moved into the content as ``<think>…</think>`` (intermediate thought supervision, §4.1,
    for templates that would otherwise drop it)."""
    ready = template_ready(messages)
    return inline_reasoning(ready) if inline_think else ready


def _render(tokenizer: Any, messages: list[dict[str, Any]], tools: Any, gen: bool) -> str:
    return str(
        tokenizer.apply_chat_template(
            messages, tools=tools or None, tokenize=False, add_generation_prompt=gen
        )
    )


def assistant_char_spans(
    tokenizer: Any, messages: list[dict[str, Any]], tools: Sequence[Mapping[str, Any]] | None
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of every assistant turn's output.

    Raises
    ------
    ConfigError
        The template is not prefix-preserving (a later message changes the rendering of an
        earlier one, e.g. Qwen3 stripping old ``<think>``): masks cannot be derived from it.
    """
    tool_list = [dict(t) for t in tools] if tools else None
    full = _render(tokenizer, messages, tool_list, False)
    eos = tokenizer.eos_token or ""
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        if index == 0:
            raise InputError("a conversation cannot start with an assistant turn")
        before = _render(tokenizer, messages[:index], tool_list, True)
        upto = _render(tokenizer, messages[: index + 1], tool_list, False)
        if not upto.startswith(before) or not full.startswith(upto):
            raise ConfigError(
                f"the chat template is not prefix-preserving at message {index}: assistant "
                "tokens cannot be located; use a template that renders earlier turns unchanged "
                "(e.g. TRL's training template for this model family)"
            )
        start = len(before)
        stop = upto.find(eos, start) if eos else -1
        end = stop + len(eos) if stop >= 0 else len(upto)
        if end > start:
            spans.append((start, end))
    return full, spans


def tokenize_conversation(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    max_length: int | None = None,
    inline_think: bool | None = None,
) -> TokenizedConversation:
    """Render and tokenise one conversation with assistant-only labels (:data:`MASKING_RULE`).

    ``inline_think`` defaults to "when the template has no place for ``reasoning_content``".
    A token carries the loss when its first character lies inside an assistant span.
    """
    if inline_think is None:
        inline_think = not template_renders_reasoning(tokenizer.chat_template)
    ready = training_messages(messages, inline_think=inline_think)
    text, spans = assistant_char_spans(tokenizer, ready, tools)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    reference = tokenizer.apply_chat_template(
        ready, tools=[dict(t) for t in tools] if tools else None, tokenize=True, return_dict=True
    )["input_ids"]
    if list(reference) != ids:
        raise ConfigError(
            "tokenising the rendered text differs from apply_chat_template(tokenize=True): "
            "the tokenizer adds or merges tokens at template boundaries"
        )
    labels = [-100] * len(ids)
    span_index = 0
    for position, (start, _end) in enumerate(encoded["offset_mapping"]):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        if span_index < len(spans) and spans[span_index][0] <= start < spans[span_index][1]:
            labels[position] = ids[position]
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    return TokenizedConversation(text, ids, labels, spans, truncated)


def build_sft_dataset(
    rows: Iterable[SFTRow], tokenizer: Any, *, max_length: int | None
) -> tuple[Any, SFTDataStats]:
    """A ``datasets.Dataset`` of ``input_ids``/``labels`` for TRL's SFTTrainer, and its stats.

    Rows whose arguments are not JSON objects are skipped (``bad_arguments``), and so are rows
    left without a trained token after truncation to ``max_length`` (``no_assistant_tokens``):
    their loss would be 0/0.
    """
    from datasets import Dataset

    stats = SFTDataStats()
    records: list[dict[str, Any]] = []
    for row in rows:
        stats.rows_read += 1
        try:
            tokenized = tokenize_conversation(
                tokenizer, row.messages, row.tools, max_length=max_length
            )
        except ArgumentsError:
            stats.skipped["bad_arguments"] += 1
            continue
        if tokenized.trained_tokens == 0:
            stats.skipped["no_assistant_tokens"] += 1
            continue
        stats.rows_used += 1
        stats.truncated += int(tokenized.truncated)
        stats.tokens += len(tokenized.input_ids)
        stats.trained_tokens += tokenized.trained_tokens
        records.append({"input_ids": tokenized.input_ids, "labels": tokenized.labels})
    if not records:
        raise InputError("no SFT row is left to train on: " + _reasons(stats.skipped))
    return Dataset.from_list(records), stats


def _reasons(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "the export is empty"


# ---------------------------------------------------------------- GRPO prompts

_PROMPT_COLUMNS = (
    "answer",
    "answer_aliases",
    "question",
    "qa_id",
    "cheat_sheet",
    "paradigm",
    "language",
)


def load_grpo_prompts(
    path: str | os.PathLike[str], *, tool_names: Sequence[str] = ()
) -> tuple[list[dict[str, Any]], str]:
    """GRPO rows from ``qa.jsonl``, ``verl_rl.parquet`` or a prompts JSONL; and the format read.

    Each row has ``prompt`` (OpenAI messages: the agent's system prompt and the question) and
    the reward columns ``answer``, ``answer_aliases``, ``question``, ``qa_id``,
    ``cheat_sheet``, ``paradigm``, ``language``, ``hops``, ``level`` (every column TRL passes
    to each reward function as a keyword list). For QA records the system prompt is the agent's own
    (``prompts/agent.yaml``, listing ``tool_names``), as in trajectory synthesis.
    """
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source} does not exist")
    if source.suffix == ".parquet":
        return [_verl_row(row, source, n) for n, row in enumerate(_parquet_rows(source))], "verl-rl"
    raw = _jsonl_objects(source)
    if not raw:
        raise InputError(f"{source} holds no rows")
    first = raw[0][1]
    if "prompt" in first:
        return [_prompt_row(row, source, n) for n, row in raw], "prompts"
    if "question" in first and "answer" in first:
        from medresearcher.schema import QARecord

        records = [(n, QARecord.model_validate(row)) for n, row in raw]
        return [_qa_row(record, tool_names) for _, record in records], "qa"
    raise InputError(
        f"{source}:1: neither a QA record (question, answer) nor a prompt row (prompt, answer)"
    )


def _jsonl_values(source: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded value) of each non-blank line; a bad line is an InputError."""
    with source.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{source}:{number}: not JSON ({exc.msg})") from None
            yield number, data


def _jsonl_objects(source: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, data in _jsonl_values(source):
        if not isinstance(data, dict):
            raise InputError(f"{source}:{number}: not a JSON object")
        rows.append((number, data))
    return rows


def _parquet_rows(source: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return list(pq.read_table(source).to_pylist())


def _qa_row(record: Any, tool_names: Sequence[str]) -> dict[str, Any]:
    from medresearcher.prompts import render_prompt

    system = render_prompt("agent", "system", record.language, tool_names=list(tool_names))
    prompt = [{"role": "system", "content": system}, {"role": "user", "content": record.question}]
    return _columns(
        prompt,
        answer=record.answer,
        answer_aliases=record.answer_aliases,
        question=record.question,
        qa_id=record.id,
        cheat_sheet=record.cheat_sheet,
        paradigm=record.paradigm,
        language=record.language,
        hops=record.hops,
        level=record.difficulty.level,
    )


def _verl_row(row: Mapping[str, Any], source: Path, number: int) -> dict[str, Any]:
    extra = row.get("extra_info") or {}
    truth = (row.get("reward_model") or {}).get("ground_truth")
    if not row.get("prompt") or truth is None:
        raise InputError(f"{source}: row {number} lacks prompt or reward_model.ground_truth")
    return _columns(
        list(row["prompt"]),
        answer=truth,
        answer_aliases=extra.get("answer_aliases") or [],
        question=extra.get("question") or "",
        qa_id=extra.get("qa_id") or str(extra.get("index", number)),
        cheat_sheet=[],
        paradigm=extra.get("paradigm") or "",
        language=extra.get("language") or "en",
        hops=extra.get("hops") or 0,
        level=1,
    )


def _prompt_row(row: Mapping[str, Any], source: Path, number: int) -> dict[str, Any]:
    prompt = row["prompt"]
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or "answer" not in row:
        raise InputError(f"{source}:{number}: 'prompt' must be messages or text, with 'answer'")
    question = next((m.get("content", "") for m in prompt if m.get("role") == "user"), "")
    return _columns(
        prompt,
        answer=row["answer"],
        answer_aliases=row.get("answer_aliases") or [],
        question=row.get("question") or question,
        qa_id=str(row.get("qa_id") or row.get("id") or number),
        cheat_sheet=row.get("cheat_sheet") or [],
        paradigm=row.get("paradigm") or "",
        language=row.get("language") or "en",
        hops=int(row.get("hops") or 0),
        level=int(row.get("level") or 1),
    )


def _columns(prompt: list[dict[str, Any]], **values: Any) -> dict[str, Any]:
    """One GRPO row with uniformly typed columns (Arrow needs one type per column)."""
    messages = [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in prompt]
    row: dict[str, Any] = {"prompt": messages}
    for name in _PROMPT_COLUMNS:
        value = values[name]
        row[name] = [str(v) for v in value] if isinstance(value, list) else str(value)
    row["hops"] = int(values["hops"])
    row["level"] = int(values["level"])
    return row
