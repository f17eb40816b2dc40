"""Fixtures shared by the web UI's tests: a small workspace, the app, a live server, Chromium.

A test module registers them with (pytest then finds them by name; importing the names
instead would trip ruff's F811 on every test argument)::

    pytest_plugins = ["tests.web_fixtures"]

- ``web_workspace`` (session; read-only, see :func:`copy_workspace`): the tiny bundle's
  graph, its lexical index, a few template questions (``qa.jsonl``, ``samples.jsonl``),
  path-guided trajectories of two of them (``trajectories/web-path-guided.jsonl``), a small
  evaluation run (``eval/web-eval/`` with its report and ``trajectories/web-eval.jsonl``),
  run manifests, and one hostile entity named ``<script>alert(1)</script>`` linked to Fabry
  disease (added after the questions were written, so no question depends on it).
- ``asgi_client`` (module): a FastAPI ``TestClient`` over ``create_app`` on that workspace.
- ``live_server_url`` (module): the same app served by uvicorn on 127.0.0.1, a free port.
- ``chromium_browser`` (module) and ``chromium_page`` (per test): headless Debian Chromium
  through Playwright, skipped (with the reason) when ``/usr/bin/chromium`` or the playwright
  package is missing. Every request to a host other than 127.0.0.1 is aborted and recorded in
  ``browser_log.external``; dialogs (``alert``) are dismissed and recorded in
  ``browser_log.dialogs``; page errors in ``browser_log.errors``. The page fixture fails the
  test at teardown if any external request was attempted or any dialog fired.
- ``save_screenshot(page, name)``: a PNG under ``tests/artifacts/`` (git-ignored), the test
  artefacts CI keeps.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from medresearcher.config import Settings
from medresearcher.data import bundle_dir, iter_documents
from medresearcher.kg import GraphStore
from medresearcher.kg.io import import_records
from medresearcher.schema import Entity, QARecord, Relation, Trajectory
from medresearcher.web.headless import CHROMIUM, CHROMIUM_ARGS
from medresearcher.workspace import JsonlWriter, Run, Workspace, read_jsonl

__all__ = [
    "ARTIFACTS_DIR",
    "CHROMIUM",
    "EVAL_RUN",
    "EVIL_ID",
    "EVIL_NAME",
    "TRAJECTORY_RUN",
    "BrowserLog",
    "WebWorkspace",
    "asgi_client",
    "browser_log",
    "build_web_workspace",
    "chromium_browser",
    "chromium_page",
    "copy_workspace",
    "live_server_url",
    "save_screenshot",
    "web_workspace",
]

ARTIFACTS_DIR = Path(__file__).parent / "artifacts"
EVIL_ID = "TEST:xss"
EVIL_NAME = "<script>alert(1)</script>"
TRAJECTORY_RUN = "web-path-guided"
EVAL_RUN = "web-eval"
N_QUESTIONS = 6


@dataclass
class WebWorkspace:
    """What the web tests read: the workspace, its settings and what was written into it."""

    ws: Workspace
    settings: Settings
    records: list[QARecord]  # qa.jsonl, in file order
    trajectories: list[Trajectory]  # trajectories/<TRAJECTORY_RUN>.jsonl
    trajectory_run: str = TRAJECTORY_RUN
    eval_run: str = EVAL_RUN
    evil_id: str = EVIL_ID
    evil_name: str = EVIL_NAME


def build_web_workspace(root: Path) -> WebWorkspace:
    """Build the small workspace described in the module docstring under ``root``.

    Built on a worker thread: it runs coroutines with ``asyncio.run``, which cannot start
    where Playwright's sync API already runs an event loop (a browser fixture set up first).
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_build, root).result()


