"""ShareGPT rows and ``dataset_info.json`` for LLaMA-Factory (ecosystem.md §2.2).

LLaMA-Factory's ShareGPT loader wants turns that alternate (human or observation, then gpt or
function_call) and skips a conversation that does not. So the tool results of one turn —
parallel calls included — become one observation, joined the way its own OpenAI converter
joins them (``\\n</tool_response>\\n<tool_response>\\n``, which the Qwen template then wraps into
exactly the hermes layout of Qwen2.5). A ``function_call`` value is the calls as JSON (one
object, or a list for parallel calls) with dict arguments; any text before the calls — the
turn's thought and its reasoning — must sit inside the template's ``thought_words``, or the
value is parsed as JSON and loading fails.
"""

from __future__ import annotations

import json
from typing import Any

from medresearcher.synthesis.chat_template import parse_arguments
from medresearcher.synthesis.export_messages import (
    THINK_CLOSE,
    THINK_OPEN,
    Conversation,
    ExportSkip,
    think_block,
)

__all__ = ["THINK_CLOSE", "THINK_OPEN", "TOOL_RESPONSE_JOIN", "dataset_info", "sharegpt_row"]

TOOL_RESPONSE_JOIN = "\n</tool_response>\n<tool_response>\n"
_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}


def dataset_info(file_name: str) -> dict[str, Any]:
    """The ``dataset_info.json`` entry of a ShareGPT export file."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
        "tags": dict(_TAGS),
    }


def sharegpt_row(conversation: Conversation) -> dict[str, Any]:
    """``{"id", "conversations", "system", "tools"}``; ``tools`` is JSON text ("" for none).

    Raises
    ------
    ExportSkip
        ``sharegpt_turn_order`` when the turns cannot alternate (a user message right after
        tool results, e.g. a forced-answer prompt), ``sharegpt_no_final_turn`` when the
        conversation does not end with the assistant, ``sharegpt_system_turn`` for a system
        message after the first, ``sharegpt_think_tag`` when a thought already holds think tags.
    """
    messages = conversation.messages
    system = ""
    if messages and messages[0]["role"] == "system":
        system, messages = messages[0]["content"], messages[1:]
    turns: list[dict[str, str]] = []
    results: list[str] = []
    for message in messages:
        role = message["role"]
        if role == "tool":
            results.append(message["content"])
            continue
        if results:
            turns.append({"from": "observation", "value": TOOL_RESPONSE_JOIN.join(results)})
            results = []
        if role == "system":
            raise ExportSkip("sharegpt_system_turn", "a system message after the first")
        if role == "user":
            turns.append({"from": "human", "value": message["content"]})
        elif message.get("tool_calls"):
            turns.append({"from": "function_call", "value": _function_call_value(message)})
        else:
            reasoning = message.get("reasoning_content")
            value = think_block(reasoning, message["content"]) if reasoning else message["content"]
            turns.append({"from": "gpt", "value": value})
    if results:
        turns.append({"from": "observation", "value": TOOL_RESPONSE_JOIN.join(results)})
    for index, turn in enumerate(turns):
        expected = ("human", "observation") if index % 2 == 0 else ("gpt", "function_call")
        if turn["from"] not in expected:
            raise ExportSkip(
                "sharegpt_turn_order", f"turn {index} is {turn['from']}, expected {expected}"
            )
    if not turns or len(turns) % 2:
        raise ExportSkip("sharegpt_no_final_turn", "the conversation ends without the assistant")
    tools = json.dumps(conversation.tools, ensure_ascii=False) if conversation.tools else ""
    return {"id": conversation.id, "conversations": turns, "system": system, "tools": tools}


def _function_call_value(message: dict[str, Any]) -> str:
    calls = [
        {
            "name": call["function"]["name"],
            "arguments": parse_arguments(call["function"]["arguments"]),
        }
        for call in message["tool_calls"]
    ]
    payload = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
    parts = [message.get("reasoning_content") or "", message["content"]]
    thought = "\n\n".join(part.strip("\n") for part in parts if part.strip())
    if not thought:
        return payload
    if "<think>" in thought or "</think>" in thought:
        raise ExportSkip("sharegpt_think_tag", "a thought before tool calls holds think tags")
    return THINK_OPEN + thought + THINK_CLOSE + payload
