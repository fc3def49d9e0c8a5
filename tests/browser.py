"""A headless browser for tests: Debian's Chromium driven by Playwright's Python package.

Playwright's own browser download is never used. A test module gets the ``browser``
and ``page`` fixtures with ``pytest_plugins = ["browser"]``. Under
``CI=true`` a missing Chromium fails the test; elsewhere it skips with the fix. Every
test using ``page`` leaves a screenshot in ``$VLLM_CHATOPS_ARTIFACTS`` (default
``test-artifacts/`` in the repository), and fails when the page raised a JavaScript error
or asked for anything beyond loopback addresses (nothing may come from the internet).
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

CHROMIUM = os.environ.get("VLLM_CHATOPS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def artifacts_dir() -> Path:
    default = Path(__file__).resolve().parent.parent / "test-artifacts"
    path = Path(os.environ.get("VLLM_CHATOPS_ARTIFACTS") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_chromium() -> str:
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if found:
        return found
    message = f"Chromium not found at {CHROMIUM} (Debian package chromium; scripts/install.sh)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    outside: list[str] = []
    errors: list[str] = []

    def guard(route: Route) -> None:
        url = route.request.url
        host = urllib.parse.urlsplit(url).hostname or ""
        if url.startswith(("data:", "blob:", "about:")) or host in LOOPBACK:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", guard)
    opened = context.new_page()
    opened.set_default_timeout(5000)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    opened.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not outside, f"the page asked for addresses beyond loopback: {outside}"
