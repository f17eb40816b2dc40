"""The run monitor: run list, run page, and live progress over server-sent events."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medresearcher.config import EndpointSettings, Settings
from medresearcher.web import create_app, routes_runs
from medresearcher.workspace import Run, Workspace, load_manifest
from tests.web_fixtures import asgi_client, web_workspace

SECRET = "sk-live-0123456789abcdef"
# Fixtures, used by name.
FIXTURES = (asgi_client, web_workspace)


def test_run_list_shows_every_run_with_counts_usage_and_cost(asgi_client, web_workspace):
    page = asgi_client.get("/runs")
    assert page.status_code == 200
    for command in ("web-fixture", "eval-run"):
        assert f"<td>{command}</td>" in page.text
    fixture_run = next(m for m in _manifests(web_workspace.ws) if m["command"] == "web-fixture")
    assert f'href="/runs/{fixture_run["run_id"]}"' in page.text
    assert f"qa_written <b>{fixture_run['counts']['qa_written']}</b>" in page.text
    assert "not priced" in page.text  # no model was called, so no cost: not "$0"


def test_run_list_filters_by_command(asgi_client):
    page = asgi_client.get("/runs", params={"command": "eval"})
    assert "<td>eval-run</td>" in page.text
    assert "<td>web-fixture</td>" not in page.text


def test_run_page_shows_the_manifest(asgi_client, web_workspace):
    manifest = next(m for m in _manifests(web_workspace.ws) if m["command"] == "eval-run")
    page = asgi_client.get(f"/runs/{manifest['run_id']}")
    assert page.status_code == 200
    assert "eval run --run web-eval" in page.text  # argv
    assert routes_runs.settings_digest(manifest["config"]) in page.text
    assert f'items</th><td class="num">{manifest["counts"]["items"]}' in page.text
    # An ended run is not followed: the page says so through data-status.
    assert 'data-status="ok"' in page.text


@pytest.mark.parametrize("run_id", ["nope", "..%2F..%2Fetc", "%2E%2E", "a%00b", "..%2Fruns"])
def test_unknown_or_hostile_run_ids_are_404(asgi_client, run_id):
    assert asgi_client.get(f"/runs/{run_id}").status_code == 404
    assert asgi_client.get(f"/api/runs/{run_id}/events").status_code == 404


def test_run_page_and_summary_hold_no_secret(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TEST_WEB_KEY", SECRET)
    endpoint = EndpointSettings(
        base_url="http://127.0.0.1:9/v1", model="m", api_key_env="TEST_WEB_KEY"
    )
    settings = Settings(workspace=tmp_path / "ws", llm={"judge": endpoint})
    ws = Workspace(settings.workspace).ensure()
    with Run(ws, "secretive", settings, argv=["x", "--key", SECRET]) as run:
        run.record_usage(
            {
                "judge": {"model": "m", "requests": 2, "prompt_tokens": 10, "completion_tokens": 5},
                "total": {
                    "requests": 2,
                    "prompt_tokens": 10,
                    "completion_tokens": 5,
                    "total_tokens": 15,
                    "cost_usd": 0.25,
                },
            }
        )
    with TestClient(create_app(settings)) as client:
        page = client.get(f"/runs/{run.run_id}")
        listing = client.get("/runs")
    assert page.status_code == 200
    assert SECRET not in page.text and SECRET not in listing.text
    assert "<td>judge</td><td>m</td>" in page.text  # the endpoint is listed, without its key
    assert "$0.2500" in listing.text and ">15<" in listing.text


def test_usage_totals_sum_endpoints_when_no_total_and_keep_missing_cost_none():
    usage = {
        "a": {"requests": 1, "prompt_tokens": 3, "completion_tokens": 1},
        "b": {"requests": 2, "prompt_tokens": 5, "completion_tokens": 2, "cost_usd": 0.5},
    }
    assert routes_runs.usage_totals(usage) == {
        "requests": 3,
        "prompt_tokens": 8,
        "completion_tokens": 3,
        "total_tokens": 11,
        "cost_usd": 0.5,
    }
    assert routes_runs.usage_totals({})["cost_usd"] is None


def test_run_saves_its_manifest_while_counting_at_most_once_an_interval(tmp_path: Path):
    settings = Settings(workspace=tmp_path / "ws")
    ws = Workspace(settings.workspace).ensure()
    with Run(ws, "counting", settings, argv=["counting"]) as run:
        run.SAVE_INTERVAL_S = 3600.0  # not due: counts stay in memory
        run.count("items", 2)
        assert load_manifest(ws, run.run_id)["counts"] == {}
        run.SAVE_INTERVAL_S = 0.0  # due at once: the next count reaches the file
        run.count("items", 3)
        run.progress(5, 10, label="questions")
        on_disk = load_manifest(ws, run.run_id)
        assert on_disk["status"] == "running"
        assert on_disk["counts"] == {"items": 5}
        assert on_disk["progress"] == {"done": 5, "total": 10, "label": "questions"}
    final = load_manifest(ws, run.run_id)
    assert final["status"] == "ok" and final["counts"] == {"items": 5}


@pytest.fixture
def live_run(tmp_path: Path, monkeypatch) -> Iterator[tuple[TestClient, Run]]:
    """A run left open (status running) in its own workspace, and a client on it."""
    monkeypatch.setattr(routes_runs, "POLL_INTERVAL_S", 0.01)
    settings = Settings(workspace=tmp_path / "ws")
    ws = Workspace(settings.workspace).ensure()
    run = Run(ws, "live", settings, argv=["live"])
    run.__enter__()
    try:
        with TestClient(create_app(settings)) as client:
            yield client, run
    finally:
        if run.manifest["status"] == "running":
            run.__exit__(None, None, None)


def test_events_follow_a_live_run_until_it_ends(live_run):
    client, run = live_run
    page = client.get(f"/runs/{run.run_id}")
    assert 'data-status="running"' in page.text
    assert f'data-events-url="/api/runs/{run.run_id}/events"' in page.text
    seen: list[tuple[str, Any]] = []
    with client.stream("GET", f"/api/runs/{run.run_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response.iter_lines())
        first = _next_of(events, "manifest", seen)
        assert first["status"] == "running" and first["counts"] == {}

        run.count("questions", 4)
        run.save()
        logging.getLogger("medresearcher.test").warning("wrote <4> questions")
        assert _next_of(events, "manifest", seen)["counts"] == {"questions": 4}

        run.__exit__(None, None, None)
        last = _next_of(events, "manifest", seen)
        assert last["status"] == "ok" and last["elapsed_s"] is not None
        assert _next_of(events, "end", seen) == {"status": "ok"}
        assert next(events, None) is None  # the stream closed after "end"
    logs = "".join(data for name, data in seen if name == "log")
    assert "wrote <4> questions" in logs


def test_events_of_an_ended_run_send_it_once_and_end(asgi_client, web_workspace):
    run_id = _manifests(web_workspace.ws)[0]["run_id"]
    response = asgi_client.get(f"/api/runs/{run_id}/events")
    names = [name for name, _ in _events(response.text.splitlines())]
    assert names == ["manifest", "end"]


def _manifests(ws: Workspace) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(ws.runs_root.glob("*/manifest.json"))]


def _events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """Parse a text/event-stream into (event, data) pairs; comments are skipped."""
    name, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])


def _next_of(events: Iterator[tuple[str, Any]], wanted: str, seen: list) -> Any:
    for name, data in events:
        seen.append((name, data))
        if name == wanted:
            return data
    raise AssertionError(f"the stream ended before a {wanted!r} event; saw {seen}")
