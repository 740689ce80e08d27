"""The annotate round trip: the API submits annotate-task for a finished run's model, the local executor runs it
against the fake CVAT, and the task gets the shapes."""
from __future__ import annotations

import pytest

from api_fixtures import client, served, settings_for, wait_for
from cvatflow.api import create_app
from cvatflow.local.executor import LocalExecutor, write_json
from cvatflow.templates import get_template, render
from model_states import tiny_state


@pytest.fixture
def trained(tmp_path, fake_cvat, monkeypatch):
    """The API, and a Succeeded local run whose output (model/config.json) is in the store."""
    home = tmp_path / "home"
    settings = settings_for(home, cvat_url=fake_cvat.url)
    prefix = "outputs/task-1/maskrcnn-training-done1/"
    tiny_state("detr", home / "store" / prefix / "model", classes=list(fake_cvat.labels))
    monkeypatch.setenv("CVAT_URL", fake_cvat.url)  # the step reads CVAT from its environment (a Secret on Argo)
    executor = LocalExecutor(home / "runs", settings.store)
    run_dir = executor.create(render(get_template("maskrcnn-training")), {}, "maskrcnn-training-done1",
                              {"app.kubernetes.io/managed-by": "cvatflow"}, settings.store + "/" + prefix)
    write_json(run_dir / "status.json", {"phase": "Succeeded", "nodes": {}, "progress": "1/1",
                                         "startedAt": "2026-11-22T10:00:00Z", "finishedAt": "2026-11-22T11:00:00Z"})
    with served(create_app(settings)) as url:
        yield url


def test_annotating_a_task_runs_annotate_task_and_adds_the_shapes(trained, fake_cvat):
    manual = len(fake_cvat.shapes(fake_cvat.task_id))
    with client(trained) as http:
        answer = http.post("/api/v1/executions/maskrcnn-training-done1/annotate",
                           json={"cvatTask": fake_cvat.task_id, "threshold": 0.0})
        assert answer.status_code == 202, answer.text
        job = answer.json()
        assert job["kind"] == "annotate" and job["execution"] == "maskrcnn-training-done1"
        done = wait_for(lambda: (j := http.get(f"/api/v1/jobs/{job['id']}").json())["state"]
                        in ("succeeded", "failed") and j, timeout=300)
        assert done["state"] == "succeeded", done
        run = http.get(f"/api/v1/executions/{done['result']['run']}").json()
    assert done["result"]["run"].startswith("annotate-task") and done["result"]["threshold"] == 0.0
    assert done["done"] == done["total"] == 4  # the step's progress events: frames annotated
    shapes = fake_cvat.shapes(fake_cvat.task_id)
    auto = [s for s in shapes if s["source"] == "auto"]
    assert auto and len(shapes) == manual + len(auto) == done["result"]["annotations"]  # added, not replaced
    assert {s["type"] for s in auto} == {"rectangle"}
    assert run["template"] == "annotate-task"


def test_a_run_that_did_not_succeed_cannot_annotate(trained, fake_cvat, tmp_path):
    from cvatflow.local.executor import read_json

    status_file = next((tmp_path / "home" / "runs").glob("*/status.json"))
    status = read_json(status_file)
    write_json(status_file, {**status, "phase": "Failed"})
    with client(trained) as http:
        answer = http.post("/api/v1/executions/maskrcnn-training-done1/annotate",
                           json={"cvatTask": fake_cvat.task_id})
    assert answer.status_code == 409
    assert "Failed" in answer.json()["message"]


def test_annotating_an_unknown_task_is_404_and_starts_nothing(trained):
    with client(trained) as http:
        answer = http.post("/api/v1/executions/maskrcnn-training-done1/annotate", json={"cvatTask": 999999})
        assert answer.status_code == 404
        assert http.get("/api/v1/jobs", params={"kind": "annotate"}).json()["count"] == 0
