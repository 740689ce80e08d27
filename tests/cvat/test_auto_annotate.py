"""Submitting annotate-task for a run's model (what `cvatflow annotate`, the API and the UI share)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from cvatflow.auto_annotate import Request, submit
from cvatflow.auto_annotate_cli import annotate_task
from cvatflow.errors import CvatflowError


class Runs:
    """A runs client holding one run, recording what is executed."""

    def __init__(self, phase="Succeeded", outputs=None):
        self.settings = SimpleNamespace(store="s3://ml")
        self._run = SimpleNamespace(status=lambda: SimpleNamespace(phase=phase),
                                    outputs=lambda: outputs if outputs is not None else
                                    {"model": "s3://ml/outputs/task-1/detr-training-abc/model/"})
        self.executed = []

    def run(self, name):
        return self._run

    def execute(self, template, **kwargs):
        self.executed.append((template, kwargs))
        return SimpleNamespace(name="annotate-task-xyz")


def test_submit_fills_the_template_from_the_run_s_model():
    runs = Runs()
    submit(runs, Request("detr-training-abc", 42, threshold=0.3, clear_existing=True, node_pool="gpu-t4"))
    ((template, kwargs),) = runs.executed
    assert template == "annotate-task"
    assert kwargs["parameters"] == {"model-path": "outputs/task-1/detr-training-abc/model/", "cvat-task-id": "42",
                                    "threshold": "0.3", "clear-existing": "true", "shape": "auto",
                                    "sys-node-pool": "gpu-t4"}
    assert kwargs["labels"] == {"cvatflow.io/annotates": "detr-training-abc", "cvatflow.io/cvat-task-id": "42"}


@pytest.mark.parametrize("runs,message", [
    (Runs(phase="Failed"), "is Failed; only a Succeeded run"),
    (Runs(outputs={}), "has no model output"),
    (Runs(outputs={"model": "s3://other/outputs/x/model/"}), "not in the configured store s3://ml/"),
])
def test_a_run_without_a_usable_model_submits_nothing(runs, message):
    with pytest.raises(CvatflowError, match=message):
        submit(runs, Request("detr-training-abc", 42))
    assert runs.executed == []


def test_the_step_refuses_a_clear_existing_that_is_not_a_boolean():
    with pytest.raises(CvatflowError, match="--clear-existing 'maybe': true or false"):
        annotate_task(model="m", cvat_task=1, threshold=0.5, clear_existing="maybe", shape="auto", cvat_url="",
                      device="")


def test_the_step_explains_a_task_whose_label_types_the_model_cannot_give(tmp_path):
    from cvatflow.auto_annotate import annotate
    from fake_cvat import FakeCvat, FakeTask
    from model_states import CLASSES, tiny_state

    state = tiny_state("detr", tmp_path / "detr")
    task = FakeTask(id=5, labels=CLASSES, images=1, label_types={"square": "polygon"})
    with FakeCvat(tasks=[task]) as cvat:
        with pytest.raises(CvatflowError, match="'rectangle' in the function, but 'polygon' in the dataset.*--shape"):
            annotate(str(state), cvat.url, 5, token=cvat.token, device="cpu")
        with pytest.raises(CvatflowError, match="none of the model's classes"):
            cvat.tasks[5].labels = ["dog"]
            cvat.tasks[5].label_ids = {"dog": 501}
            annotate(str(state), cvat.url, 5, token=cvat.token, device="cpu")
    assert task.annotations["version"] == 0  # nothing uploaded
