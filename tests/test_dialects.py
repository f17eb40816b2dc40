"""Tests for the tool-call dialects: tolerant hermes parsing, rendering, and round trips."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from medresearcher.llm.dialects import (
    HermesDialect,
    NativeDialect,
    ParsedToolCalls,
    get_dialect,
    parse_hermes_tool_calls,
    render_hermes_tools_prompt,
)
from medresearcher.llm.types import ToolCall

ID_RE = re.compile(r"^call_[0-9a-f]{8}$")

SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "search_pubmed",
        "description": "Search PubMed for articles — returns PMIDs.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"],
        },
    },
}
FETCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "fetch_abstract",
        "description": "Fetch one abstract.",
        "parameters": {"type": "object", "properties": {"pmid": {"type": "string"}}},
    },
}


def names_and_args(parsed: ParsedToolCalls) -> list[tuple[str, dict[str, Any]]]:
    return [(call.name, json.loads(call.arguments)) for call in parsed.calls]


# --------------------------------------------------------------------------- parser


def test_single_call() -> None:
    text = '<tool_call>\n{"name": "search_pubmed", "arguments": {"query": "statins"}}\n</tool_call>'
    parsed = parse_hermes_tool_calls(text)
    assert parsed.content == ""
    assert parsed.errors == []
    assert names_and_args(parsed) == [("search_pubmed", {"query": "statins"})]
    call = parsed.calls[0]
    assert isinstance(call, ToolCall)
    assert ID_RE.match(call.id)
    assert call.arguments == '{"query": "statins"}'


def test_several_calls_keep_order_and_unique_ids() -> None:
    text = (
        '<tool_call>\n{"name": "a", "arguments": {"n": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "b", "arguments": {"n": 2}}\n</tool_call>\n'
        '<tool_call>\n{"name": "c", "arguments": {"n": 3}}\n</tool_call>'
    )
    parsed = parse_hermes_tool_calls(text)
    assert names_and_args(parsed) == [("a", {"n": 1}), ("b", {"n": 2}), ("c", {"n": 3})]
    assert len({call.id for call in parsed.calls}) == 3
    assert parsed.content == ""
    assert parsed.errors == []


def test_text_before_and_after_is_kept() -> None:
    text = (
        "I will search first.\n"
        '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n'
        "Then summarise.  "
    )
    parsed = parse_hermes_tool_calls(text)
    assert parsed.content == "I will search first.\nThen summarise."
    assert names_and_args(parsed) == [("a", {})]


def test_no_tags_is_plain_content() -> None:
    parsed = parse_hermes_tool_calls("  Just an answer.\n")
    assert parsed == ParsedToolCalls(content="Just an answer.", calls=[], errors=[])
    assert parse_hermes_tool_calls("") == ParsedToolCalls(content="")


@pytest.mark.parametrize("fence", ["```json", "```", "```JSON"])
def test_code_fence_inside_tags(fence: str) -> None:
    text = f'<tool_call>\n{fence}\n{{"name": "a", "arguments": {{"q": "x"}}}}\n```\n</tool_call>'
    parsed = parse_hermes_tool_calls(text)
    assert parsed.errors == []
    assert names_and_args(parsed) == [("a", {"q": "x"})]


def test_trailing_commas_repaired() -> None:
    text = '<tool_call>{"name": "a", "arguments": {"ids": [1, 2,], "k": {"x": 1,},},}</tool_call>'
    parsed = parse_hermes_tool_calls(text)
    assert parsed.errors == []
    assert names_and_args(parsed) == [("a", {"ids": [1, 2], "k": {"x": 1}})]


def test_trailing_comma_repair_leaves_strings_alone() -> None:
    text = '<tool_call>{"name": "a", "arguments": {"q": "x,}", "r": "[1,]",},}</tool_call>'
    parsed = parse_hermes_tool_calls(text)
    assert parsed.errors == []
    assert names_and_args(parsed) == [("a", {"q": "x,}", "r": "[1,]"})]


def test_valid_json_with_comma_brace_in_string_untouched() -> None:
    text = '<tool_call>{"name": "a", "arguments": {"q": "he said \\",}\\" ok"}}</tool_call>'
    parsed = parse_hermes_tool_calls(text)
    assert names_and_args(parsed) == [("a", {"q": 'he said ",}" ok'})]


def test_missing_closing_tag_takes_rest() -> None:
    text = 'Searching.\n<tool_call>\n{"name": "a", "arguments": {"q": "x"}}\n'
    parsed = parse_hermes_tool_calls(text)
    assert parsed.errors == []
    assert names_and_args(parsed) == [("a", {"q": "x"})]
    assert parsed.content == "Searching."


def test_missing_closing_tag_first_balanced_object_and_rest_kept() -> None:
    text = '<tool_call>\n{"name": "a", "arguments": {"q": "{x}"}}\nI hope that works.'
    parsed = parse_hermes_tool_calls(text)
    assert parsed.errors == []
    assert names_and_args(parsed) == [("a", {"q": "{x}"})]
    assert parsed.content == "I hope that works."


def test_missing_closing_tag_before_next_call() -> None:
    text = (
        '<tool_call>\n{"name": "a", "arguments": {}}\n'
        '<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>'
    )
    parsed = parse_hermes_tool_calls(text)
    assert [call.name for call in parsed.calls] == ["a", "b"]
    assert parsed.errors == []


def test_arguments_as_json_string_decoded() -> None:
    text = '<tool_call>{"name": "a", "arguments": "{\\"q\\": \\"x\\", \\"n\\": 2}"}</tool_call>'
    parsed = parse_hermes_tool_calls(text)
    assert parsed.errors == []
    assert names_and_args(parsed) == [("a", {"q": "x", "n": 2})]
    assert parsed.calls[0].arguments == '{"q": "x", "n": 2}'


def test_arguments_string_not_an_object_is_error() -> None:
    text = '<tool_call>{"name": "a", "arguments": "just words"}</tool_call>'
    parsed = parse_hermes_tool_calls(text)
    assert parsed.calls == []
    assert len(parsed.errors) == 1
    assert parsed.errors[0].startswith("tool call 1 (a): arguments are not a JSON object")


def test_parameters_alias() -> None:
    text = '<tool_call>{"name": "a", "parameters": {"q": "x"}}</tool_call>'
    assert names_and_args(parse_hermes_tool_calls(text)) == [("a", {"q": "x"})]


def test_missing_arguments_means_empty_object() -> None:
    parsed = parse_hermes_tool_calls('<tool_call>{"name": "list_tools"}</tool_call>')
    assert parsed.calls[0].arguments == "{}"


def test_truncated_json_is_error_not_exception() -> None:
    text = (
        '<tool_call>{"name": "a", "arguments": {}}</tool_call>\n'
        '<tool_call>\n{"name": "search_pubmed", "arguments": {"query": "long quer'
    )
    parsed = parse_hermes_tool_calls(text)
    assert [call.name for call in parsed.calls] == ["a"]
    assert len(parsed.errors) == 1
    error = parsed.errors[0]
    assert error.startswith("tool call 2: invalid JSON: ")
    assert "search_pubmed" in error  # the snippet shows what the model wrote
    assert parsed.content == ""


def test_invalid_json_in_closed_block() -> None:
    text = "before <tool_call>{name: 'a'}</tool_call> after"
    parsed = parse_hermes_tool_calls(text)
    assert parsed.calls == []
    assert parsed.errors[0].startswith("tool call 1: invalid JSON: ")
    assert "{name: 'a'}" in parsed.errors[0]
    assert parsed.content == "before\nafter"


def test_error_snippet_is_capped() -> None:
    body = '{"name": "a", "arguments": {"q": "' + "x" * 300
    parsed = parse_hermes_tool_calls(f"<tool_call>{body}</tool_call>")
    assert len(parsed.errors) == 1
    assert len(parsed.errors[0]) < 250


def test_single_quotes_are_not_accepted() -> None:
    parsed = parse_hermes_tool_calls("<tool_call>{'name': 'a', 'arguments': {}}</tool_call>")
    assert parsed.calls == []
    assert len(parsed.errors) == 1


def test_missing_name_is_error() -> None:
    parsed = parse_hermes_tool_calls('<tool_call>{"arguments": {"q": "x"}}</tool_call>')
    assert parsed.calls == []
    assert len(parsed.errors) == 1
    assert parsed.errors[0].startswith("tool call 1: missing 'name'")


def test_non_object_json_is_error() -> None:
    parsed = parse_hermes_tool_calls("<tool_call>[1, 2]</tool_call>")
    assert parsed.calls == []
    assert parsed.errors == ["tool call 1: expected a JSON object, got list"]


def test_openai_shaped_object_accepted() -> None:
    text = (
        '<tool_call>{"type": "function", "function": '
        '{"name": "a", "arguments": "{\\"q\\": 1}"}}</tool_call>'
    )
    assert names_and_args(parse_hermes_tool_calls(text)) == [("a", {"q": 1})]


def test_non_ascii_arguments_kept_readable() -> None:
    text = '<tool_call>{"name": "a", "arguments": {"q": "ß→µ"}}</tool_call>'
    parsed = parse_hermes_tool_calls(text)
    assert parsed.calls[0].arguments == '{"q": "ß→µ"}'


def test_good_and_bad_calls_mixed() -> None:
    text = (
        '<tool_call>{"name": "a", "arguments": {}}</tool_call>'
        '<tool_call>{"arguments": {}}</tool_call>'
        '<tool_call>{"name": "c", "arguments": {"x": [1,],}}</tool_call>'
    )
    parsed = parse_hermes_tool_calls(text)
    assert names_and_args(parsed) == [("a", {}), ("c", {"x": [1]})]
    assert len(parsed.errors) == 1
    assert parsed.errors[0].startswith("tool call 2:")


# --------------------------------------------------------------------------- tools prompt


def test_render_hermes_tools_prompt_exact() -> None:
    prompt = render_hermes_tools_prompt([SEARCH_TOOL, FETCH_TOOL])
    expected = (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        + json.dumps(SEARCH_TOOL, ensure_ascii=False)
        + "\n"
        + json.dumps(FETCH_TOOL, ensure_ascii=False)
        + "\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )
    assert prompt == expected
    assert "PubMed for articles — returns" in prompt  # ensure_ascii=False


# --------------------------------------------------------------------------- native


def _conversation() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are a medical researcher."},
        {"role": "user", "content": "Find statin trials."},
        {
            "role": "assistant",
            "content": "Let me search.",
            "reasoning_content": "The user wants trials.",
            "tool_calls": [
                {
                    "id": "call_aaaa0001",
                    "type": "function",
                    "function": {
                        "name": "search_pubmed",
                        "arguments": '{"query": "statin RCT", "limit": 5}',
                    },
                },
                {
                    "id": "call_aaaa0002",
                    "type": "function",
                    "function": {"name": "fetch_abstract", "arguments": '{"pmid": "123"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_aaaa0001", "content": "PMIDs: 1, 2"},
        {"role": "tool", "tool_call_id": "call_aaaa0002", "content": "Abstract text"},
        {"role": "assistant", "content": "Found them.", "reasoning_content": "done"},
        {"role": "user", "content": "Thanks."},
    ]


def test_native_prepare() -> None:
    messages = _conversation()
    before = copy.deepcopy(messages)
    wire, extra = NativeDialect().prepare(messages, [SEARCH_TOOL])
    assert messages == before
    assert extra == {"tools": [SEARCH_TOOL]}
    assert all("reasoning_content" not in m for m in wire)
    expected = copy.deepcopy(before)
    for m in expected:
        m.pop("reasoning_content", None)
    assert wire == expected
    assert wire[3]["tool_call_id"] == "call_aaaa0001"


def test_native_prepare_without_tools() -> None:
    wire, extra = NativeDialect().prepare([{"role": "user", "content": "hi"}], None)
    assert extra == {}
    assert wire == [{"role": "user", "content": "hi"}]
    assert NativeDialect().prepare([], [])[1] == {}


def test_native_parse() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_x", "function": {"name": "a", "arguments": '{"q": 1}'}},
            {"type": "function", "function": {"name": "b", "arguments": {"k": "ü"}}},
            {"id": "call_z", "type": "function", "function": {"name": "c", "arguments": ""}},
        ],
    }
    parsed = NativeDialect().parse(message)
    assert parsed.content == ""
    assert parsed.errors == []
    first = parsed.calls[0]
    assert (first.id, first.name, first.arguments) == ("call_x", "a", '{"q": 1}')
    assert ID_RE.match(parsed.calls[1].id)
    assert parsed.calls[1].arguments == '{"k": "ü"}'
    assert parsed.calls[2].arguments == "{}"


def test_native_parse_bad_arguments_dropped_with_error() -> None:
    message = {
        "content": "hmm",
        "tool_calls": [
            {"id": "1", "function": {"name": "ok", "arguments": "{}"}},
            {"id": "2", "function": {"name": "broken", "arguments": '{"q": "trunc'}},
            {"id": "3", "function": {"name": "listy", "arguments": "[1, 2]"}},
            {"id": "4", "function": {"arguments": "{}"}},
        ],
    }
    parsed = NativeDialect().parse(message)
    assert parsed.content == "hmm"
    assert [c.name for c in parsed.calls] == ["ok"]
    assert len(parsed.errors) == 3
    assert parsed.errors[0].startswith("tool call 2 (broken): invalid arguments JSON")
    assert parsed.errors[1].startswith("tool call 3 (listy): arguments are not a JSON object")
    assert parsed.errors[2] == "tool call 4: missing function name"


# --------------------------------------------------------------------------- hermes


def test_hermes_prepare_full_conversation() -> None:
    messages = _conversation()
    before = copy.deepcopy(messages)
    wire, extra = HermesDialect().prepare(messages, [SEARCH_TOOL, FETCH_TOOL])
    assert messages == before  # no mutation
    assert extra == {}
    assert [m["role"] for m in wire] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert wire[0] == {
        "role": "system",
        "content": "You are a medical researcher.\n\n"
        + render_hermes_tools_prompt([SEARCH_TOOL, FETCH_TOOL]),
    }
    assert wire[2] == {
        "role": "assistant",
        "content": "Let me search.\n"
        "<tool_call>\n"
        '{"name": "search_pubmed", "arguments": {"query": "statin RCT", "limit": 5}}\n'
        "</tool_call>\n"
        "<tool_call>\n"
        '{"name": "fetch_abstract", "arguments": {"pmid": "123"}}\n'
        "</tool_call>",
    }
    assert wire[3] == {
        "role": "user",
        "content": "<tool_response>\nPMIDs: 1, 2\n</tool_response>\n"
        "<tool_response>\nAbstract text\n</tool_response>",
    }
    assert wire[4] == {"role": "assistant", "content": "Found them."}
    assert wire[5] == {"role": "user", "content": "Thanks."}


def test_hermes_prepare_inserts_system_when_missing() -> None:
    messages = [{"role": "user", "content": "hi"}]
    wire, extra = HermesDialect().prepare(messages, [SEARCH_TOOL])
    assert extra == {}
    assert wire == [
        {"role": "system", "content": render_hermes_tools_prompt([SEARCH_TOOL])},
        {"role": "user", "content": "hi"},
    ]
    assert messages == [{"role": "user", "content": "hi"}]


def test_hermes_prepare_without_tools_leaves_system_alone() -> None:
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    wire, extra = HermesDialect().prepare(messages, None)
    assert wire == messages and wire is not messages
    assert extra == {}


def test_hermes_prepare_tool_calls_without_content_and_trailing_tool_run() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "a", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "r1"},
    ]
    wire, _ = HermesDialect().prepare(messages, None)
    assert wire[1] == {
        "role": "assistant",
        "content": '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>',
    }
    assert wire[2] == {"role": "user", "content": "<tool_response>\nr1\n</tool_response>"}
    assert len(wire) == 3


def test_hermes_prepare_separate_tool_runs_not_merged() -> None:
    messages = [
        {"role": "tool", "content": "r1"},
        {"role": "assistant", "content": "x"},
        {"role": "tool", "content": "r2"},
        {"role": "tool", "content": "r3"},
    ]
    wire, _ = HermesDialect().prepare(messages, None)
    assert [m["content"] for m in wire] == [
        "<tool_response>\nr1\n</tool_response>",
        "x",
        "<tool_response>\nr2\n</tool_response>\n<tool_response>\nr3\n</tool_response>",
    ]


def test_hermes_parse_content_and_native_extras() -> None:
    message = {
        "role": "assistant",
        "content": 'Ok.\n<tool_call>\n{"name": "a", "arguments": {"q": 1}}\n</tool_call>',
        "tool_calls": [{"id": "call_n", "function": {"name": "b", "arguments": '{"r": 2}'}}],
    }
    parsed = HermesDialect().parse(message)
    assert parsed.content == "Ok."
    assert names_and_args(parsed) == [("a", {"q": 1}), ("b", {"r": 2})]
    assert parsed.calls[1].id == "call_n"
    assert parsed.errors == []


def test_hermes_parse_none_content() -> None:
    assert HermesDialect().parse({"role": "assistant", "content": None}) == ParsedToolCalls("")


def test_hermes_round_trip() -> None:
    messages = _conversation()
    wire, _ = HermesDialect().prepare(messages, [SEARCH_TOOL])
    parsed = HermesDialect().parse(wire[2])
    original = messages[2]
    assert parsed.content == original["content"]
    assert parsed.errors == []
    assert names_and_args(parsed) == [
        (tc["function"]["name"], json.loads(tc["function"]["arguments"]))
        for tc in original["tool_calls"]
    ]


def test_hermes_round_trip_via_toolcall_messages() -> None:
    calls = [
        ToolCall(id="call_00000001", name="search", arguments='{"q": "naïve", "n": [1, 2]}'),
        ToolCall(id="call_00000002", name="noop", arguments="{}"),
    ]
    assistant = {"role": "assistant", "content": "", "tool_calls": [c.to_openai() for c in calls]}
    wire, _ = HermesDialect().prepare([assistant], None)
    parsed = parse_hermes_tool_calls(wire[0]["content"])
    assert parsed.content == ""
    assert [(c.name, c.arguments_dict()) for c in parsed.calls] == [
        (c.name, c.arguments_dict()) for c in calls
    ]


# --------------------------------------------------------------------------- registry


def test_get_dialect() -> None:
    assert isinstance(get_dialect("native"), NativeDialect)
    assert isinstance(get_dialect("hermes"), HermesDialect)
    assert get_dialect("Hermes").name == "hermes"
    with pytest.raises(ValueError, match="hermes, native"):
        get_dialect("qwen")
