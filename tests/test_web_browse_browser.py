"""The browsers in headless Chromium: open a trajectory from the list and read its steps;
hostile text stays text; the run and evaluation pages load with the network cut off."""

from __future__ import annotations

import pytest

from tests.test_web_browse import HOSTILE_RUN, SCRIPT, write_hostile_run
from tests.web_fixtures import (
    browser_log,
    chromium_browser,
    chromium_page,
    live_server_url,
    save_screenshot,
    web_workspace,
)

pytestmark = pytest.mark.slow
# Fixtures, used by name.
FIXTURES = (browser_log, chromium_browser, chromium_page, live_server_url, web_workspace)


def test_open_a_trajectory_from_the_list_and_see_its_steps(
    web_workspace,
    live_server_url,
    chromium_page,
    browser_log,
):
    page = chromium_page
    run = web_workspace.trajectory_run
    trajectory = web_workspace.trajectories[0]
    page.goto(f"{live_server_url}/trajectories?run={run}")
    links = page.locator("a.trajectory-link")
    assert links.count() == len(web_workspace.trajectories)
    links.first.click()
    page.wait_for_url(f"**/trajectories/{run}/**")
    steps = page.locator("li.step")
    assistant_turns = [m for m in trajectory.messages if m["role"] == "assistant"]
    assert steps.count() == len(assistant_turns)
    first_call = assistant_turns[0]["tool_calls"][0]["function"]["name"]
    assert steps.first.locator(".tool-name").first.inner_text() == first_call
    assert page.locator(".final-answer").inner_text() == trajectory.final_answer
    page.locator("#expand-steps").click()  # browse.js opens every observation
    closed = page.locator("details.observation:not([open])")
    assert closed.count() == 0
    save_screenshot(page, "trajectory")
    assert not browser_log.errors


def test_hostile_trajectory_text_is_shown_not_run(
    web_workspace,
    live_server_url,
    chromium_page,
    browser_log,
):
    trajectory = write_hostile_run(web_workspace.ws.root, web_workspace.trajectories[0])
    page = chromium_page
    page.goto(f"{live_server_url}/trajectories/{HOSTILE_RUN}/{trajectory.id}")
    thought = page.locator("li.step").first.locator("pre.thought").nth(1)
    assert thought.inner_text() == SCRIPT
    assert page.locator("main script, main img, main iframe, main svg").count() == 0
    save_screenshot(page, "trajectory-hostile")
    # The chromium_page fixture fails the test if any alert() fired.
    assert not browser_log.dialogs


def test_run_and_eval_pages_load_offline(
    web_workspace,
    live_server_url,
    chromium_page,
    browser_log,
):
    page = chromium_page
    page.goto(f"{live_server_url}/runs")
    page.locator("table.runs a").first.click()
    page.wait_for_url("**/runs/**")
    assert page.locator("#run-counts").count() == 1
    page.goto(f"{live_server_url}/eval/{web_workspace.eval_run}")
    images = page.locator(".plots img")
    assert images.count() > 0
    page.wait_for_load_state("networkidle")
    widths = page.eval_on_selector_all(".plots img", "imgs => imgs.map(i => i.naturalWidth)")
    assert all(width > 0 for width in widths)  # every plot was served and decoded
    save_screenshot(page, "evaluation")
    assert not browser_log.errors


def test_run_page_follows_a_live_run(web_workspace, live_server_url, chromium_page, browser_log):
    from medresearcher.workspace import Run

    run = Run(web_workspace.ws, "browser-live", web_workspace.settings, argv=["browser-live"])
    run.__enter__()
    try:
        page = chromium_page
        page.goto(f"{live_server_url}/runs/{run.run_id}")
        page.locator("#run-live-note", has_text="following live").wait_for()
        run.count("questions", 7)
        run.progress(7, 20, label="questions")
        run.save()
        page.locator("#run-counts td", has_text="7").wait_for()
        page.locator("#run-progress", has_text="7 / 20").wait_for()
    finally:
        run.__exit__(None, None, None)
    page.locator("#run-live-note", has_text="ended").wait_for()
    assert page.locator("#run-live .badge.status").inner_text() == "ok"
    save_screenshot(page, "run-live")
    assert not browser_log.errors
