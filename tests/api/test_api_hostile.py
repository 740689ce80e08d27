"""Hostile requests a fresh QA pass found: each was accepted or crashed before its fix."""
from __future__ import annotations

import json

import pytest

from api_fixtures import client, served, settings_for
from cvatflow.api import create_app


@pytest.fixture
def api_with_a_run(tmp_path):
    """The API over a home holding one finished local run `abc` with a `train` log, and a *.log outside it."""
    home = tmp_path / "home"
    run = home / "runs" / "abc"
    (run / "logs").mkdir(parents=True)
    (run / "workflow.json").write_text(json.dumps({"name": "abc", "template": "maskrcnn-training"}))
    (run / "status.json").write_text(json.dumps({"phase": "Succeeded", "nodes": {"train": {"phase": "Succeeded"}}}))
    (run / "logs" / "train.log").write_text("epoch 1\n")
    (tmp_path / "secret.log").write_text("not for API clients\n")
    with served(create_app(settings_for(home))) as url:
        yield url


@pytest.mark.parametrize("step", ["../../../secret", "../logs/../../../secret", "..", "/etc/hostname"])
def test_a_log_step_never_reads_outside_the_run_logs(api_with_a_run, step):
    with client(api_with_a_run) as http:
        assert http.get("/api/v1/executions/abc/logs", params={"step": "train"}).text == "epoch 1\n"
        answer = http.get("/api/v1/executions/abc/logs", params={"step": step})
    assert answer.status_code == 404, answer.text
    assert "not for API clients" not in answer.text
    assert "no step" in answer.json()["message"]


@pytest.mark.parametrize("task_id", [float("inf"), -5, 0, True, 1.7, "7", 2**80, None, []])
def test_a_signed_delivery_whose_task_id_is_no_cvat_id_matches_no_rule(tmp_path, task_id):
    from datetime import UTC, datetime

    from api_fixtures import TINY, install_tiny_template, signed

    install_tiny_template(tmp_path)
    rules = [{"event": "update:task", "when": {"status": "completed"}, "template": TINY}]
    # CVAT unreachable: an id taken as valid would answer 502, infinity answered 500 (OverflowError)
    settings = settings_for(tmp_path, cvat_url="http://127.0.0.1:9", webhook_rules=rules)
    payload = {"event": "update:task", "task": {"id": task_id, "status": "completed",
                                                 "updated_date": datetime.now(UTC).isoformat()}}
    body, headers = signed(payload)
    with served(create_app(settings)) as url, client(url) as http:
        answer = http.post("/api/v1/webhooks/cvat", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["executions"] == []


@pytest.mark.parametrize("last_event_id", [b"\xb2", b"9" * 5000, b"-1", b"x"])
def test_a_strange_last_event_id_replays_the_events_from_the_start(api_with_a_run, last_event_id):
    import httpx

    from api_fixtures import TOKEN

    headers = {"Authorization": f"Bearer {TOKEN}", "Last-Event-ID": last_event_id}
    with httpx.stream("GET", f"{api_with_a_run}/api/v1/executions/abc/events", headers=headers, timeout=30) as answer:
        assert answer.status_code == 200
        events = [line.split(":", 1)[1].strip() for line in answer.iter_lines() if line.startswith("event:")]
    assert events == ["status", "end"]  # was an empty 200 and a ValueError traceback in the server log


def test_a_dataset_path_not_on_the_server_is_named_as_given_not_as_the_servers_path(api_with_a_run, tmp_path):
    with client(api_with_a_run) as http:
        answer = http.post("/api/v1/executions", json={"template": "maskrcnn-training", "dataset": "uploads/none.zip"})
    assert answer.status_code == 422
    assert "'uploads/none.zip'" in answer.text and str(tmp_path) not in answer.text
