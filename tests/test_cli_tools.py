"""``medresearcher tools list`` and ``tools call`` (the sub-app mounted as the root app does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from medresearcher.cli import tools_cmd
from medresearcher.cli.state import CliState
from medresearcher.data import iter_documents
from medresearcher.retrieval import build_index
from medresearcher.tools import Observation


def make_app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def root(
        ctx: typer.Context,
        workspace: Annotated[Path | None, typer.Option("--workspace", "-w")] = None,
    ) -> None:
        ctx.obj = CliState(workspace=workspace)

    app.add_typer(tools_cmd.app, name="tools")
    return app


def invoke(*args: str):
    return CliRunner().invoke(make_app(), list(args), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "ws"
    build_index(iter_documents("tiny"), root / "index", source="bundle:tiny")
    return root


def test_list_shows_each_tool_and_its_arguments(workspace: Path) -> None:
    result = invoke("-w", str(workspace), "tools", "list")
    assert result.exit_code == 0, result.output
    for name in ("web_search", "document_read", "medical_retriever"):
        assert name in result.output
    assert "queries" in result.output and "url_or_id" in result.output


def test_list_json_prints_the_schemas(workspace: Path) -> None:
    result = invoke("-w", str(workspace), "tools", "list", "--json")
    assert result.exit_code == 0, result.output
    schemas = json.loads(result.output)
    names = [s["function"]["name"] for s in schemas]
    assert names[:3] == ["web_search", "document_read", "medical_retriever"]
    web = schemas[0]["function"]["parameters"]
    assert web["properties"]["queries"]["type"] == "array"


def test_call_prints_the_observation_and_its_sources(workspace: Path) -> None:
    result = invoke(
        "-w",
        str(workspace),
        "tools",
        "call",
        "medical_retriever",
        '{"query": "Marfan syndrome FBN1", "k": 2}',
    )
    assert result.exit_code == 0, result.output
    assert "medical_retriever" in result.output
    assert "Marfan syndrome" in result.output
    assert "sources" in result.output and "ORPHA:558" in result.output


def test_call_json_prints_the_whole_observation(workspace: Path) -> None:
    result = invoke(
        "-w",
        str(workspace),
        "tools",
        "call",
        "web_search",
        '{"queries": ["Fabry disease GLA"]}',
        "--json",
    )
    assert result.exit_code == 0, result.output
    observation = Observation.model_validate_json(result.output)
    assert not observation.error
    assert observation.payload["backend"] == "local"
    assert observation.sources


def test_a_failed_call_exits_1_with_the_error(workspace: Path) -> None:
    bad_json = invoke("-w", str(workspace), "tools", "call", "web_search", "{queries")
    assert bad_json.exit_code == 1 and "not valid JSON" in bad_json.output
    unknown = invoke("-w", str(workspace), "tools", "call", "web_serch", "{}")
    assert unknown.exit_code == 1 and "unknown tool 'web_serch'" in unknown.output
    refused = invoke(
        "-w",
        str(workspace),
        "tools",
        "call",
        "document_read",
        '{"url_or_id": "http://169.254.169.254/latest/meta-data"}',
    )
    assert refused.exit_code == 1 and "refused to fetch" in refused.output


def test_without_an_index_the_user_is_told_to_build_one(tmp_path: Path) -> None:
    result = invoke(
        "-w", str(tmp_path / "empty"), "tools", "call", "medical_retriever", '{"query": "Fabry"}'
    )
    assert result.exit_code == 1
    assert "medresearcher index build" in " ".join(result.output.split())
