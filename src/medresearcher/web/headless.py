"""How the web UI is rendered offline in a headless browser: Debian's Chromium and its flags.

One list for the two places that drive it through Playwright — the browser tests
(``tests/web_fixtures.py``) and the README's screenshots (``scripts/web_screenshots.py``) — so
both load the pages the same way: headless, no sandbox (containers), no GPU, and none of
Chromium's own background traffic (updates, sync, QUIC), which the offline tests must not see.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHROMIUM", "CHROMIUM_ARGS"]

#: Debian's Chromium; Playwright downloads no browser of its own here.
CHROMIUM = Path("/usr/bin/chromium")
#: Launch flags for :data:`CHROMIUM` (``playwright.chromium.launch(args=...)``).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
