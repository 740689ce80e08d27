"""The run page's Stop button: pressed on a running run, the run ends Failed with Argo's Stop message."""
from __future__ import annotations

import playwright.sync_api as playwright_api
import pytest

from test_ui import page, ui  # noqa: F401 (fixtures: the served app and a signed-in tab; chromium is conftest's)

pytestmark = [pytest.mark.ui, pytest.mark.timeout(180)]
expect = playwright_api.expect


def test_stop_on_a_running_run_ends_it(page, ui):  # noqa: F811 (fixtures)
    run = ui.start_run(epochs="400")  # 100 s of fake training: it is still going when Stop is pressed
    page.goto(f"/ui/runs/{run}")
    stop = page.get_by_role("button", name="Stop")
    expect(page.locator("#run-steps [data-step='train']")).to_contain_text("Running", timeout=60_000)
    expect(stop).to_be_enabled()
    stop.click()
    expect(page.locator("#run-phase")).to_have_text("Failed", timeout=60_000)
    expect(page.locator(".meta")).to_contain_text("Stopped with strategy 'Stop'")
    expect(page.locator("#run-steps [data-step='train']")).to_contain_text("Failed")
    expect(stop).to_be_disabled()
