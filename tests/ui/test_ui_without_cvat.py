"""The web UI with no CVAT server configured: upload an export, run a template on it, see the charts and report."""
from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from api_fixtures import client, served, settings_for
from cvatflow.api import create_app
from cvatflow.datasets.synth import make_export
from test_ui import new_page
from ui_fixtures import EPOCHS, UI_TEMPLATE, install_trainer, install_ui_template

RUN_URL = re.compile(r"/ui/runs/([a-z0-9-]+)$")


@pytest.fixture(scope="module")
def no_cvat(tmp_path_factory):
    """The app with the UI and the fake-training template, and no CVAT_URL."""
    root = tmp_path_factory.mktemp("no-cvat")
    trainer = install_trainer(root / "python")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(trainer), os.environ.get("PYTHONPATH")])))
        env.delenv("CVAT_URL", raising=False)
        install_ui_template(root / "home")
        # No node pools either, as on a laptop: the required node-pool field offers the template's own value.
        settings = settings_for(root / "home")
        assert not settings.node_pools.pools
        assert not settings.cvat_url
        with served(create_app(settings)) as url:
            yield url, root


def test_an_uploaded_export_trains_and_the_run_page_shows_charts_report_and_plain_logs(browser, no_cvat):
    url, root = no_cvat
    export = make_export(root / "export.zip", images=6, size=64)

    class Ui:  # what new_page needs to know
        pass
    ui = Ui()
    ui.url = url
    page = new_page(browser, ui)
    page.goto("/ui/")
    expect(page.get_by_role("heading", name="1. Data")).to_be_visible()
    expect(page.get_by_text("No CVAT server is configured")).to_be_visible()
    page.get_by_label("CVAT export (zip)").set_input_files(str(export))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="2. Template for export.zip")).to_be_visible()
    page.get_by_role("button", name=re.compile("UI training")).click()
    expect(page.get_by_role("heading", name="3. Parameters of UI training")).to_be_visible()
    page.get_by_role("button", name="Execute training").click()
    page.wait_for_url(RUN_URL, timeout=60_000)
    run = RUN_URL.search(page.url).group(1)
    expect(page.locator("#run-phase")).to_have_text("Succeeded", timeout=90_000)

    # The same pipeline as the CLI: the export was ingested and uploaded to the store, its classes counted.
    with client(url) as http:
        execution = http.get(f"/api/v1/executions/{run}").json()
    assert execution["parameters"]["cvat-annotation-path"].startswith("annotations/local/")
    assert execution["parameters"]["cvat-num-classes"] == "3", execution["parameters"]
    assert execution["outputKey"] == f"outputs/{run}/"

    expect(page.locator("#map-chart polyline.series")).to_have_count(1)
    assert len(page.locator("#map-chart polyline.series").get_attribute("points").split()) == EPOCHS
    expect(page.locator("#per-class-ap tr[data-cls='square']")).to_contain_text("0.900")
    expect(page.locator("#run-report img[data-file='pr_curve.png']")).to_be_visible()
    logs = page.locator("#run-logs")
    expect(logs).to_contain_text("fake training for 4 epochs")
    assert "event_type" not in logs.inner_text()  # the JSON event lines are folded away
    expect(page.locator("#run-event-lines summary")).to_contain_text("JSON event lines")
    errors = list(page.errors)
    page.context.close()
    assert not errors, errors
    assert UI_TEMPLATE in execution["template"]
