"""Executions over HTTP: from a CVAT task (the fake CVAT) to a local run that completes, with events and logs."""
from __future__ import annotations

import json

import httpx
import pytest

from api_fixtures import TINY, TOKEN, client, tiny_api, wait_for
from cvatflow.params import CHECKPOINT_MISSING

DONE = ("Succeeded", "Failed", "Error")



@pytest.fixture
def api(tmp_path, fake_cvat):
    with tiny_api(tmp_path / "home", fake_cvat.url) as served_api:
        yield served_api


def read_events(url: str, execution: str) -> list[tuple[str, dict]]:
    """Follow the server-sent events of an execution until `end`."""
    events, kind = [], None
    with httpx.stream("GET", f"{url}/api/v1/executions/{execution}/events",
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1])))
                if kind == "end":
                    break
    return events


def test_an_execution_on_a_cvat_task_is_accepted_at_once_then_runs_to_success(api, fake_cvat):
    url, settings = api
    with client(url) as http:
        answer = http.post("/api/v1/executions", json={"template": TINY, "cvatTask": fake_cvat.task_id,
                                                       "parameters": {"epochs": 3}})
        assert answer.status_code == 202, answer.text
        execution = answer.json()
        assert execution["phase"] == "Preparing" and execution["cvatTask"] == fake_cvat.task_id
        events = read_events(url, execution["id"])
        final = http.get(f"/api/v1/executions/{execution['id']}").json()
    kinds = [k for k, _ in events]
    assert kinds[0] == "preparation" and "status" in kinds and kinds[-1] == "end"
    assert events[-1][1]["phase"] == "Succeeded"
    assert final["phase"] == "Succeeded", final
    assert final["parameters"]["epochs"] == "3"
    assert final["parameters"]["cvat-num-classes"] == str(len(fake_cvat.labels))
    prefix = final["parameters"]["cvat-annotation-path"]
    assert prefix.startswith(f"annotations/{fake_cvat.task_id}/") and prefix.endswith("/")
    dumped = settings.home / "store" / prefix / "annotations" / "instances_default.json"
    assert dumped.exists()  # the task's export went to the store before the run
    assert final["labels"]["cvatflow.io/cvat-task-id"] == str(fake_cvat.task_id)
    assert final["preparation"]["state"] == "succeeded"
    assert [s["phase"] for s in final["steps"]] == ["Succeeded"]


def test_the_run_s_logs_are_served_as_text(api, fake_cvat):
    url, _ = api
    with client(url) as http:
        execution = http.post("/api/v1/executions", json={"template": TINY, "cvatTask": fake_cvat.task_id}).json()
        wait_for(lambda: http.get(f"/api/v1/executions/{execution['id']}").json()["phase"] in DONE, timeout=120)
        logs = http.get(f"/api/v1/executions/{execution['id']}/logs")
    assert logs.headers["content-type"].startswith("text/plain")
    assert "maskrcnn-training" in logs.text  # the step ran `cvatflow templates list`


def test_executions_are_listed_and_filtered(api, fake_cvat):
    url, _ = api
    with client(url) as http:
        execution = http.post("/api/v1/executions", json={"template": TINY, "cvatTask": fake_cvat.task_id,
                                                          "labels": {"team": "vision"}}).json()
        listed = http.get("/api/v1/executions", params={"cvatTask": fake_cvat.task_id}).json()
        assert execution["id"] in [e["id"] for e in listed["items"]]
        assert http.get("/api/v1/executions", params={"label": "team=other"}).json()["count"] == 0
        wait_for(lambda: http.get(f"/api/v1/executions/{execution['id']}").json()["phase"] in DONE, timeout=120)
        done = http.get("/api/v1/executions", params={"template": TINY, "phase": "Succeeded"}).json()
    assert [e["id"] for e in done["items"]] == [execution["id"]]


def test_every_bad_parameter_is_listed_in_one_422(api, fake_cvat):
    url, _ = api
    with client(url) as http:
        answer = http.post("/api/v1/executions", json={
            "template": TINY, "cvatTask": fake_cvat.task_id, "parameters": {"epochs": "many", "colour": "red"}})
        assert answer.status_code == 422
        paths = sorted(p["path"] for p in answer.json()["problems"])
        assert paths == ["colour", "epochs"]
        assert http.get("/api/v1/jobs").json()["count"] == 0  # nothing was exported or started


def test_a_missing_finetune_checkpoint_is_404_with_onepanel_s_message(api, fake_cvat):
    url, _ = api
    with client(url) as http:
        answer = http.post("/api/v1/executions", json={
            "template": TINY, "cvatTask": fake_cvat.task_id,
            "parameters": {"cvat-finetune-checkpoint": "outputs/task-1/no-such-run/"}})
    assert answer.status_code == 404
    assert answer.json()["message"] == CHECKPOINT_MISSING


@pytest.mark.parametrize("body, status, path", [
    ({"template": "no-such-template", "cvatTask": 1}, 404, None),
    ({"template": TINY, "cvatTask": 999999}, 404, None),
    ({"template": TINY, "cvatTask": 1, "dataset": "export.zip"}, 422, "dataset"),
    ({"template": TINY, "dataset": "/etc"}, 422, "dataset"),
    ({"template": TINY, "labels": {"cvatflow.io/cvat-task-id": "7"}}, 422, "labels.cvatflow.io/cvat-task-id"),
    ({"template": TINY, "labels": {"bad key": "7"}}, 422, "labels"),  # Kubernetes label syntax (names.py)
    ({"template": TINY, "labels": {"team": "no spaces"}}, 422, "labels"),
    ({"template": TINY, "colour": "red"}, 422, "colour"),
    ({"template": "../etc/passwd"}, 422, "template"),
])
def test_bad_requests_are_refused_with_the_input_named(api, body, status, path):
    url, _ = api
    with client(url) as http:
        answer = http.post("/api/v1/executions", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["message"]
    if path:
        assert path in [p["path"] for p in answer.json()["problems"]]


def test_a_taken_run_name_is_409(api, fake_cvat):
    url, _ = api
    with client(url) as http:
        body = {"template": TINY, "cvatTask": fake_cvat.task_id, "name": "my-run"}
        assert http.post("/api/v1/executions", json=body).status_code == 202
        assert http.post("/api/v1/executions", json=body).status_code == 409


def test_an_unknown_execution_is_404_everywhere(api):
    url, _ = api
    with client(url) as http:
        for path in ("/api/v1/executions/nope-12345", "/api/v1/executions/nope-12345/events",
                     "/api/v1/executions/nope-12345/logs"):
            assert http.get(path).status_code == 404, path
        assert http.post("/api/v1/executions/nope-12345/annotate", json={"cvatTask": 1}).status_code == 404
