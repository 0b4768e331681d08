"""Debian's headless Chromium (`/usr/bin/chromium`, which scripts/install-test-services
installs), driven by Playwright, for the tests that need a real browser: the console's
(tests/web/test_console.py) and the person's report's (tests/engine/test_report_browser.py).
Playwright's own browser download is never used. Each browser has a fresh profile and its
background networking off; under CI=true a missing browser or Playwright fails the test rather
than skipping it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # screenshots kept
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def need(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true; run scripts/install-test-services)")
    pytest.skip(reason)


@contextmanager
def chromium(profile: Path, **options: Any) -> Iterator[Any]:
    """A Playwright browser context of Chromium with a fresh profile in `profile`; `options`
    are `launch_persistent_context`'s (viewport, java_script_enabled, ...)."""
    if not CHROMIUM.exists():
        need(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("the playwright package is not installed")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, **options
        )
        try:
            yield context
        finally:
            context.close()
