"""Headless Chromium for the browser tests, driven by Playwright's driver.

Playwright's own browser download cannot work here (no internet but package
registries), so the suite drives the system's Chromium (apt `chromium`, installed
by scripts/install-test-system-deps.sh) through `executable_path`; `playwright
install` is never run. Each launch gets a fresh profile (Playwright makes a temporary
user data dir per launch) and the flags a headless container needs.

Playwright's sync API keeps its own event loop set as the running loop between calls,
which async tests cannot share: a browser must be stopped before an async test runs.
So the browser suite keeps its browser (and its server) per module, in a module of
sync tests only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# Where screenshots go: a folder a person can open after the run (gitignored).
SCREENSHOTS = Path(
    os.environ.get(
        "CODEFORGE_TEST_SCREENSHOTS",
        Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots",
    )
)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    """The whole page as `<SCREENSHOTS>/<name>.png`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
