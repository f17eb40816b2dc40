"""The browsers of QA records, trajectories and evaluations: search, filters, pages, detail
views, paths kept inside the workspace, and hostile text shown as text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from medresearcher.schema import Trajectory
from medresearcher.web import browse_data as data
from medresearcher.web import create_app, eval_data
from medresearcher.workspace import JsonlWriter
from tests.web_fixtures import asgi_client, copy_workspace, web_workspace

HOSTILE_RUN = "hostile"
SCRIPT = "<script>alert(1)</script>"
# Fixtures, used by name.
FIXTURES = (asgi_client, web_workspace)


def hostile_trajectory(base: Trajectory) -> Trajectory:
    """``base`` with markup in its thought, tool name, arguments, observation and answer."""
    messages = [
        {"role": "system", "content": "system <i>prompt</i>"},
        {"role": "user", "content": base.question},
        {
            "role": "assistant",
            "content": SCRIPT,
            "reasoning_content": "<img src=x onerror=alert(2)>",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "<b>medical_retriever</b>",
                        "arguments": json.dumps({"query": "</pre><script>alert(3)</script>"}),
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "<iframe src=javascript:alert(4)>"},
        {"role": "assistant", "content": "<answer><svg onload=alert(5)></answer>"},
    ]
    return base.model_copy(
        update={
            "id": "T:hostile",
            "messages": messages,
            "final_answer": "<svg onload=alert(5)>",
            "judge": {"verdict": "correct", "grader": "rule:exact", "gold": "<u>gold</u>"},
            "stats": {"calls": [{"call_id": "call_1", "sources": ["<b>PMID:1</b>"]}]},
        }
    )


def write_hostile_run(ws_root: Path, base: Trajectory) -> Trajectory:
    trajectory = hostile_trajectory(base)
    with JsonlWriter(ws_root / "trajectories" / f"{HOSTILE_RUN}.jsonl") as out:
        out.write(trajectory)
    return trajectory


# --- pure functions --------------------------------------------------------------------------


def test_qa_search_filters_and_pages(web_workspace):
    path = web_workspace.ws.qa_path
    records = web_workspace.records
    everything = data.search_qa(path, data.QAQuery(), limit=2)
    assert everything.total == len(records)
    assert [r.id for r in everything.items] == [r.id for r in records[:2]]
    assert everything.next_offset == 2 and everything.prev_offset is None

    second = data.search_qa(path, data.QAQuery(), offset=2, limit=2)
    assert [r.id for r in second.items] == [r.id for r in records[2:4]]

    target = records[-1]
    by_answer = data.search_qa(path, data.QAQuery(text=target.answer.upper()))
    assert target.id in {r.id for r in by_answer.items}
    assert all(
        target.answer.casefold() in (r.question + r.answer + " ".join(r.answer_aliases)).casefold()
        for r in by_answer.items
    )

    hops = data.search_qa(path, data.QAQuery(hops=target.hops, strategy=target.strategy))
    assert hops.total == sum(
        1 for r in records if r.hops == target.hops and r.strategy == target.strategy
    )
    failed = data.search_qa(path, data.QAQuery(checks="failed"))
    assert failed.total == sum(1 for r in records if not r.passed)
    passed = data.search_qa(path, data.QAQuery(checks="passed"))
    assert passed.total + failed.total == len(records)


def test_qa_facets_list_every_value_and_follow_the_file(tmp_path, web_workspace):
    path = tmp_path / "qa.jsonl"
    path.write_bytes(web_workspace.ws.qa_path.read_bytes())
    facets = data.qa_facets(path)
    assert facets["strategy"] == sorted({r.strategy for r in web_workspace.records})
    assert facets["hops"] == sorted({r.hops for r in web_workspace.records})
    extra = web_workspace.records[0].model_copy(
        update={"id": "Q:extra", "strategy": "zz_new", "specialties": ["zz specialty"]}
    )
    with path.open("a") as handle:
        handle.write(extra.model_dump_json() + "\n")
    facets = data.qa_facets(path)
    assert "zz_new" in facets["strategy"] and "zz specialty" in facets["specialty"]


def test_trajectory_steps_pair_calls_with_their_observations_and_sources(web_workspace):
    trajectory = web_workspace.trajectories[0]
    steps = data.trajectory_steps(trajectory)
    assistant = [m for m in trajectory.messages if m["role"] == "assistant"]
    assert len(steps) == len(assistant)
    calls = [c for s in steps for c in s.calls]
    observations = [o for s in steps for o in s.observations]
    assert len(calls) == trajectory.stats["tool_calls"]
    assert [o.call_id for o in observations] == [c.call_id for c in calls]
    recorded = {c["call_id"]: c["sources"] for c in trajectory.stats["calls"]}
    for observation in observations:
        assert observation.sources == recorded[observation.call_id]
        assert observation.name in {c.name for c in calls}
    first_args = assistant[0]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(calls[0].arguments) == json.loads(first_args)


def test_trajectory_search_filters(web_workspace):
    path = web_workspace.ws.trajectories_path(web_workspace.trajectory_run)
    n = len(web_workspace.trajectories)
    assert data.search_trajectories(path, data.TrajectoryQuery()).total == n
    assert data.search_trajectories(path, data.TrajectoryQuery(policy="path_guided")).total == n
    assert data.search_trajectories(path, data.TrajectoryQuery(policy="llm:x")).total == 0
    assert data.search_trajectories(path, data.TrajectoryQuery(filter="unfiltered")).total == n
    assert data.search_trajectories(path, data.TrajectoryQuery(verdict="unjudged")).total == n
    first = web_workspace.trajectories[0]
    found = data.search_trajectories(path, data.TrajectoryQuery(text=first.question[5:40]))
    assert first.id in {t.id for t in found.items}


def test_eval_runs_list_metrics_and_plots(web_workspace):
    runs = eval_data.list_eval_runs(web_workspace.ws.eval_root)
    assert [r.run for r in runs] == [web_workspace.eval_run]
    run = runs[0]
    assert run.metrics is not None and run.has_report and run.has_results
    assert run.plots and all(p.endswith(".png") for p in run.plots)
    assert run.accuracy == run.metrics["accuracy"]["avg_pass@1"]


# --- pages -----------------------------------------------------------------------------------


def test_qa_list_searches_and_filters(asgi_client, web_workspace):
    records = web_workspace.records
    page = asgi_client.get("/qa")
    assert page.status_code == 200
    for record in records:
        assert f'href="/qa/{record.id.replace(":", "%3A")}"' in page.text
    target = records[0]
    narrowed = asgi_client.get("/qa", params={"q": target.answer, "hops": str(target.hops)})
    assert target.id.replace(":", "%3A") in narrowed.text
    others = [
        r
        for r in records
        if target.answer.casefold() not in (r.question + r.answer).casefold()
        and not any(target.answer.casefold() in a.casefold() for a in r.answer_aliases)
    ]
    for other in others:
        assert other.id.replace(":", "%3A") not in narrowed.text
    # A filter value that is not a number is ignored rather than a server error.
    assert asgi_client.get("/qa", params={"hops": "x", "offset": "-3"}).status_code == 200


def test_qa_record_page_shows_every_part(asgi_client, web_workspace):
    record = web_workspace.records[0]
    page = asgi_client.get(f"/qa/{record.id}")
    assert page.status_code == 200
    for text in [record.answer, *record.answer_aliases, *record.chain, *record.checks]:
        assert _escaped(text) in page.text
    for step in record.cheat_sheet:
        assert _escaped(step) in page.text
    assert f"level {record.difficulty.level}" in page.text
    assert _escaped(json.dumps(record.provenance, indent=2, ensure_ascii=False)) in page.text
    assert asgi_client.get("/qa/Q:none").status_code == 404


def test_trajectory_list_and_page(asgi_client, web_workspace):
    run = web_workspace.trajectory_run
    listing = asgi_client.get("/trajectories", params={"run": run})
    assert listing.status_code == 200
    assert web_workspace.eval_run in listing.text  # every file is listed
    trajectory = web_workspace.trajectories[0]
    link = f"/trajectories/{run}/{trajectory.id.replace(':', '%3A')}"
    assert f'href="{link}"' in listing.text
    page = asgi_client.get(link)
    assert page.status_code == 200
    steps = data.trajectory_steps(trajectory)
    assert page.text.count('<li class="step"') == len(steps)
    for step in steps:
        assert _escaped(step.thought) in page.text
        for call in step.calls:
            assert _escaped(call.arguments) in page.text
        for observation in step.observations:
            assert _escaped(observation.content) in page.text
    assert _escaped(trajectory.final_answer) in page.text
    filtered = asgi_client.get("/trajectories", params={"run": run, "policy": "llm:none"})
    assert link not in filtered.text


def test_eval_pages_show_metrics_plots_and_serve_the_png(asgi_client, web_workspace):
    run = web_workspace.eval_run
    assert f'href="/eval/{run}"' in asgi_client.get("/eval").text
    page = asgi_client.get(f"/eval/{run}")
    assert page.status_code == 200
    info = eval_data.load_eval_run(web_workspace.ws.eval_dir(run))
    for plot in info.plots:
        assert f'src="/eval/{run}/files/{plot}"' in page.text
    assert "Accuracy by hops" in page.text
    png = asgi_client.get(f"/eval/{run}/files/{info.plots[0]}")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    report = asgi_client.get(f"/eval/{run}/report")
    assert report.status_code == 200
    assert report.headers["content-security-policy"].startswith("sandbox")
    # Only plots and data files are served, not the report through the file route.
    assert asgi_client.get(f"/eval/{run}/files/report.html").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/trajectories/..%2F..%2Fetc/passwd",
        "/trajectories/..%2F..%2Fetc%2Fpasswd/x",
        "/trajectories/%2E%2E/x",
        "/trajectories/..%252F..%252Fetc/passwd",
        "/trajectories?run=..%2F..%2Fetc%2Fpasswd",
        "/trajectories?run=..",
        "/eval/../../x/plot.png",
        "/eval/..%2F..%2Fx/files/plot.png",
        "/eval/%2E%2E/files/metrics.json",
        "/eval/web-eval/files/..%2F..%2F..%2Fetc%2Fpasswd.png",
        "/eval/web-eval/files/..%2Fweb-eval%2Fmetrics.json",
        "/eval/web-eval/files/%2Fetc%2Fhostname.json",
        "/eval/web-eval/files/metrics.json%00.png",
        "/eval/..%2F..%2Fetc/report",
    ],
)
def test_traversal_attempts_are_refused_with_404(asgi_client, url):
    response = asgi_client.get(url)
    assert response.status_code == 404, (url, response.status_code, response.text[:200])


def test_hostile_text_renders_as_text(tmp_path, web_workspace):
    copy = copy_workspace(web_workspace, tmp_path / "ws")
    trajectory = write_hostile_run(copy.ws.root, web_workspace.trajectories[0])
    record = web_workspace.records[0].model_copy(
        update={"id": "Q:hostile", "question": SCRIPT, "answer": "<img src=x onerror=alert(6)>"}
    )
    with JsonlWriter(copy.ws.qa_path) as out:
        out.write(record)
    with TestClient(create_app(copy.settings)) as client:
        pages = [
            client.get(f"/trajectories/{HOSTILE_RUN}/{trajectory.id}"),
            client.get("/trajectories", params={"run": HOSTILE_RUN}),
            client.get("/qa/Q:hostile"),
            client.get("/qa", params={"q": "script"}),
        ]
    for page in pages:
        assert page.status_code == 200
        for raw in ("<script>alert", "<img src=x", "<iframe", "<svg", "<b>medical", "<u>gold"):
            assert raw not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0].text
    assert "&lt;iframe src=javascript:alert(4)&gt;" in pages[0].text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[2].text


def test_an_unreadable_file_gives_its_message_not_a_traceback(tmp_path, web_workspace):
    copy = copy_workspace(web_workspace, tmp_path / "ws")
    with copy.ws.trajectories_path("broken").open("w") as handle:
        handle.write('{"id": "T:1"}\n')  # valid JSON, not a trajectory
    with TestClient(create_app(copy.settings)) as client:
        page = client.get("/trajectories", params={"run": "broken"})
    assert page.status_code == 422
    assert "broken.jsonl:1" in page.text


def _escaped(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def test_an_empty_workspace_says_what_to_run(tmp_path):
    from medresearcher.config import Settings

    with TestClient(create_app(Settings(workspace=tmp_path / "empty"))) as client:
        pages = {url: client.get(url) for url in ("/qa", "/trajectories", "/eval", "/runs")}
    assert all(page.status_code == 200 for page in pages.values())
    assert "medresearcher qa generate" in pages["/qa"].text
    assert "medresearcher traj generate" in pages["/trajectories"].text
    assert "medresearcher eval run" in pages["/eval"].text
