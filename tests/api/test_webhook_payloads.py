"""CVAT's webhook payloads as CVAT 2.x documents and sends them, replayed against the rules and the API."""
from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api_fixtures import TINY, client, signed, tiny_api, wait_for
from cvatflow.api.rules import DATA_READY, RULE_LABEL, parse_rules
from cvatflow.config import ConfigError

USER = {"url": "http://localhost:8080/api/users/1", "id": 1, "username": "admin1", "first_name": "Admin",
        "last_name": "First"}
STORAGE = {"id": 14, "location": "local", "cloud_storage_id": None}


# Deliveries are dated a little before now: the API refuses ones outside its replay window (api/webhooks.py).
_BASE = datetime.now(UTC) - timedelta(hours=2)


def stamp_at(minutes: int) -> str:
    """An `updated_date` `minutes` after the base time, as CVAT writes it."""
    return (_BASE + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def task(status="annotation", task_id=15, project_id=7, name="task", size=1, stamp="2026-11-22T11:04:51.451681Z"):
    """A task as CVAT 2.x's webhooks carry it (site/content/en/docs/administration/community/advanced/webhooks.md)."""
    return {"url": f"http://localhost:8080/api/tasks/{task_id}", "id": task_id, "name": name,
            "project_id": project_id, "mode": "annotation", "owner": USER, "assignee": None, "bug_tracker": "",
            "created_date": "2026-11-22T08:05:50.419259Z", "updated_date": stamp, "overlap": 0, "segment_size": 1,
            "status": status,
            "labels": [{"id": 28, "name": "label_0", "color": "#bde94a", "attributes": [], "type": "any",
                        "sublabels": [], "has_parent": False}],
            "segments": [{"start_frame": 0, "stop_frame": 0, "jobs": [
                {"url": "http://localhost:8080/api/jobs/19", "id": 19, "assignee": None, "status": status,
                 "stage": "annotation", "state": "new"}]}],
            "data_chunk_size": 14, "data_compressed_chunk_type": "imageset", "data_original_chunk_type": "imageset",
            "size": size, "image_quality": 70, "data": 14, "dimension": "2d", "subset": "", "organization": None,
            "target_storage": STORAGE, "source_storage": STORAGE}


def update_task(status, **kw):
    """`update:task` as CVAT sends it since cvat-ai/cvat#11104: the task now, no `before_update`."""
    return {"event": "update:task", "task": task(status, **kw), "webhook_id": 7, "sender": USER}


def update_job(state, stage="annotation", job_id=19, task_id=15):
    job = {"url": f"http://localhost:8080/api/jobs/{job_id}", "id": job_id, "task_id": task_id, "project_id": 7,
           "assignee": None, "stage": stage, "state": state, "status": stage, "start_frame": 0, "stop_frame": 9,
           "frame_count": 10, "type": "annotation", "updated_date": "2026-11-22T11:00:00Z", "organization": None}
    return {"event": "update:job", "job": job, "webhook_id": 7, "sender": USER}


def create_task():
    """`create:task`: sent before any data is attached (size 0, no segments)."""
    created = task("annotation", size=0)
    created.update(mode="", segments=[], overlap=None, segment_size=0)
    for key in ("data_chunk_size", "data_compressed_chunk_type", "data_original_chunk_type", "size", "image_quality",
                "data"):
        created.pop(key)
    return {"event": "create:task", "task": created, "webhook_id": 7, "sender": USER}


def data_ready(status="finished", task_id=15, project_id=2):
    """`completed:request[create:task]` (cvat-ai/cvat#10897): the task's data creation request finished."""
    return {"event": DATA_READY, "webhook_id": 1, "sender": USER, "request": {
        "status": status, "message": "", "id": f"action=create&target=task&target_id={task_id}",
        "operation": {"type": "create:task", "target": "task", "project_id": project_id, "task_id": task_id,
                      "job_id": None, "org_id": 1, "format": None, "lightweight": None},
        "progress": 0.0, "created_date": "2026-08-17T08:16:17.540858Z", "started_date": "2026-08-17T08:16:17.551124Z",
        "finished_date": "2026-08-17T08:16:17.866904Z", "expiry_date": "2026-08-17T08:24:37.866904Z",
        "owner": {"id": 1, "username": "demo_user"}, "result_url": None, "result_id": None}}


PING = {"event": "ping", "webhook": {"id": 7, "url": "http://localhost:8080/api/webhooks/7",
                                     "target_url": "https://example.com", "type": "project",
                                     "content_type": "application/json", "is_active": True, "project": 7,
                                     "events": ["update:task"]}, "sender": USER}
ON_COMPLETED = {"event": "update:task", "when": {"status": "completed"}, "template": "maskrcnn-training"}


def fired(rules, payload, runs_exist=lambda labels: False):
    """What a delivery starts: the rules that match it and enter their state now."""
    return rules.unstarted(rules.matching(payload), payload, runs_exist)


def test_a_completed_task_starts_once_without_before_update_and_again_after_reopening():
    rules = parse_rules([ON_COMPLETED])
    [rule] = rules
    assert fired(rules, update_task("annotation")) == []
    assert fired(rules, update_task("completed")) == [rule]
    rules.started(rule, update_task("completed"))
    # Renamed (or any other edit) while completed: the same state, nothing new starts.
    assert fired(rules, update_task("completed", name="renamed")) == []
    # Reopened, then completed again: a new transition.
    assert fired(rules, update_task("validation")) == []
    assert fired(rules, update_task("completed")) == [rule]
    # Other tasks have their own record.
    assert fired(rules, update_task("completed", task_id=16)) == [rule]


def test_a_job_reaching_acceptance_completed_starts_and_its_stage_alone_does_not():
    rules = parse_rules([{"event": "update:job", "when": {"stage": "acceptance", "state": "completed"},
                          "template": "detr-training"}])
    [rule] = rules
    assert fired(rules, update_job("in progress", "acceptance")) == []
    assert fired(rules, update_job("completed", "validation")) == []
    payload = update_job("completed", "acceptance")
    assert fired(rules, payload) == [rule]
    assert rule.task_and_job(payload) == (15, 19)


def test_an_older_cvats_before_update_still_decides():
    rules = parse_rules([ON_COMPLETED])
    renamed = {**update_task("completed"), "before_update": {"name": "task"}}
    completed = {**update_task("completed"), "before_update": {"status": "annotation"}}
    assert fired(rules, renamed) == []
    assert len(fired(rules, completed, runs_exist=lambda labels: True)) == 1  # CVAT says it changed: trusted


def test_after_a_restart_the_runs_labels_stand_in_for_the_record():
    rules = parse_rules([{**ON_COMPLETED, "name": "train on completion"}])
    payload = update_task("completed")
    asked = []

    def runs_exist(labels):
        asked.append(labels)
        return True  # a run of this rule on this task exists

    assert fired(rules, payload, runs_exist) == []
    assert asked == [{RULE_LABEL: "train-on-completion", "cvatflow.io/cvat-task-id": "15"}]
    assert fired(rules, payload, runs_exist) == [] and len(asked) == 1  # now recorded: not asked again
    fresh = parse_rules([ON_COMPLETED])
    assert fired(fresh, payload) == list(fresh)


def test_create_task_is_refused_as_a_trigger_and_data_ready_is_the_one_to_use():
    with pytest.raises(ConfigError, match=r"create:task before the task has any images.*completed:request"):
        parse_rules([{"event": "create:task", "template": "maskrcnn-training"}])
    rules = parse_rules([{"event": DATA_READY, "project": 2, "template": "maskrcnn-training"}])
    [rule] = rules
    assert fired(rules, data_ready()) == [rule]
    assert fired(rules, data_ready()) == [rule]  # each data upload is an event of its own (deliveries dedupe)
    assert rule.task_and_job(data_ready()) == (15, None)
    assert fired(rules, data_ready(status="failed")) == []
    assert fired(rules, data_ready(project_id=3)) == []


@pytest.mark.parametrize("payload", [PING, create_task(), {**update_task("completed"), "event": "delete:task"},
                                     data_ready(), update_job("completed"), {"event": "update:task"},
                                     {"event": "update:task", "task": {"id": "x", "status": "completed"}}],
                         ids=["ping", "create-task", "delete-task", "data-ready", "job", "no-task", "bad-id"])
def test_other_documented_shapes_fire_nothing_on_a_task_rule(payload):
    assert fired(parse_rules([ON_COMPLETED]), copy.deepcopy(payload)) == []


def test_duplicate_rule_names_are_refused():
    with pytest.raises(ConfigError, match="the name 'a' is given to 2 rules"):
        parse_rules([{**ON_COMPLETED, "name": "a"}, {**ON_COMPLETED, "name": "a"}])




def test_over_http_todays_payloads_start_one_training_per_completion(tmp_path, fake_cvat):
    rules = [{"event": "update:task", "when": {"status": "completed"}, "template": TINY, "parameters": {"epochs": 1}}]
    with tiny_api(tmp_path / "home", fake_cvat.url, webhook_rules=rules) as (url, _):
        def deliver(status, stamp, **kw):
            body, headers = signed(update_task(status, task_id=fake_cvat.task_id, project_id=None, stamp=stamp, **kw))
            return httpx.post(url + "/api/v1/webhooks/cvat", content=body, headers=headers, timeout=30)

        first = deliver("completed", stamp_at(0))
        assert first.status_code == 202, first.text
        redelivered = deliver("completed", stamp_at(0))  # CVAT's redelivery: the same body
        assert redelivered.json() == {**first.json(), "duplicate": True}
        renamed = deliver("completed", stamp_at(1), name="renamed")
        assert (renamed.status_code, renamed.json()["executions"]) == (200, [])
        assert deliver("annotation", stamp_at(2)).status_code == 200
        again = deliver("completed", stamp_at(3))
        assert again.status_code == 202 and again.json()["executions"] != first.json()["executions"]


def test_over_http_a_restarted_server_does_not_train_a_completed_task_again(tmp_path, fake_cvat):
    rules = [{"event": "update:task", "when": {"status": "completed"}, "template": TINY, "parameters": {"epochs": 1}}]

    def deliver(url, status, stamp):
        body, headers = signed(update_task(status, task_id=fake_cvat.task_id, project_id=None, stamp=stamp))
        return httpx.post(url + "/api/v1/webhooks/cvat", content=body, headers=headers, timeout=30)

    with tiny_api(tmp_path / "home", fake_cvat.url, webhook_rules=rules) as (url, _):
        first = deliver(url, "completed", stamp_at(0))
        assert first.status_code == 202
        [execution] = first.json()["executions"]
        with client(url) as http:  # the run is submitted once the task is dumped
            wait_for(lambda: http.get(f"/api/v1/executions/{execution}").json()["phase"] in
                     ("Succeeded", "Failed", "Error"), timeout=120)
    with tiny_api(tmp_path / "home", fake_cvat.url, webhook_rules=rules) as (url, _):
        edited = deliver(url, "completed", stamp_at(5))  # an edit after the restart
        assert (edited.status_code, edited.json()["executions"]) == (200, [])
