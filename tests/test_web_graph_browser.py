"""The graph explorer and the QA lab in headless Chromium (Debian's, through Playwright).

Every page runs with the network cut off beyond 127.0.0.1 (``chromium_page`` aborts and
records any other request, and fails the test if one was attempted or a dialog fired), so
these tests also show that the pages load offline and that hostile KG text never runs.
Screenshots are saved under tests/artifacts/.
"""

from __future__ import annotations

import re

import pytest

pytest_plugins = ["tests.web_fixtures"]

pytestmark = pytest.mark.slow

EVIL_ID = "TEST:xss"  # the hostile entity tests/web_fixtures.py adds to the graph
EVIL_NAME = "<script>alert(1)</script>"


def _node(page, entity_id: str):
    return page.locator(f'svg#graph g.node[data-id="{entity_id}"]')


def test_search_fabry_expand_and_see_gla_offline(
    chromium_page, live_server_url, browser_log
) -> None:
    from tests.web_fixtures import save_screenshot

    page = chromium_page
    page.goto(f"{live_server_url}/graph")
    assert page.evaluate("typeof d3") == "object"  # served from /static/vendor, not a CDN
    page.fill("#search-input", "Fabry")
    page.click("#search-form button[type=submit]")
    result = page.locator('#search-results button[data-id="ORPHA:324"]')
    result.wait_for()
    assert "Fabry disease" in result.inner_text()
    result.click()
    _node(page, "HGNC:4296").wait_for()
    assert _node(page, "HGNC:4296").locator("text.name").text_content() == "GLA"
    assert "expanded" in (_node(page, "ORPHA:324").get_attribute("class") or "")
    # Colour by type: the gene and the disorder differ.
    gene = _node(page, "HGNC:4296").locator("circle").get_attribute("fill")
    disease = _node(page, "ORPHA:324").locator("circle").get_attribute("fill")
    assert gene and disease and gene != disease
    # Predicates and phenotype frequencies on the edges.
    labels = page.locator("svg#graph text.edge-label").all_text_contents()
    assert "associated_gene" in labels
    assert any(re.match(r"has_phenotype · \d+-\d+%", label) for label in labels)
    # The hostile entity's name is shown as text; nothing ran (the fixture checks dialogs).
    assert _node(page, EVIL_ID).locator("text.name").text_content() == EVIL_NAME
    assert page.locator("script", has_text="alert(1)").count() == 0
    # The details panel shows the entity and how many relations are drawn.
    details = page.locator("#details")
    assert "Fabry disease" in details.inner_text() and "ORPHA:324" in details.inner_text()
    # Clicking GLA expands it (in the tiny graph its one disorder is drawn already).
    _node(page, "HGNC:4296").dispatch_event("click")
    page.locator("#details h3", has_text="GLA").wait_for()
    assert "expanded" in (_node(page, "HGNC:4296").get_attribute("class") or "")
    assert "showing 1 of 1 relations" in page.locator("#details").inner_text()
    page.wait_for_timeout(1500)  # let the layout settle for the screenshot
    save_screenshot(page, "graph-explorer")
    assert browser_log.external == [] and browser_log.errors == []


def test_clicking_an_edge_shows_the_fact_and_its_sources(chromium_page, live_server_url) -> None:
    page = chromium_page
    page.goto(f"{live_server_url}/graph?entity=ORPHA:324")
    _node(page, "HGNC:4296").wait_for()
    label = page.locator("svg#graph text.edge-label", has_text="has_phenotype").first
    # The force layout keeps moving, so a pointer click can land on a node drawn over the
    # label; dispatching the event on the label tests its handler without that race.
    label.dispatch_event("click")
    page.locator("#details ul.sources li").first.wait_for()
    text = page.locator("#details").inner_text()
    assert "frequency" in text and "%" in text
    assert "Orphanet" in page.locator("#details ul.sources").inner_text()


def test_a_sample_is_highlighted_with_its_chain(
    chromium_page, live_server_url, web_workspace
) -> None:
    from medresearcher.schema import Sample
    from medresearcher.workspace import read_jsonl

    sample = next(iter(read_jsonl(web_workspace.ws.samples_path, Sample)))
    page = chromium_page
    page.goto(f"{live_server_url}/graph")
    page.locator(f'#sample-select option[value="{sample.id}"]').wait_for(state="attached")
    page.select_option("#sample-select", sample.id)
    page.click("#sample-form button[type=submit]")
    page.locator("#sample-chain li.entity").first.wait_for()
    chain = page.locator("#sample-chain li.entity")
    assert chain.count() == sample.hops + 1
    assert [chain.nth(i).get_attribute("data-id") for i in range(chain.count())] == sample.chain[
        ::2
    ]
    assert page.locator("svg#graph g.node.chain").count() == len(set(sample.chain[::2]))
    assert page.locator("svg#graph line.link.hl").count() >= sample.hops


def test_markup_injected_at_run_time_cannot_run_script(
    chromium_page, live_server_url, browser_log
) -> None:
    """The Content-Security-Policy blocks inline handlers even if markup got into the page."""
    page = chromium_page
    page.goto(f"{live_server_url}/graph")
    page.evaluate(
        "document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=\"alert(3)\">');"
        "const s = document.createElement('script'); s.textContent = 'alert(4)';"
        "document.body.append(s);"
    )
    page.wait_for_timeout(300)
    assert browser_log.dialogs == []


def test_qa_lab_writes_a_template_question_beside_its_chain(
    chromium_page, live_server_url, browser_log
) -> None:
    from tests.web_fixtures import save_screenshot

    page = chromium_page
    page.goto(f"{live_server_url}/qa-lab")
    # Offline: the LLM writer is unavailable and the page says why.
    assert page.locator("input[name=writer][value=llm]").is_disabled()
    assert "needs a model" in page.locator("#llm-note").inner_text()
    page.fill("#anchor", "Fabry")
    pick = page.locator('#anchor-results button[data-id="ORPHA:324"]')
    pick.wait_for()
    pick.click()
    assert page.input_value("#anchor") == "ORPHA:324"
    page.select_option("#strategy", "augmented_chain")
    assert page.locator('.params[data-strategy="augmented_chain"]').is_visible()
    assert not page.locator('.params[data-strategy="community_core_path"]').is_visible()
    page.fill('.params[data-strategy="augmented_chain"] input[data-param="side"]', "1")
    page.select_option("#paradigm", "identify")
    page.click("#generate")
    page.locator("#lab-result:not([hidden])").wait_for()
    page.locator("#lab-status", has_text="written").wait_for()
    assert len(page.locator("#question").inner_text()) > 20
    assert page.locator("#answer").inner_text()
    assert page.locator("#cheat-sheet li").count() >= 2
    checks = page.locator("#checks tr")
    assert checks.count() >= 5
    verdicts = set(page.locator("#checks td.verdict").all_text_contents())
    assert verdicts <= {"pass", "fail"} and verdicts
    assert page.locator("#specialties").inner_text() not in ("", "—")
    chain = page.locator("#lab-chain li.entity")
    assert chain.count() >= 2
    assert chain.last.inner_text() == page.locator("#answer").inner_text()
    assert page.locator("svg#lab-graph g.node.chain").count() == chain.count()
    status = page.locator("#lab-status").inner_text()
    assert status.startswith("written")
    page.wait_for_timeout(1500)
    save_screenshot(page, "qa-lab")
    assert browser_log.external == [] and browser_log.errors == []
