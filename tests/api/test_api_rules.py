"""Webhook rules from the config: which CVAT events start a training, and mistakes reported at start-up."""
from __future__ import annotations

import pytest

from cvatflow.api.rules import Deliveries, parse_rules
from cvatflow.config import ConfigError

RULE = {"event": "update:task", "when": {"status": "completed"}, "project": 3, "template": "maskrcnn-training",
        "parameters": {"epochs": 5}}


def task_update(status="completed", project=3, changed=("status",), task_id=42):
    return {"event": "update:task", "webhook_id": 1,
            "task": {"id": task_id, "name": "cars", "project_id": project, "status": status},
            "before_update": {key: "annotation" for key in changed}}


def test_a_task_moved_to_completed_in_the_project_matches():
    [rule] = parse_rules([RULE])
    assert rule.matches(task_update())
    assert rule.task_and_job(task_update()) == (42, None)
    assert rule.parameters == {"epochs": "5"}


@pytest.mark.parametrize("payload", [
    task_update(status="annotation"),  # not completed
    task_update(project=4),  # another project
    task_update(changed=("name",)),  # renamed while completed: the status did not change
    {**task_update(), "event": "create:task"},
    {"event": "update:task"},  # no task object
])
def test_other_events_do_not_match(payload):
    [rule] = parse_rules([RULE])
    assert not rule.matches(payload)


def test_a_job_event_trains_on_the_job_s_task():
    [rule] = parse_rules([{"event": "update:job", "when": {"state": "completed"}, "template": "detr-training"}])
    payload = {"event": "update:job", "job": {"id": 7, "task_id": 42, "project_id": None, "state": "completed"},
               "before_update": {"state": "in progress"}}
    assert rule.matches(payload)
    assert rule.task_and_job(payload) == (42, 7)


def test_every_mistake_in_the_rules_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        parse_rules([{"event": "delete:task", "template": ""}, {"event": "update:task", "template": "x",
                                                                "project": "three", "colour": "red"}])
    text = str(caught.value)
    for part in ("webhooks[0].event", "webhooks[0].template", "webhooks[1].project", "unknown keys colour"):
        assert part in text


def test_deliveries_remember_what_they_started_and_forget_the_oldest():
    deliveries = Deliveries(keep=2)
    deliveries.add("a", ["run-a"])
    deliveries.add("b", ["run-b"])
    deliveries.add("c", ["run-c"])
    assert deliveries.get("a") is None and deliveries.get("c") == ["run-c"]
