"""CVAT webhooks over HTTP: only signed deliveries act, a matching rule starts one training, duplicates none."""
from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api_fixtures import TINY, client, served, settings_for, signed, tiny_api, wait_for
from cvatflow.api import create_app

URL = "/api/v1/webhooks/cvat"
RULES = [{"event": "update:task", "when": {"status": "completed"}, "template": TINY, "parameters": {"epochs": 2},
          "labels": {"team": "vision"}}]



def ago(seconds: float = 0) -> str:
    """An updated_date `seconds` before now, as CVAT writes it (deliveries older than a day are refused)."""
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def completed(task_id: int, project_id: int | None = None, stamp: str | None = None) -> dict:
    """The delivery CVAT makes when a task's status changes to completed."""
    stamp = stamp or ago(60)
    return {"event": "update:task", "webhook_id": 3, "sender": {"id": 1, "username": "admin"},
            "task": {"id": task_id, "name": "shapes", "project_id": project_id, "status": "completed",
                     "updated_date": stamp},
            "before_update": {"status": "annotation"}}


@pytest.fixture
def hooked(tmp_path, fake_cvat):
    """The API with the tiny template, one webhook rule, and the fake CVAT holding a task."""
    with tiny_api(tmp_path / "home", fake_cvat.url, webhook_rules=RULES) as (url, _):
        yield url


def started(url: str) -> list[dict]:
    with client(url) as http:
        return http.get("/api/v1/jobs", params={"kind": "execution"}).json()["items"]


def test_a_bad_signature_is_401_and_nothing_starts(hooked, fake_cvat):
    body, headers = signed(completed(fake_cvat.task_id), secret="not-the-secret")
    answer = httpx.post(hooked + URL, content=body, headers=headers)
    assert answer.status_code == 401
    assert "X-Signature-256" in answer.json()["message"]
    assert started(hooked) == []


def test_a_missing_signature_is_401_and_nothing_starts(hooked, fake_cvat):
    body, headers = signed(completed(fake_cvat.task_id))
    del headers["X-Signature-256"]
    answer = httpx.post(hooked + URL, content=body, headers=headers)
    assert answer.status_code == 401
    assert started(hooked) == []


def test_a_signature_of_another_body_is_refused(hooked, fake_cvat):
    _, headers = signed(completed(fake_cvat.task_id))
    tampered = json.dumps(completed(fake_cvat.task_id + 1)).encode()
    assert httpx.post(hooked + URL, content=tampered, headers=headers).status_code == 401
    assert started(hooked) == []


def test_a_bearer_token_does_not_replace_the_signature(hooked, fake_cvat):
    body, headers = signed(completed(fake_cvat.task_id))
    del headers["X-Signature-256"]
    with client(hooked) as http:
        assert http.post(URL, content=body, headers=headers).status_code == 401


def test_a_signed_ping_is_acknowledged_and_starts_nothing(hooked):
    body, headers = signed({"event": "ping", "webhook": {"id": 3}, "sender": {"id": 1}})
    answer = httpx.post(hooked + URL, content=body, headers=headers)
    assert answer.status_code == 200
    assert answer.json() == {"event": "ping", "duplicate": False, "executions": []}


def test_a_signed_completion_starts_the_rule_s_training_on_the_task(hooked, fake_cvat):
    body, headers = signed(completed(fake_cvat.task_id))
    answer = httpx.post(hooked + URL, content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    [execution] = answer.json()["executions"]
    with client(hooked) as http:
        done = wait_for(lambda: (e := http.get(f"/api/v1/executions/{execution}").json())["phase"]
                        in ("Succeeded", "Failed", "Error") and e, timeout=120)
    assert done["phase"] == "Succeeded", done
    assert done["cvatTask"] == fake_cvat.task_id
    assert done["parameters"]["epochs"] == "2"
    assert done["labels"]["team"] == "vision" and done["labels"]["cvatflow.io/trigger"] == "webhook"


def test_a_replayed_delivery_starts_nothing_more(hooked, fake_cvat):
    body, headers = signed(completed(fake_cvat.task_id))
    first = httpx.post(hooked + URL, content=body, headers=headers)
    again = httpx.post(hooked + URL, content=body, headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["executions"] == first.json()["executions"]
    assert len(started(hooked)) == 1


def test_simultaneous_duplicate_deliveries_start_one_execution(hooked, fake_cvat):
    body, headers = signed(completed(fake_cvat.task_id, stamp=ago(120)))
    answers = []

    def deliver():
        answers.append(httpx.post(hooked + URL, content=body, headers=headers, timeout=30))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202]
    assert len({tuple(a.json()["executions"]) for a in answers}) == 1
    assert len(started(hooked)) == 1


def test_the_same_request_id_is_one_delivery_even_if_the_body_differs(hooked, fake_cvat):
    body1, headers = signed(completed(fake_cvat.task_id, stamp=ago(180)))
    body2, headers2 = signed(completed(fake_cvat.task_id, stamp=ago(179)))
    httpx.post(hooked + URL, content=body1, headers={**headers, "X-Request-Id": "delivery-1"})
    again = httpx.post(hooked + URL, content=body2, headers={**headers2, "X-Request-Id": "delivery-1"})
    assert again.json()["duplicate"] is True
    assert len(started(hooked)) == 1


def test_with_no_secret_configured_every_delivery_is_refused(tmp_path):
    settings = settings_for(tmp_path / "home", webhook_secret="", webhook_rules=RULES)
    with served(create_app(settings)) as url:
        body, headers = signed(completed(1))
        answer = httpx.post(url + URL, content=body, headers=headers)
    assert answer.status_code == 401
    assert "CVATFLOW_WEBHOOK_SECRET" in answer.json()["message"]
