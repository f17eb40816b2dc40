"""ToolBox: every kind of bad call becomes an error observation; good calls are cut to budget."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel, Field

from medresearcher.tokens import estimate_tokens
from medresearcher.tools import Observation, Tool, ToolBox
from tests.conftest import run


class EchoArgs(BaseModel):
    text: str
    times: int = Field(default=1, ge=1, le=1000)


class Echo(Tool):
    name = "echo"
    description = "Repeat a text."
    Arguments = EchoArgs

    def __init__(self) -> None:
        self.calls: list[EchoArgs] = []

    async def run(self, arguments: EchoArgs) -> Observation:
        self.calls.append(arguments)
        return Observation(text=" ".join([arguments.text] * arguments.times), sources=["echo:1"])


class SleepArgs(BaseModel):
    seconds: float


class Sleeper(Tool):
    name = "sleep"
    description = "Sleep."
    Arguments = SleepArgs
    timeout_s = 0.05

    def __init__(self) -> None:
        self.finished = False

    async def run(self, arguments: SleepArgs) -> Observation:
        await asyncio.sleep(arguments.seconds)
        self.finished = True
        return Observation(text="woke up")


class Broken(Tool):
    name = "broken"
    description = "Always fails."
    Arguments = SleepArgs

    async def run(self, arguments: SleepArgs) -> Observation:
        raise RuntimeError("the source is down")


def box(**kwargs) -> ToolBox:
    return ToolBox([Echo(), Sleeper(), Broken()], **kwargs)


def test_a_good_call_returns_the_tool_observation_with_its_sources() -> None:
    observation = run(box().call("echo", '{"text": "hello", "times": 2}'))
    assert not observation.error
    assert observation.text == "hello hello"
    assert observation.sources == ["echo:1"]
    assert observation.elapsed_s >= 0


def test_arguments_may_be_a_mapping_or_none() -> None:
    toolbox = box()
    assert run(toolbox.call("echo", {"text": "hi"})).text == "hi"
    missing = run(toolbox.call("echo", None))
    assert missing.error and "text" in missing.text


def test_an_unknown_tool_is_an_error_naming_the_known_ones() -> None:
    observation = run(box().call("web_serch", "{}"))
    assert observation.error
    assert "unknown tool 'web_serch'" in observation.text
    assert "echo" in observation.text and "sleep" in observation.text


@pytest.mark.parametrize("raw", ['{"text": "hi"', "text=hi", '{"text": "a",}'])
def test_arguments_that_are_not_json_are_an_error(raw: str) -> None:
    observation = run(box().call("echo", raw))
    assert observation.error
    assert "not valid JSON" in observation.text


def test_a_json_value_that_is_not_an_object_is_an_error() -> None:
    observation = run(box().call("echo", '["hi"]'))
    assert observation.error and "must be a JSON object" in observation.text


def test_arguments_that_do_not_validate_name_the_field() -> None:
    toolbox = ToolBox([echo := Echo()])
    observation = run(toolbox.call("echo", '{"text": "hi", "times": 0}'))
    assert observation.error
    assert "invalid arguments" in observation.text and "times" in observation.text
    assert echo.calls == []  # the tool never ran


def test_a_tool_that_runs_past_its_timeout_is_stopped() -> None:
    sleeper = Sleeper()
    observation = run(ToolBox([sleeper]).call("sleep", '{"seconds": 30}'))
    assert observation.error
    assert "timed out after 0.05 s" in observation.text
    assert not sleeper.finished


def test_an_exception_inside_a_tool_is_an_observation() -> None:
    observation = run(box().call("broken", '{"seconds": 0}'))
    assert observation.error
    assert "RuntimeError: the source is down" in observation.text


def test_long_output_is_cut_to_the_token_budget() -> None:
    toolbox = box(max_observation_tokens=64)
    observation = run(toolbox.call("echo", '{"text": "alpha-galactosidase", "times": 500}'))
    assert observation.truncated and not observation.error
    assert toolbox.counter.count(observation.text) <= 64
    assert observation.sources == ["echo:1"]  # cutting the text keeps the sources
    short = run(toolbox.call("echo", '{"text": "short"}'))
    assert not short.truncated and short.text == "short"
    assert estimate_tokens(observation.text) < estimate_tokens("alpha-galactosidase " * 500)


def test_schemas_follow_the_openai_tools_format() -> None:
    schema = Echo().schema()
    assert schema["type"] == "function"
    function = schema["function"]
    assert function["name"] == "echo" and function["description"] == "Repeat a text."
    assert function["parameters"]["required"] == ["text"]
    assert "title" not in function["parameters"]
    assert [s["function"]["name"] for s in box().schemas()] == ["echo", "sleep", "broken"]


def test_two_tools_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="two tools are named 'echo'"):
        ToolBox([Echo(), Echo()])


def test_aclose_closes_the_tools_then_the_shared_resources_once() -> None:
    order: list[str] = []

    class Closing(Echo):
        async def aclose(self) -> None:
            order.append("tool")

    async def async_closer() -> None:
        order.append("async closer")

    toolbox = ToolBox([Closing()], closers=[lambda: order.append("closer"), async_closer])
    run(toolbox.aclose())
    assert order == ["tool", "closer", "async closer"]
    run(toolbox.aclose())
    assert order[3:] == ["tool"]  # resources are released only once
