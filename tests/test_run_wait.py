"""`cvatflow run --wait`: a failed run names the failed step and its message, and lists no outputs."""
from __future__ import annotations

import pytest

from cvatflow.runs.run import RunStatus, StepStatus


class FakeRun:
    name = "train-abc12"

    def __init__(self, phase: str) -> None:
        self.phase = phase

    def outputs(self) -> dict[str, str]:
        return {"output": "s3://bucket/outputs/task-1/train-abc12/", "model": "s3://bucket/outputs/model/"}


class FakeClient:
    kind = "local"

    def __init__(self, run: FakeRun) -> None:
        self._run = run

    def execute(self, template, **_):
        return self._run


def status(phase: str) -> RunStatus:
    steps = [StepStatus("prepare-dataset", "Succeeded"),
             StepStatus("train", "Failed" if phase != "Succeeded" else "Succeeded",
                        message="OOMKilled (exit code 137)" if phase != "Succeeded" else "")]
    return RunStatus("train-abc12", "detr-training", phase, message="child 'train' failed" if steps else "",
                     steps=steps)


@pytest.fixture
def fake_run(monkeypatch):
    import cvatflow.runs.cli as runs_cli
    from cvatflow.runs import watch

    def install(phase: str) -> None:
        run = FakeRun(phase)
        monkeypatch.setattr(runs_cli, "_client", lambda *a, **k: FakeClient(run))
        monkeypatch.setattr(watch, "watch", lambda r, console=None, **k: status(phase))

    return install


def test_failed_run_names_the_step_and_lists_no_outputs(cli, fake_run):
    fake_run("Failed")
    result = cli("run", "detr-training", "--data", "x.zip", "--wait")
    assert result.code == 1
    assert "failed step train: OOMKilled (exit code 137)" in result.out
    assert "runs logs train-abc12 --step train" in result.out
    assert "s3://bucket" not in result.out
    assert "prepare-dataset" not in result.out  # only the step that failed


def test_succeeded_run_lists_its_outputs(cli, fake_run):
    fake_run("Succeeded")
    result = cli("run", "detr-training", "--data", "x.zip", "--wait")
    assert result.code == 0
    assert "s3://bucket/outputs/model/" in result.out and "failed step" not in result.out
