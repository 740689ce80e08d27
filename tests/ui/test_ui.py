"""The web UI under /ui/, driven in Debian's headless chromium against the API on 127.0.0.1, the fake CVAT and
the local backend: sign in, the training dialog (form by parameter type, validation at the field, submit), a
run followed live to Succeeded with its charts, the runs dashboard and its filters, at 1280 and 400 px wide."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import httpx
import playwright.sync_api as playwright_api
import pytest

import ui_fixtures
from api_fixtures import TOKEN, client, served, settings_for, wait_for
from cvatflow.api import create_app
from cvatflow.config import NodePool, NodePools, Settings
from ui_fixtures import (
    EPOCHS,
    NARROW,
    UI_TEMPLATE,
    WIDE,
    install_trainer,
    install_ui_template,
    launch_chromium,
    screenshot,
)

pytestmark = [pytest.mark.ui, pytest.mark.timeout(180)]
expect = playwright_api.expect

POOLS = NodePools(label="node.kubernetes.io/instance-type",
                  pools=[NodePool("CPU: 2 cores", "cpu-small"), NodePool("GPU: 1x T4", "g4dn.xlarge")])
RUN_URL = re.compile(r"/ui/runs/(ui-training-[a-z0-9]+)$")
BEST_MAP = 0.2 + 0.15 * EPOCHS  # what the fake training reports at its last epoch


@dataclass
class Ui:
    url: str
    task: int
    settings: Settings

    def start_run(self, **parameters: str) -> str:
        """An execution started through the API (not the UI), finished or not."""
        with client(self.url) as http:
            answer = http.post("/api/v1/executions", json={"template": UI_TEMPLATE, "cvatTask": self.task,
                                                           "parameters": parameters})
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]

    def wait_done(self, run: str) -> dict:
        with client(self.url) as http:
            return wait_for(lambda: (e := http.get(f"/api/v1/executions/{run}").json())["phase"]
                            in ("Succeeded", "Failed", "Error") and e, timeout=90)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """The app with the UI on 127.0.0.1, the fake CVAT with task 42, and the UI template (fake training)."""
    from fake_cvat_extra import cvat_with_task

    root = tmp_path_factory.mktemp("ui")
    trainer = install_trainer(root / "python")
    with pytest.MonkeyPatch.context() as env:
        # The local executor's steps inherit the environment: that is how they find the fake training.
        env.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(trainer), os.environ.get("PYTHONPATH")])))
        with cvat_with_task() as cvat:
            install_ui_template(root / "home")
            settings = settings_for(root / "home", cvat_url=cvat.url, node_pools=POOLS)
            with served(create_app(settings)) as url:
                yield Ui(url, cvat.task_id, settings)


@pytest.fixture(scope="module")
def finished_run(ui) -> str:
    """A run of the UI template that has succeeded, for the pages that show runs."""
    run = ui.start_run()
    assert ui.wait_done(run)["phase"] == "Succeeded"
    return run


def new_page(browser, ui, viewport=WIDE, signed_in=True):
    context = browser.new_context(viewport=viewport, base_url=ui.url)
    if signed_in:
        context.add_init_script(f"sessionStorage.setItem('cvatflow.token', {json.dumps(TOKEN)})")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    # Chromium logs every 4xx as a console error, and the form provokes 404 and 422 on purpose: judge answers
    # by what they are instead: a missing UI file, or any server error, is a failure.
    page.on("console", lambda msg: page.errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: page.errors.append(f"{r.status} {r.url}")
            if r.status >= 500 or (r.status >= 400 and "/ui/" in r.url) else None)
    return page


@pytest.fixture
def page(browser, ui):
    """A signed-in tab at 1280x800; the test fails on a script error, a missing UI file or a server error."""
    page = new_page(browser, ui)
    yield page
    errors = list(page.errors)
    page.context.close()
    assert not errors, errors


def open_form(page, task: int, template_title: str = "UI training"):
    """The training dialog with `task` and then the template chosen, as a user clicks them."""
    page.goto("/ui/")
    page.get_by_role("button", name=re.compile(f"Train on task {task}\\b")).click()
    page.get_by_role("button", name=re.compile(template_title)).click()
    expect(page.get_by_role("heading", name=f"3. Parameters of {template_title}")).to_be_visible()


def field_error(page, name: str):
    return page.locator(f"#param-{name}-error")


# -- the browser -----------------------------------------------------------------------------------

def test_a_missing_chromium_fails_the_ui_tests_with_what_to_install(monkeypatch):
    monkeypatch.setattr(ui_fixtures, "CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        launch_chromium(playwright=None)


# -- serving ----------------------------------------------------------------------------------------

def test_pages_and_files_are_served_without_a_token_but_no_data_is(ui):
    with httpx.Client(base_url=ui.url) as http:
        for path in ("/ui/", "/ui/runs", "/ui/runs/some-run"):
            answer = http.get(path)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
            assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert http.get("/ui").status_code == 307 and http.get("/").headers["location"] == "/ui/"
        assert http.get("/ui/static/app.js").headers["content-type"].startswith("text/javascript")
        assert http.get("/ui/static/../app.py").status_code == 404
        assert http.get("/api/v1/cvat/tasks").status_code == 401
        assert not any(p.startswith("/ui") for p in http.get("/openapi.json").json()["paths"])


# -- sign in ----------------------------------------------------------------------------------------

def test_sign_in_asks_for_the_api_token_and_keeps_it_for_the_tab_only(browser, ui, tmp_path):
    page = new_page(browser, ui, signed_in=False)
    page.goto("/ui/")
    token = page.get_by_label("API token")
    expect(token).to_be_focused()
    token.fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#token-error")).to_have_text("This token is not accepted by the server.")
    expect(token).to_have_attribute("aria-invalid", "true")

    token.fill(TOKEN)
    page.keyboard.press("Enter")
    expect(page.get_by_role("cell", name="shapes", exact=True)).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('cvatflow.token')") == TOKEN
    page.reload()
    expect(page.get_by_role("cell", name="shapes", exact=True)).to_be_visible()  # still signed in after a reload

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('cvatflow.token')") is None
    page.context.close()


def test_the_onepanel_fork_s_link_opens_the_run_page_signed_in_by_its_cookie_alone(browser, ui):
    # The fork's dialog posts the template's parameters at their values, with CVAT's cookies only.
    fork_cookies = {"auth-token": TOKEN, "auth-username": "admin"}
    template = httpx.get(f"{ui.url}/onepanelio/workflow_templates/{UI_TEMPLATE}/versions/0", cookies=fork_cookies)
    parameters = {p["name"]: p["value"] for p in template.json()["parameters"]}
    answer = httpx.post(f"{ui.url}/onepanelio/execute_workflow/{ui.task}", cookies=fork_cookies,
                        json={"workflow_template": UI_TEMPLATE, "parameters": parameters})
    assert answer.status_code == 200, answer.text
    url, run = answer.json()["url"], answer.json()["uid"]

    context = browser.new_context(viewport=WIDE)  # no token in sessionStorage: only CVAT's cookie
    context.add_cookies([{"name": name, "value": value, "url": ui.url} for name, value in fork_cookies.items()])
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(url)
    expect(page.get_by_role("heading", name=run)).to_be_visible()
    expect(page.locator("#run-phase")).to_have_text("Succeeded", timeout=60_000)
    expect(page.get_by_label("API token")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0  # the cookie is not copied anywhere
    assert TOKEN not in page.url
    page.context.close()
    # The dialog sent the template's default output prefix: the run went to the task's folder.
    execution = ui.wait_done(run)
    assert execution["parameters"]["cvat-output-path"] == f"outputs/task-{ui.task}"
    assert execution["outputs"]["model"].endswith(f"/outputs/task-{ui.task}/{run}/model/")

    # Without the cookie (or with a wrong one) the same link asks for the API token instead.
    context = browser.new_context(viewport=WIDE)
    context.add_cookies([{"name": "auth-token", "value": "not-the-token", "url": ui.url}])
    page = context.new_page()
    page.goto(url)
    expect(page.get_by_label("API token")).to_be_focused()
    page.context.close()


# -- the training dialog ----------------------------------------------------------------------------

def test_the_dialog_lists_cvat_tasks_then_templates_for_cvat_and_warns_of_few_annotations(page, ui):
    page.goto("/ui/")
    row = page.locator(f"tr[data-task='{ui.task}']")
    expect(row).to_contain_text("shapes")
    expect(row).to_contain_text("circle, square, triangle")
    row.get_by_role("button").click()
    expect(row.get_by_role("button")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("heading", name=f"2. Template for task {ui.task} (shapes)")).to_be_focused()
    expect(page.locator(".annotation-count")).to_contain_text("fewer than 100")
    choices = page.locator("[data-template]")
    names = [choices.nth(i).get_attribute("data-template") for i in range(choices.count())]
    assert UI_TEMPLATE in names and "maskrcnn-training" in names  # both labelled used-by: cvat
    assert "/ui/?task=42" in page.url


def test_the_form_has_one_control_per_public_parameter_by_type(page, ui):
    open_form(page, ui.task)
    epochs = page.get_by_label("Epochs")
    expect(epochs).to_have_value(str(EPOCHS))  # the default
    expect(epochs).to_have_attribute("aria-required", "true")
    expect(page.locator("label[for='param-epochs'] .req")).to_be_visible()  # the required mark
    link = page.locator("#param-epochs-hint a")  # hint: text and links only
    expect(link).to_have_attribute("href", "https://example.org/epochs")
    expect(link).to_have_attribute("target", "_blank")

    model = page.get_by_label("Model")
    assert model.evaluate("e => e.tagName") == "SELECT"
    assert model.locator("option").all_inner_texts() == ["Small (CPU)", "Large (GPU)"]
    expect(page.get_by_role("radio", name="Yes")).to_be_checked()
    expect(page.get_by_role("group", name="Augment images")).to_be_visible()
    assert page.get_by_label("Notes").evaluate("e => e.tagName") == "TEXTAREA"
    yaml_editor = page.get_by_label("Hyperparameters")
    expect(yaml_editor).to_have_value("lr: 0.001\n")
    expect(yaml_editor).to_have_class(re.compile(r"\bmono\b"))
    pools = page.get_by_label("Node pool")
    assert pools.locator("option").all_inner_texts() == ["CPU: 2 cores", "GPU: 1x T4"]  # from the config

    # Hidden, private and internal parameters are not shown.
    for name in ("secret-switch", "cvat-annotation-path", "cvat-output-path", "cvat-num-classes"):
        assert page.locator(f"[name='{name}']").count() == 0


def test_required_values_and_numbers_are_checked_in_the_browser_before_anything_is_sent(page, ui):
    open_form(page, ui.task)
    posted = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" and "/executions" in r.url else None)
    epochs = page.get_by_label("Epochs")
    epochs.fill("")
    page.get_by_role("button", name="Execute training").click()
    expect(field_error(page, "epochs")).to_contain_text("Epochs is required")
    expect(epochs).to_have_attribute("aria-invalid", "true")
    expect(epochs).to_be_focused()
    expect(page.locator("#status")).to_contain_text("1 field needs attention")

    epochs.fill("many")
    page.get_by_role("button", name="Execute training").click()
    expect(field_error(page, "epochs")).to_contain_text('Epochs must be a number, not "many"')
    assert posted == []


def test_the_server_s_problems_are_shown_at_their_fields_and_a_fixed_form_starts_the_run(page, ui, tmp_path):
    open_form(page, ui.task)
    screenshot(page, tmp_path, "train-form-1280")
    page.get_by_label("Hyperparameters").fill("lr: [0.001")
    page.get_by_label("Checkpoint path").fill("outputs/no-such-run/")
    page.get_by_role("button", name="Execute training").click()
    expect(field_error(page, "hyperparameters")).to_contain_text("Hyperparameters is not valid YAML")
    expect(field_error(page, "cvat-finetune-checkpoint")).to_contain_text(
        "Checkpoint path does not exist in object storage.")
    expect(page.get_by_label("Hyperparameters")).to_be_focused()  # the first problem
    screenshot(page, tmp_path, "train-form-errors-1280")

    page.get_by_label("Hyperparameters").fill("lr: 0.001\n")
    page.get_by_label("Checkpoint path").fill("")
    page.get_by_label("Epochs").fill("2")
    page.get_by_role("radio", name="No").check()
    page.get_by_role("button", name="Execute training").click()
    page.wait_for_url(RUN_URL)
    run = RUN_URL.search(page.url).group(1)
    expect(page.locator("#run-phase")).to_have_text("Succeeded", timeout=60_000)
    with client(ui.url) as http:
        sent = http.get(f"/api/v1/executions/{run}").json()["parameters"]
    assert (sent["epochs"], sent["augment"], sent["sys-node-pool"]) == ("2", "no", "cpu-small")


# -- a run ------------------------------------------------------------------------------------------

def test_a_run_is_followed_live_to_succeeded_with_its_charts_steps_logs_and_outputs(page, ui, tmp_path):
    run = ui.start_run()
    page.goto(f"/ui/runs/{run}")
    expect(page.get_by_role("heading", name=run)).to_be_visible()
    expect(page.locator("#run-phase")).to_have_text("Succeeded", timeout=60_000)

    loss, mean_ap = page.locator("#loss-chart"), page.locator("#map-chart")
    lines = loss.locator("polyline.series")
    expect(lines).to_have_count(3)  # train loss, train loss_mask, val loss
    assert sorted(lines.evaluate_all("ls => ls.map(l => l.dataset.series)")) == [
        "train loss", "train loss_mask", "val loss"]
    expect(mean_ap.locator("polyline.series")).to_have_count(1)
    points = mean_ap.locator("polyline.series").get_attribute("points").split()
    assert len(points) == EPOCHS  # one per validation
    expect(mean_ap.locator("svg.chart")).to_have_attribute("aria-label", re.compile(rf"val mAP {BEST_MAP:g} at epoch {EPOCHS}"))

    progress = page.locator("#run-progress")
    assert progress.evaluate("p => p.value === p.max")
    expect(page.locator("#run-steps [data-step='train']")).to_contain_text("Succeeded")
    expect(page.locator("#run-logs")).to_contain_text("fake training for 4 epochs")
    expect(page.locator("#run-outputs")).to_contain_text(f"/{run}/model/")
    expect(page.locator(".meta")).to_contain_text(f"{BEST_MAP:.3f}")
    screenshot(page, tmp_path, "run-1280")


def test_an_unknown_run_says_so(page, ui):
    page.goto("/ui/runs/no-such-run")
    expect(page.get_by_role("alert")).to_have_text("No run named no-such-run.")
    expect(page.get_by_role("button", name="Use as fine-tune checkpoint")).to_be_disabled()


def test_use_as_fine_tune_checkpoint_prefills_the_form_with_the_run_s_output_prefix(page, ui, finished_run):
    page.goto(f"/ui/runs/{finished_run}")
    button = page.get_by_role("button", name="Use as fine-tune checkpoint")
    expect(button).to_be_enabled()
    button.click()
    checkpoint = page.get_by_label("Checkpoint path")
    expect(checkpoint).to_have_value(re.compile(rf"^outputs/.*/{finished_run}/$"))
    expect(page.locator(f"tr[data-task='{ui.task}']")).to_have_class(re.compile("chosen"))
    expect(page.get_by_role("heading", name="3. Parameters of UI training")).to_be_visible()


def test_annotate_a_cvat_task_posts_the_task_threshold_and_clear_existing_and_follows_the_job(page, ui,
                                                                                             finished_run):
    """The UI's part only: the annotation itself (inference, upload to CVAT) is tested in test_api_annotate."""
    posted = []

    def annotate(route):
        posted.append(route.request.post_data_json)
        route.fulfill(status=202, json=job("queued"))

    def job(state):
        return {"id": "job-1", "kind": "annotate", "state": state, "stage": "uploading" if state == "running" else "",
                "done": 0, "total": 0, "message": "", "problems": [], "execution": finished_run,
                "cvatTask": ui.task, "result": {}, "createdAt": "", "updatedAt": ""}

    page.route(f"**/api/v1/executions/{finished_run}/annotate", annotate)
    page.route("**/api/v1/jobs/job-1", lambda route: route.fulfill(json=job("succeeded")))
    page.goto(f"/ui/runs/{finished_run}")
    toggle = page.get_by_role("button", name="Annotate a CVAT task")
    # The page fills in as the execution, events and logs arrive; click once it has settled, so the click
    # lands on the button and not where the button was a moment before (a flake under load).
    expect(page.locator("#run-phase")).to_have_text("Succeeded")
    expect(page.locator("#run-logs")).not_to_have_text("Loading…")
    expect(toggle).to_be_enabled()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_label("CVAT task", exact=True)).to_have_value(str(ui.task))
    page.get_by_label("Score threshold (0 to 1)").fill("1.5")
    page.get_by_role("button", name="Run annotate-task on the cluster").click()
    expect(page.locator("#annotate-state")).to_have_text("The threshold must be a number from 0 to 1.")
    page.get_by_label("Score threshold (0 to 1)").fill("0.4")
    page.get_by_label("Replace the task's annotations").check()
    page.get_by_role("button", name="Run annotate-task on the cluster").click()
    expect(page.locator("#annotate-state")).to_contain_text("Annotation job job-1: succeeded")
    assert posted == [{"cvatTask": ui.task, "threshold": 0.4, "clearExisting": True}]


