"""One rule for `cvat-output-path`: each CVAT task's runs land in `<prefix>/task-<id>/<run>/` unless asked otherwise."""
from __future__ import annotations

import pytest

from cvatflow.output_path import task_output_path
from cvatflow.params import CvatTask, autofill
from cvatflow.templates import get_template


@pytest.mark.parametrize(("given", "default", "expected"), [
    (None, "outputs", "outputs/task-7"),          # not sent (CLI, REST API, webhooks)
    ("outputs", "outputs", "outputs/task-7"),     # the fork's dialog sends the default it was shown
    ("/outputs/", "outputs", "outputs/task-7"),
    ("", "outputs", "outputs/task-7"),
    (None, "models", "models/task-7"),            # the template's own prefix
    (None, None, "outputs/task-7"),
    ("outputs/task-7/", "outputs", "outputs/task-7"),  # what get_output_path answered, sent back
    ("team-a/experiment", "outputs", "team-a/experiment"),  # the user asked for another place: kept
])
def test_the_rule(given, default, expected):
    assert task_output_path(7, given, default) == expected


def test_without_a_task_the_value_is_left_alone():
    assert task_output_path(None, None, "outputs") is None
    assert task_output_path(None, "mine", "outputs") == "mine"


@pytest.mark.parametrize(("values", "expected"), [
    ({}, "outputs/task-5"),
    ({"cvat-output-path": "outputs"}, "outputs/task-5"),
    ({"sys-output-path": "outputs/"}, "outputs/task-5"),  # Onepanel's older name
    ({"cvat-output-path": "shared/all-tasks"}, "shared/all-tasks"),
])
def test_every_entry_point_gets_it_through_autofill(values, expected):
    filled = autofill(get_template("maskrcnn-training"), values, task=CvatTask(id=5, labels=["cat", "dog"]))
    assert filled.values["cvat-output-path"] == expected
