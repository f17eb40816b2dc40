"""Crafted conversations shared by the export and training tests: tool schemas, OpenAI-style
and hermes tool calls, verl's decoded multi-turn responses and a QA record builder.

Kept in one place so the export tests (tests/test_synthesis_export.py) and the training
tests (tests/test_training_*.py) describe the same tools and the same record shapes.
"""

from __future__ import annotations

import json
from typing import Any

from medresearcher.schema import QARecord

WEB_SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "properties": {"queries": {"type": "array", "items": {"type": "string"}}},
            "required": ["queries"],
        },
    },
}
DOCUMENT_READ_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "document_read",
        "description": "Read one document.",
        "parameters": {
            "type": "object",
            "properties": {"url_or_id": {"type": "string"}, "goal": {"type": "string"}},
            "required": ["url_or_id"],
        },
    },
}
MEDICAL_RETRIEVER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "medical_retriever",
        "description": "Search the medical index.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "k": {"type": "integer"}},
            "required": ["query"],
        },
    },
}
SYSTEM = "You are MedResearcher. Use the tools; end with <answer>…</answer>."


def tool_call(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    """An OpenAI-style tool call; ``arguments`` as a dict (encoded once) or as given text."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def hermes_call(name: str, **arguments: object) -> str:
    """A hermes ``<tool_call>`` block as a model writes it."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def verl_response(*turns: tuple[str, str | None]) -> str:
    """A multi-turn response as verl decodes it (special tokens skipped, role words left):
    each turn's assistant text, then its tool response when there is one."""
    parts = []
    for assistant, response in turns:
        parts.append(assistant)
        if response is not None:
            parts.append(f"\nuser\n<tool_response>\n{response}\n</tool_response>\nassistant\n")
    return "".join(parts)


def demo_qa(qa_id: str, question: str, answer: str, **fields: Any) -> QARecord:
    """A one-hop QA record about Fabry disease's angiokeratoma; ``fields`` override."""
    values: dict[str, Any] = {
        "id": qa_id,
        "question": question,
        "answer": answer,
        "answer_aliases": [],
        "chain": ["ORPHA:324", "has_phenotype", "HP:0001014"],
        "sample_id": "S:1",
        "strategy": "random_walk",
        "hops": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
        **fields,
    }
    return QARecord(**values)