# -- the runs dashboard -----------------------------------------------------------------------------

def test_the_runs_page_lists_runs_and_filters_them_by_template_task_and_phase(page, ui, finished_run, tmp_path):
    page.goto("/ui/runs")
    row = page.locator(f"tr[data-run='{finished_run}']")
    for text in ("Succeeded", UI_TEMPLATE, str(ui.task), "1/1", f"{BEST_MAP:.3f}"):
        expect(row).to_contain_text(text)
    screenshot(page, tmp_path, "runs-1280")

    page.get_by_label("Phase").select_option("Failed")
    expect(page.get_by_text("No runs match.")).to_be_visible()
    assert "phase=Failed" in page.url
    page.get_by_label("Phase").select_option("Succeeded")
    page.get_by_label("Template").select_option(UI_TEMPLATE)
    expect(row).to_be_visible()
    page.get_by_label("CVAT task").fill("7")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No runs match.")).to_be_visible()
    page.get_by_label("CVAT task").fill(str(ui.task))
    page.keyboard.press("Enter")
    expect(row).to_be_visible()
    row.get_by_role("link", name=finished_run).click()
    expect(page).to_have_url(re.compile(f"/ui/runs/{finished_run}$"))


# -- keyboard and small screens ---------------------------------------------------------------------

def test_the_dialog_works_from_the_keyboard_with_a_visible_focus(page, ui):
    page.goto("/ui/")
    choose = page.get_by_role("button", name=re.compile(f"Train on task {ui.task}"))
    expect(choose).to_be_visible()
    for _ in range(10):  # Tab from the top of the page until the task's button has the focus
        page.keyboard.press("Tab")
        if choose.evaluate("e => e === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the task's Choose button")
    assert choose.evaluate("e => getComputedStyle(e).outlineStyle") != "none"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("2. Template"))).to_be_focused()


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280", "400"])
def test_every_page_fits_the_screen_at_1280_and_at_400px(browser, ui, finished_run, viewport, tmp_path):
    page = new_page(browser, ui, viewport=viewport)
    width = viewport["width"]
    pages = {"train": f"/ui/?task={ui.task}&template={UI_TEMPLATE}", "runs": "/ui/runs",
             "run": f"/ui/runs/{finished_run}"}
    for name, path in pages.items():
        page.goto(path)
        ready = {"train": page.get_by_role("button", name="Execute training"),
                 "runs": page.locator(f"tr[data-run='{finished_run}']"),
                 "run": page.locator("#map-chart polyline.series")}[name]
        expect(ready).to_be_visible()
        if name == "run":
            expect(page.locator("#run-logs")).to_contain_text("done")
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name} is {overflow}px wide in a {width}px window"
        screenshot(page, tmp_path, f"{name}-{width}")
    errors = list(page.errors)
    page.context.close()
    assert not errors, errors

    signin = new_page(browser, ui, viewport=viewport, signed_in=False)
    signin.goto("/ui/")
    expect(signin.get_by_label("API token")).to_be_visible()
    assert signin.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(signin, tmp_path, f"signin-{width}")
    signin.context.close()
