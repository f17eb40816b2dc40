"""verl parquet layouts (ecosystem.md §2.2): multi-turn SFT and agentic RL.

Arrow gives a column one type for every row, so dicts whose keys differ from row to row are
merged: a ``search`` call read back from ``messages`` would gain ``url: None, goal: None``
from another tool's call, and the chat template would render those ``null`` parameters
(ecosystem.md §2.3, pitfall 2). The schemas below are therefore explicit, and everything whose
keys vary is stored as JSON text: tool-call ``arguments`` (JSON strings, as in the OpenAI
format) and the ``tools`` list. What is nested (messages, prompt, reward model) has the same
keys in every row.

verl's stock multi-turn SFT dataset hands ``messages`` and ``tools`` to the chat template as
they are; with these files a small dataset subclass calls :func:`decode_verl_sft_row` and
:func:`~medresearcher.synthesis.chat_template.template_ready` first (parsing arguments into
dicts only there), which is the route ecosystem.md recommends. Without it verl stops at once
on the ``tools`` text, instead of training on double-encoded arguments. The ``text`` export
is the other route.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from medresearcher.schema import QARecord

__all__ = [
    "MESSAGE_TYPE",
    "VERL_SFT_SCHEMA",
    "decode_verl_sft_row",
    "plain_python",
    "read_verl_sft",
    "verl_rl_row",
    "verl_rl_schema",
    "verl_sft_batch",
]

TOOL_CALL_TYPE = pa.struct(
    [
        ("id", pa.string()),
        ("type", pa.string()),
        ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())])),
    ]
)
#: One chat message; absent fields are null and dropped again on read-back.
MESSAGE_TYPE = pa.struct(
    [
        ("role", pa.string()),
        ("content", pa.string()),
        ("reasoning_content", pa.string()),
        ("tool_calls", pa.list_(TOOL_CALL_TYPE)),
        ("tool_call_id", pa.string()),
        ("name", pa.string()),
    ]
)
VERL_SFT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("qa_id", pa.string()),
        ("messages", pa.list_(MESSAGE_TYPE)),
        ("tools", pa.string()),
    ]
)
PROMPT_MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])


def verl_rl_schema(tool_names: Sequence[str]) -> pa.Schema:
    """The verl RL schema (``data.return_raw_chat=True`` with a tool agent loop).

    ``extra_info.tools_kwargs`` has one entry per tool name, the same in every row (verl looks
    each called tool up in it), with ``create_kwargs`` carrying the QA id so that a tool
    wrapper can tell which item a rollout serves. Parquet cannot store an empty struct, so
    without tools the entry is left out.
    """
    extra_fields: list[tuple[str, pa.DataType]] = [
        ("index", pa.int64()),
        ("split", pa.string()),
        ("qa_id", pa.string()),
        ("trajectory_ids", pa.list_(pa.string())),
        ("question", pa.string()),
        ("language", pa.string()),
        ("hops", pa.int64()),
        ("paradigm", pa.string()),
        ("cheat_sheet", pa.list_(pa.string())),
        ("answer_aliases", pa.list_(pa.string())),
        ("tools", pa.string()),
        ("need_tools_kwargs", pa.bool_()),
    ]
    if tool_names:
        kwargs = pa.struct([("create_kwargs", pa.struct([("qa_id", pa.string())]))])
        extra_fields.append(("tools_kwargs", pa.struct([(n, kwargs) for n in tool_names])))
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("agent_name", pa.string()),
            ("prompt", pa.list_(PROMPT_MESSAGE_TYPE)),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            ("extra_info", pa.struct(extra_fields)),
        ]
    )


def verl_rl_row(
    *,
    index: int,
    prompt: Sequence[Mapping[str, Any]],
    qa: QARecord,
    trajectory_ids: Sequence[str],
    tools: Sequence[Mapping[str, Any]],
    tool_names: Sequence[str],
    data_source: str,
    ability: str,
    agent_name: str,
) -> dict[str, Any]:
    """One verl RL row: the clean prompt, the QA record's gold answer as ground truth."""
    extra: dict[str, Any] = {
        "index": index,
        "split": "train",
        "qa_id": qa.id,
        "trajectory_ids": list(trajectory_ids),
        "question": qa.question,
        "language": qa.language,
        "hops": qa.hops,
        # Read by the reward: the paradigm for the efficiency rules, the cheat sheet as the
        # expert judge's reference (medresearcher.training.verl_reward).
        "paradigm": qa.paradigm,
        "cheat_sheet": list(qa.cheat_sheet),
        "answer_aliases": list(qa.answer_aliases),
        "tools": json.dumps(list(tools), ensure_ascii=False),
        "need_tools_kwargs": bool(tool_names),
    }
    if tool_names:
        extra["tools_kwargs"] = {n: {"create_kwargs": {"qa_id": qa.id}} for n in tool_names}
    return {
        "data_source": data_source,
        "agent_name": agent_name,
        "prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
        "ability": ability,
        "reward_model": {"style": "rule", "ground_truth": qa.answer},
        "extra_info": extra,
    }


def plain_python(value: Any) -> Any:
    """Arrow / pandas / numpy values as plain Python (numpy arrays → lists, tuples → lists),
    recursively: what a parquet row reads back as, in the form our records expect."""
    if isinstance(value, Mapping):
        return {k: plain_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_python(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return plain_python(value.tolist())
    return value


def _drop_nulls(message: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in message.items():
        if value is None:
            continue
        if key == "tool_calls":
            value = [
                {k: v for k, v in call.items() if v is not None} for call in value or []
            ] or None
            if value is None:
                continue
        clean[key] = value
    return clean


def decode_verl_sft_row(
    row: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(messages, tools)`` of one verl-sft row as read back (Arrow ``to_pylist`` or pandas).

    Null fields that the fixed message schema adds are dropped and ``tools`` is parsed, so the
    result equals the OpenAI export's messages and tools. Arguments stay JSON strings: pass
    the messages through ``template_ready`` right before a chat template.
    """
    messages = [_drop_nulls(m) for m in plain_python(row["messages"])]
    tools_text = row.get("tools")
    tools = json.loads(tools_text) if tools_text else []
    return messages, tools


def read_verl_sft(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a verl-sft parquet file, decoded (``messages`` and ``tools`` as lists)."""
    rows = []
    for row in pq.read_table(path).to_pylist():
        messages, tools = decode_verl_sft_row(row)
        rows.append({**row, "messages": messages, "tools": tools})
    return rows


def verl_sft_batch(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows ``{id, qa_id, messages, tools}`` (tools already JSON text) as an Arrow table."""
    return pa.Table.from_pylist(list(rows), schema=VERL_SFT_SCHEMA)
