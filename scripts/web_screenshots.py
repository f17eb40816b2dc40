"""Render the README's screenshots of the web UI from a demo workspace.

    python scripts/web_screenshots.py --workspace workspace --out docs/images

Serves the workspace on 127.0.0.1 (a free port) and drives Debian's headless Chromium through
Playwright, with every request beyond 127.0.0.1 aborted: the pages are shown as they load
offline. Writes ``graph-explorer.png`` (search "Fabry", Fabry disease expanded, a sample's
chain highlighted) and ``qa-lab.png`` (one template question beside its chain).
Needs ``medresearcher demo`` to have run on the workspace and ``make web-assets``.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from medresearcher.web.headless import CHROMIUM, CHROMIUM_ARGS

ANCHOR = "ORPHA:324"  # Fabry disease


def serve(workspace: Path) -> tuple[str, object]:
    """The web UI on 127.0.0.1 in a thread; returns its URL and the server."""
    import uvicorn

    from medresearcher.config import load_settings
    from medresearcher.web import create_app

    settings = load_settings(overrides={"workspace": str(workspace)})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    if not (args.workspace / "kg.sqlite").is_file():
        print(f"{args.workspace} has no graph: run `medresearcher demo` first", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    url, server = serve(args.workspace)
    args.out.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []

    def guard(route) -> None:  # type: ignore[no-untyped-def]
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS)
        )
        context = browser.new_context(viewport={"width": 1440, "height": 860})
        context.route("**/*", guard)
        page = context.new_page()
        page.set_default_timeout(60_000)

        page.goto(f"{url}/graph")
        page.locator("#limit").fill("18")
        page.fill("#search-input", "Fabry")
        page.click("#search-form button[type=submit]")
        page.locator(f'#search-results button[data-id="{ANCHOR}"]').click()
        page.locator('svg#graph g.node[data-id="HGNC:4296"]').wait_for()
        page.locator('svg#graph g.node[data-id="HGNC:4296"]').dispatch_event("click")
        page.locator("#details h3", has_text="GLA").wait_for()
        page.wait_for_timeout(4000)  # the layout settles and fits the view
        page.screenshot(path=str(args.out / "graph-explorer.png"))

        page.goto(f"{url}/qa-lab")
        page.fill("#anchor", ANCHOR)
        page.select_option("#strategy", "max_chain")
        page.select_option("#paradigm", "identify")
        page.fill("#max_hops", "3")
        page.click("#generate")
        page.locator("#lab-status", has_text="written").wait_for()
        page.wait_for_timeout(3000)
        page.screenshot(path=str(args.out / "qa-lab.png"), full_page=True)
        browser.close()
    server.should_exit = True  # type: ignore[attr-defined]
    if blocked:
        print(f"requests off 127.0.0.1 were attempted: {blocked}", file=sys.stderr)
        return 1
    print(f"wrote {args.out / 'graph-explorer.png'} and {args.out / 'qa-lab.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
