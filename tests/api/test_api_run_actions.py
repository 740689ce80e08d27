"""The API's lifecycle routes: stop, terminate, retry, resubmit and delete (with its confirmation), behind the token."""
from __future__ import annotations

import json
import sys

import pytest

from api_fixtures import client, served, settings_for
from cvatflow.api import create_app
from lifecycle_fixtures import STEP, start


@pytest.fixture
def api(tmp_path, monkeypatch):
    monkeypatch.setenv("CVATFLOW_STOP_GRACE", "10")
    settings = settings_for(tmp_path / "home", store=(tmp_path / "store").as_uri(), backend="local")
    app = create_app(settings)
    with served(app) as url, client(url) as http:
        yield http, app.state.services.client.backend


def test_stop_a_running_execution_then_retry_it(api, tmp_path):
    http, backend = api
    backend.executor.entry_points["harness"] = [sys.executable, "-c", STEP]
    _run, thread = start(backend.executor, tmp_path, name="run-1")
    assert client(str(http.base_url), token=None).post("/api/v1/executions/run-1/stop").status_code == 401
    answer = http.post("/api/v1/executions/run-1/stop")
    assert answer.status_code == 200, answer.text
    thread.join(60)
    listed = http.get("/api/v1/executions").json()["items"]
    assert [(i["id"], i["phase"], i["message"]) for i in listed] == [
        ("run-1", "Failed", "Stopped with strategy 'Stop'")]
    again = http.post("/api/v1/executions/run-1/terminate")
    assert again.status_code == 409 and "already ended" in again.json()["message"]


def test_delete_needs_the_id_confirmed(api, tmp_path):
    http, backend = api
    run_dir = backend.executor.create({"metadata": {"name": "t"}, "spec": {}}, {}, "run-2")
    backend.executor._save(run_dir, json.loads((run_dir / "workflow.json").read_text()),
                           {"phase": "Failed", "nodes": {}})
    assert http.delete("/api/v1/executions/run-2").status_code == 422
    wrong = http.delete("/api/v1/executions/run-2", params={"confirm": "run-3"})
    assert wrong.status_code == 422 and run_dir.exists()
    answer = http.delete("/api/v1/executions/run-2", params={"confirm": "run-2"})
    assert answer.json() == {"id": "run-2", "outputsDeleted": 0}
    assert not run_dir.exists()
    assert http.get("/api/v1/executions/run-2").status_code == 404
