"""Tests of the web UI (cvatflow/api/static) in headless Chromium, with and without a CVAT server.

Fixtures only these tests use go here; those of several folders are in tests/conftest.py, helpers in tests/.
"""
from __future__ import annotations

import playwright.sync_api as playwright_api
import pytest

from ui_fixtures import launch_chromium


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, one per test module (Playwright downloads no browser here)."""
    with playwright_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()
