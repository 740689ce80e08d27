"""CVAT webhook deliveries at their edges (signature, replay window, duplicates, restarts), on the webhook router with
a fake runs client: kills cosmic-ray's mutants of api/webhooks.py that the served-API tests let live
(`make mutation TARGETS=webhooks`).

Equivalent mutants, left alive: the numbers in log lines (`key[:12]` as 11 or 13, `started[-1]` as `[-0]` or
`[not 1]`), which change how much of a key, or which of the runs just started, an operator reads in the log, not
what the server does."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cvatflow.api import errors, launch, webhooks
from cvatflow.api.auth import Authenticator
from cvatflow.api.rules import Deliveries, parse_rules
from cvatflow.api.services import Services
from cvatflow.api.webhooks import DELIVERY_LABEL, delivery_key, delivery_keys, stale, verify
from cvatflow.config import Settings
from cvatflow.errors import NotFoundError

SECRET = "webhook-secret"
URL = "/api/v1/webhooks/cvat"
RULES = [{"event": "update:task", "when": {"status": "completed"}, "template": "tiny", "name": "On done",
          "parameters": {"epochs": 2}, "labels": {"team": "vision"}}]
NOW = datetime(2020, 6, 1, 12, 0, tzinfo=UTC)  # far from the real clock: a test that uses it sees if it is used


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def completed(task: int, stamp: str | None = None) -> dict:
    stamp = stamp or (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return {"event": "update:task", "task": {"id": task, "status": "completed", "updated_date": stamp}}


class Runs:
    """The runs client: the runs that exist, by their labels; records what it was asked."""

    def __init__(self, existing=(), missing=False):
        self.existing, self.missing, self.asked = list(existing), missing, []

    def runs(self, labels):
        self.asked.append(dict(labels))
        if self.missing:
            raise NotFoundError("no runs store yet")
        return [SimpleNamespace(name=name) for name, have in self.existing if labels.items() <= have.items()]


class Hook:
    """The webhook router in an app of its own, its services, and the launches it made."""

    def __init__(self, monkeypatch, tmp_path, runs=None, secret=SECRET, **extra):
        settings = Settings(home=tmp_path, store=tmp_path.as_uri(), webhook_secret=secret, extra=extra)
        self.runs = runs or Runs()
        self.services = Services(settings=settings, client=self.runs, jobs=None, auth=Authenticator(),
                                 rules=parse_rules(RULES), deliveries=Deliveries())
        self.launched = []
        monkeypatch.setattr(launch, "start", self._start)
        app = FastAPI()
        errors.install(app)
        app.include_router(webhooks.router)
        app.state.services = self.services
        self.http = TestClient(app)

    def _start(self, services, what):
        self.launched.append(what)
        number = len(self.launched)
        return SimpleNamespace(execution=None if number == 3 else f"run-{number}", id=f"job-{number}")

    def deliver(self, payload, request_id=None, body=None, signature=None):
        body = body if body is not None else json.dumps(payload).encode()
        headers = {"X-Signature-256": signature or sign(body), "Content-Type": "application/json"}
        if request_id is not None:
            headers["X-Request-Id"] = request_id
        return self.http.post(URL, content=body, headers=headers)


@pytest.fixture
def hook(monkeypatch, tmp_path):
    return Hook(monkeypatch, tmp_path)


def test_signatures_are_hmac_sha256_of_the_raw_body():
    body = b'{"event": "ping"}'
    assert webhooks.signature(body, SECRET) == sign(body)
    verify(body, f"  {sign(body)}\n", SECRET)  # surrounding blanks are no part of it


@pytest.mark.parametrize("given, secret, message", [
    (None, SECRET, "header is missing"), ("", SECRET, "header is missing"),
    ("sha256=00", SECRET, "does not match"), ("sign-anything", "", "webhooks are not enabled"),
])
def test_a_delivery_without_the_right_signature_is_refused(given, secret, message):
    with pytest.raises(Exception) as caught:
        verify(b"{}", given, secret)
    assert caught.value.status_code == 401 and message in caught.value.detail.message


def test_delivery_keys_are_stable_digests_that_fit_a_label():
    """Runs carry the key as a label: a new version must compute the same key for the same delivery."""
    body = b'{"event": "update:task"}'
    assert delivery_key(body) == hashlib.sha256(body).hexdigest()[:40]
    assert delivery_key(body, "req-1") == hashlib.sha256(b"request-id:req-1").hexdigest()[:40]
    assert delivery_keys(body, None) == [delivery_key(body)]
    assert delivery_keys(body, "req-1") == [delivery_key(body), delivery_key(body, "req-1")]
    assert delivery_key(body, "") == delivery_key(body)


def at(seconds: float) -> dict:
    return {"task": {"updated_date": (NOW + timedelta(seconds=seconds)).isoformat()}}


@pytest.mark.parametrize("payload, why", [
    (at(-100), None),                          # exactly the window old: still inside
    (at(-100.001), "older than the replay window"),
    (at(3600), None),                          # exactly an hour ahead: clocks may differ that much
    (at(3600.001), "in the future"),
    ({}, None), ({"task": {"updated_date": "not a date"}}, None), ({"task": "text"}, None),
    ({"task": {"updated_date": 1234}}, None),
    ({"job": {"updated_date": "garbage"}, "task": at(-500)["task"]}, "older"),  # a bad stamp is skipped, not the end
    ({"job": at(-500)["task"], "task": at(-1)["task"]}, None),  # the newest stamp counts
    ({"task": {"updated_date": (NOW - timedelta(seconds=50)).replace(tzinfo=None).isoformat()}}, None),  # naive: UTC
    ({"task": {"updated_date": (NOW - timedelta(seconds=150)).replace(tzinfo=None).isoformat()}}, "older"),
])
def test_the_replay_window_at_its_edges(payload, why):
    found = stale(payload, 100, now=NOW)
    assert (found is None) if why is None else (why in found)


def test_a_stamp_of_up_to_64_characters_is_read_and_a_longer_one_ignored():
    old = (NOW - timedelta(days=1)).isoformat()  # 2020-05-31T12:00:00+00:00
    fits = old[:19] + "." + "0" * (64 - 26) + old[19:]
    assert len(fits) == 64 and stale({"task": {"updated_date": fits}}, 100, now=NOW)
    longer = old[:19] + "." + "0" * (65 - 26) + old[19:]
    assert len(longer) == 65 and stale({"task": {"updated_date": longer}}, 100, now=NOW) is None


def test_without_now_the_server_clock_is_used():
    assert stale(completed(1), 3600) is None
    assert "older" in stale(completed(1, (datetime.now(UTC) - timedelta(hours=2)).isoformat()), 3600)


def test_a_completion_starts_the_rule_s_training_with_trusted_labels(hook):
    payload = completed(7)
    answer = hook.deliver(payload)
    assert answer.status_code == 202
    assert answer.json() == {"event": "update:task", "duplicate": False, "executions": ["run-1"]}
    (what,) = hook.launched
    assert (what.template, what.cvat_task, what.cvat_job, what.parameters, what.labels) == \
        ("tiny", 7, None, {"epochs": "2"}, {"team": "vision"})
    body = json.dumps(payload).encode()
    assert what.trusted_labels == {DELIVERY_LABEL: delivery_key(body), "cvatflow.io/trigger": "webhook",
                                   "cvatflow.io/webhook-rule": "On-done"}


def test_an_event_no_rule_wants_is_acknowledged_with_200(hook):
    answer = hook.deliver({"event": "ping", "webhook": {"id": 3}})
    assert (answer.status_code, answer.json()["executions"], hook.launched) == (200, [], [])


@pytest.mark.parametrize("body", [b'["update:task"]', b'{"event": 3}', b'{"task": {}}'])
def test_a_body_that_is_no_cvat_event_is_400(hook, body):
    answer = hook.deliver(None, body=body)
    assert answer.status_code == 400 and "no `event`" in answer.json()["message"]


def test_a_bad_signature_is_401_before_the_body_is_read(hook):
    answer = hook.deliver(None, body=b"not json", signature="sha256=00")
    assert answer.status_code == 401 and hook.launched == []


def test_a_redelivery_answers_what_the_first_started_and_starts_nothing(hook):
    first = hook.deliver(completed(7))
    body = first.request.content
    again = hook.deliver(None, body=body)
    assert again.status_code == 200
    assert again.json() == {"event": "update:task", "duplicate": True, "executions": ["run-1"]}
    assert len(hook.launched) == 1


def test_one_request_id_is_one_delivery_whatever_the_body(hook):
    first, second = completed(1), completed(2)
    assert hook.deliver(first, request_id=" req-9 ").status_code == 202
    answer = hook.deliver(second, request_id="req-9")
    assert answer.json()["duplicate"] is True and answer.json()["executions"] == ["run-1"]
    # the duplicate's own body key now answers that delivery too, under another request id
    assert hook.deliver(second, request_id="other").json()["executions"] == ["run-1"]


def test_request_ids_are_compared_on_their_first_200_characters(hook):
    same = "r" * 200
    assert hook.deliver(completed(1), request_id=same + "a").status_code == 202
    assert hook.deliver(completed(2), request_id=same + "b").json()["duplicate"] is True
    assert hook.deliver(completed(3), request_id="r" * 199 + "x").status_code == 202


def test_a_restarted_server_finds_what_it_started_by_the_runs_label(monkeypatch, tmp_path):
    payload = completed(7)
    key = delivery_key(json.dumps(payload).encode())
    hook = Hook(monkeypatch, tmp_path, runs=Runs([("old-run", {DELIVERY_LABEL: key})]))
    answer = hook.deliver(payload)
    assert answer.status_code == 200
    assert answer.json() == {"event": "update:task", "duplicate": True, "executions": ["old-run"]}
    assert hook.launched == []
    hook.runs.existing = []  # the run was deleted since: the delivery is remembered all the same
    again = hook.deliver(payload, request_id="later")
    assert again.json() == {"event": "update:task", "duplicate": True, "executions": ["old-run"]}
    assert hook.launched == []


def test_a_server_without_a_runs_store_yet_starts_the_training(monkeypatch, tmp_path):
    hook = Hook(monkeypatch, tmp_path, runs=Runs(missing=True))
    assert hook.deliver(completed(7)).status_code == 202 and len(hook.launched) == 1


def test_a_task_already_trained_before_a_restart_starts_nothing_and_answers_200(monkeypatch, tmp_path):
    labels = {"cvatflow.io/webhook-rule": "On-done", "cvatflow.io/cvat-task-id": "7"}
    hook = Hook(monkeypatch, tmp_path, runs=Runs([("trained", labels)]))
    answer = hook.deliver(completed(7))
    assert (answer.status_code, answer.json()["executions"], hook.launched) == (200, [], [])


def test_a_run_without_an_execution_name_is_answered_by_its_id(hook):
    for task in (1, 2, 3):
        answer = hook.deliver(completed(task))
    assert answer.json()["executions"] == ["job-3"]


def test_a_stale_delivery_is_refused_but_a_remembered_one_still_answers(monkeypatch, tmp_path):
    hook = Hook(monkeypatch, tmp_path, webhookReplayWindow=300)
    fresh = completed(1)
    assert hook.deliver(fresh).status_code == 202
    old = completed(2, (datetime.now(UTC) - timedelta(seconds=600)).isoformat())
    answer = hook.deliver(old)
    assert answer.status_code == 400 and "replay window of 0.0833333 h" in answer.json()["message"]
    assert len(hook.launched) == 1
    assert hook.deliver(fresh).json()["executions"] == ["run-1"]


def test_the_default_replay_window_is_a_day(hook):
    day = timedelta(days=1)
    assert hook.deliver(completed(1, (datetime.now(UTC) - day + timedelta(seconds=10)).isoformat())).status_code == 202
    assert hook.deliver(completed(2, (datetime.now(UTC) - day - timedelta(seconds=10)).isoformat())).status_code == 400


@pytest.mark.parametrize("extra, accepted", [(0, True), (1, False)])
def test_a_body_of_up_to_10_mib_is_read(hook, extra, accepted):
    """The router's own limit (the served app's request limits come first); a ping that large still parses."""
    head, tail = b'{"event": "ping", "pad": "', b'"}'
    body = head + b"x" * (10 * 1024 * 1024 - len(head) - len(tail) + extra) + tail
    answer = hook.deliver(None, body=body)
    assert answer.status_code == (200 if accepted else 413)


def test_the_json_depth_limit_of_the_config_applies(monkeypatch, tmp_path):
    hook = Hook(monkeypatch, tmp_path, maxJsonDepth=3)
    deep = {"event": "update:task", "a": {"b": {"c": {"d": 1}}}}
    assert hook.deliver(deep).status_code == 400
    assert hook.deliver({"event": "update:task", "a": {"b": 1}}).status_code == 200


def test_the_openapi_document_tells_cvat_admins_and_client_generators_what_the_route_answers(hook):
    operation = hook.http.app.openapi()["paths"][URL]["post"]
    assert {"200", "202", "400"} <= set(operation["responses"])
    assert not {"201", "203", "399"} & set(operation["responses"])
    assert "duplicate" in operation["responses"]["200"]["description"]
    assert "CVAT event" in operation["responses"]["400"]["description"]
    assert operation["requestBody"]["required"] is True


def test_runs_are_labelled_with_the_body_s_key_even_when_a_request_id_comes_along(hook):
    """The body's key is what a restarted server looks for (a redelivery may carry a new request id)."""
    payload = completed(7)
    assert hook.deliver(payload, request_id="req-1").status_code == 202
    body = json.dumps(payload).encode()
    assert hook.launched[0].trusted_labels[DELIVERY_LABEL] == delivery_key(body)