def _build(root: Path) -> WebWorkspace:
    from medresearcher.agent import run_agent
    from medresearcher.agent.path_guided import policy_for
    from medresearcher.qa.batch import QABatchOptions, generate_qa
    from medresearcher.retrieval import build_index
    from medresearcher.sampling import GraphView
    from medresearcher.tools import build_toolbox

    ws = Workspace(root).ensure()
    settings = Settings(workspace=ws.root)
    with Run(ws, "web-fixture", settings, argv=["web-fixture"]) as run:
        with GraphStore(ws.kg_path) as store:
            import_records(store, bundle_dir("tiny"))
            build_index(iter_documents("tiny"), ws.index_dir, source="bundle:tiny")
            anchors = sorted(
                e.id
                for e in store.iter_entities()
                if e.id.startswith("ORPHA:") and e.attrs.get("rare")
            )
            options = QABatchOptions(n=N_QUESTIONS, seed=3, workers=4)
            with (
                JsonlWriter(ws.qa_path) as out,
                JsonlWriter(ws.samples_path) as samples,
            ):
                asyncio.run(
                    generate_qa(
                        store,
                        GraphView.from_store(store),
                        anchors,
                        options,
                        out=out,
                        samples=samples,
                    )
                )
            _add_hostile_entity(store)
        records = list(read_jsonl(ws.qa_path, QARecord))
        run.count("qa_written", len(records))
        passed = [r for r in records if r.passed] or records
        limits = settings.agent.model_copy(update={"max_turns": 24})

        async def follow() -> list[Trajectory]:
            toolbox = build_toolbox(settings, ws)
            try:
                return [
                    await run_agent(
                        r.question,
                        policy=policy_for(r, settings),
                        toolbox=toolbox,
                        limits=limits,
                        qa_id=r.id,
                    )
                    for r in passed[:2]
                ]
            finally:
                await toolbox.aclose()

        trajectories = asyncio.run(follow())
        with JsonlWriter(ws.trajectories_path(TRAJECTORY_RUN)) as out:
            for trajectory in trajectories:
                out.write(trajectory)
        run.count("trajectories", len(trajectories))
    _evaluate(ws, settings, passed[2:4] or passed[:1])
    return WebWorkspace(ws=ws, settings=settings, records=records, trajectories=trajectories)


def _add_hostile_entity(store: GraphStore) -> None:
    """An entity whose name is markup, linked to Fabry disease: it must render as text."""
    store.add_entity(
        Entity(
            id=EVIL_ID,
            type="gene",
            name=EVIL_NAME,
            aliases=['"><img src=x onerror=alert(2)>'],
            attrs={"symbol": EVIL_NAME},
            source="test:hostile",
        )
    )
    store.add_relation(
        Relation(
            subj="ORPHA:324", pred="associated_gene", obj=EVIL_ID, source="test:<b>hostile</b>"
        )
    )


def _evaluate(ws: Workspace, settings: Settings, records: list[QARecord]) -> None:
    """A small evaluation run (path-guided, graded by rules) with its report and plots."""
    from medresearcher.cli.demo_synthesis_steps import path_guided_evaluation

    with Run(ws, "eval-run", settings, argv=["eval", "run", "--run", EVAL_RUN]) as run:
        results, _, _ = path_guided_evaluation(
            ws, settings, records, EVAL_RUN, max_turns=24, workers=2
        )
        run.count("items", len(results))


@pytest.fixture(scope="session")
def web_workspace(tmp_path_factory: pytest.TempPathFactory) -> WebWorkspace:
    """The small workspace, built once per session (a few seconds) and shared by every web
    test module: read it, never write into it (a test that writes uses
    :func:`copy_workspace`)."""
    return build_web_workspace(tmp_path_factory.mktemp("web") / "workspace")


@pytest.fixture(scope="module")
def asgi_client(web_workspace: WebWorkspace) -> Iterator[Any]:
    """``fastapi.testclient.TestClient`` over the app on ``web_workspace``."""
    from fastapi.testclient import TestClient

    from medresearcher.web import create_app

    with TestClient(create_app(web_workspace.settings)) as client:
        yield client


@pytest.fixture(scope="module")
def live_server_url(web_workspace: WebWorkspace) -> Iterator[str]:
    """``http://127.0.0.1:<port>``: the app served by uvicorn in a thread."""
    import uvicorn

    from medresearcher.web import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(web_workspace.settings), log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test web server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (install Debian's chromium package)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright Python package is missing (pip install '.[web]')"
    return None


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Any]:
    """One headless Chromium per test module; skipped with the reason when unavailable."""
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class BrowserLog:
    """What a page tried that it should not: requests off 127.0.0.1, dialogs, script errors."""

    external: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def chromium_page(chromium_browser: Any, browser_log: BrowserLog) -> Iterator[Any]:
    """A fresh page (own context) with the network cut off beyond 127.0.0.1."""
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 900})

    def guard(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route.continue_()
        else:
            browser_log.external.append(route.request.url)
            route.abort()

    def on_dialog(dialog: Any) -> None:
        browser_log.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: browser_log.errors.append(str(error)))
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
    assert not browser_log.external, f"requests off 127.0.0.1: {browser_log.external}"
    assert not browser_log.dialogs, f"dialogs fired: {browser_log.dialogs}"


def save_screenshot(page: Any, name: str) -> Path:
    """Save a full-page PNG as a test artefact under ``tests/artifacts/<name>.png``."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def copy_workspace(source: WebWorkspace, target: Path) -> WebWorkspace:
    """A copy of ``source`` under ``target`` for a test that writes into its workspace."""
    shutil.copytree(source.ws.root, target)
    ws = Workspace(target)
    return WebWorkspace(
        ws=ws,
        settings=Settings(workspace=ws.root),
        records=source.records,
        trajectories=source.trajectories,
    )
