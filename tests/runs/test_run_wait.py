"""`cvatflow run --wait`, `Run.wait()`, `runs watch` and `runs list` keep the README's promises: a failed run
names the failed step (and `wait()` raises), a finished one ends with its mAP and paths, names are whole, and a
piped watch prints plain progress lines."""
from __future__ import annotations

import json

import pytest
from rich.console import Console

from cvatflow.events import Summary
from cvatflow.runs.run import Run, RunFailed, RunStatus, StepStatus


class FakeRun:
    name = "train-abc12"

    def __init__(self, phase: str) -> None:
        self.phase = phase

    def outputs(self) -> dict[str, str]:
        return {"output": "s3://bucket/outputs/task-1/train-abc12/", "model": "s3://bucket/outputs/model/",
                "report": "s3://bucket/outputs/report/"}

    def metrics(self) -> Summary:
        return Summary(epoch=2.0, val={"mAP": 0.4123456, "AP50": 0.7, "AP75": 0.5})


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
    lines = result.out.strip().splitlines()
    assert any(line.startswith("mAP:      0.412  (AP50 0.700, AP75 0.500)") for line in lines), result.out
    assert lines[-1] == "logs:     cvatflow runs logs train-abc12"  # it ends with the paths, like the demo


class ScriptedRun(Run):
    """A run that walks through the given statuses (and training events), one per status() call."""

    def __init__(self, statuses: list[RunStatus], logs: list[str] | None = None) -> None:
        super().__init__("train-abc12", "detr-training")
        self.statuses, self.log_lines, self.calls = statuses, logs or [], 0

    def status(self) -> RunStatus:
        self.calls += 1
        return self.statuses[min(self.calls, len(self.statuses)) - 1]

    def logs(self, step=None) -> str:
        return "\n".join(self.log_lines[:self.calls]) + "\n"

    def output_prefix(self):
        return None


def test_wait_raises_on_a_failed_run_naming_the_step():
    run = ScriptedRun([status("Running"), status("Failed")])
    run.statuses[0] = RunStatus("train-abc12", "detr-training", "Running")
    with pytest.raises(RunFailed) as caught:
        run.wait(poll=0)
    assert caught.value.status.phase == "Failed"
    assert "step train Failed: OOMKilled (exit code 137)" in str(caught.value)
    assert "runs logs train-abc12 --step train" in str(caught.value)
    assert ScriptedRun([status("Error")]).wait(poll=0, check=False).phase == "Error"
    assert ScriptedRun([status("Succeeded")]).wait(poll=0).phase == "Succeeded"


def test_piped_watch_prints_plain_lines_with_epoch_and_loss(tmp_path):
    from cvatflow import events
    from cvatflow.runs.watch import watch

    running = RunStatus("train-abc12", "detr-training", "Running", "1/2", steps=[StepStatus("train", "Running")])
    logs = [json.dumps(events.metrics("train", 1.0, {"loss": 1.23456})),
            json.dumps(events.metrics("val", 1.0, {"mAP": 0.25})),
            json.dumps(events.metrics("train", 2.0, {"loss": 0.5}))]
    run = ScriptedRun([running, running, running, status("Succeeded")], logs)
    out = tmp_path / "watch.txt"
    with out.open("w") as file:
        final = watch(run, Console(file=file, width=40), poll=0)
    lines = out.read_text().splitlines()
    assert final.phase == "Succeeded"
    assert "\x1b" not in out.read_text()  # no terminal codes in a file
    assert "epoch 1 loss 1.2346" in lines[0]
    assert "epoch 1 loss 1.2346 mAP 0.250" in lines[1]
    assert lines[2].startswith("train-abc12 Running 1/2 train=Running epoch 2 loss 0.5000 mAP 0.250")
    assert len(lines) == 4  # one line per change, and no wrapping at the console's 40 columns


def test_runs_list_never_cuts_a_name(monkeypatch, cli):
    import cvatflow.runs.cli as runs_cli

    long_name = "maskrcnn-training-for-the-cars-project-abcde"
    rows = [RunStatus(long_name, "maskrcnn-training", "Succeeded", "2/2", "2026-11-30T14:31:05Z",
                      "2026-11-30T14:33:02Z")]

    class Listed:  # the Client as `runs list` uses it: every run's status at once
        def statuses(self, labels):
            return list(rows)

    monkeypatch.setattr(runs_cli, "_client", lambda *a, **k: Listed())
    for width in (80, 60):
        monkeypatch.setattr(runs_cli, "console", Console(width=width))
        result = cli("runs", "list")
        assert result.out.splitlines()[1].split() == [long_name, "maskrcnn-training", "Succeeded", "2/2",
                                                       "2026-11-30T14:31:05Z", "2026-11-30T14:33:02Z"]


class SmartToolRun(FakeRun):
    """An interactive-segmentation run (smarttool-training): its validation reports clicks, not mAP."""

    def metrics(self) -> Summary:
        return Summary(epoch=2.0, val={"NoC@85": 2.125, "NoC@90": 3.5, "mIoU@1": 0.61234, "mIoU@3": 0.8,
                                       "mIoU@5": 0.85, "NoF@90": 1.0})


def test_smarttool_run_ends_with_its_click_metrics(cli, monkeypatch):
    import cvatflow.runs.cli as runs_cli
    from cvatflow.runs import watch

    monkeypatch.setattr(runs_cli, "_client", lambda *a, **k: FakeClient(SmartToolRun("Succeeded")))
    monkeypatch.setattr(watch, "watch", lambda r, console=None, **k: status("Succeeded"))
    result = cli("run", "smarttool-training", "--data", "x.zip", "--wait")
    assert result.code == 0
    assert "NoC@90:   3.50  (NoC@85 2.12, mIoU@1 0.612, mIoU@5 0.850) on the validation split" in result.out
    assert "none reported" not in result.out


def test_metric_line_of_a_report_and_of_a_model_it_does_not_know():
    from cvatflow.runs.summary import metric_line

    # report/metrics.json as training/interactive.py writes it: the metrics, the best step and the history
    report = {"NoC@85": 2.0, "NoC@90": 3.0, "mIoU@1": 0.5, "mIoU@5": 0.9, "best_step": 40, "history": []}
    assert metric_line(report).startswith("NoC@90:   3.00  (NoC@85 2.00, mIoU@1 0.500, mIoU@5 0.900)")
    assert metric_line({"mAP": 0.5}) == "mAP:      0.500 on the validation split"
    assert metric_line({"PQ": 0.25, "best_step": 3}) == "metrics:  PQ 0.250 on the validation split"
    assert "none reported" in metric_line({"best_step": 3, "history": []})


def test_watch_shows_the_click_metric_of_a_smarttool_run(tmp_path):
    from cvatflow import events
    from cvatflow.runs.watch import plain_line, view

    run = ScriptedRun([status("Succeeded")], [json.dumps(events.metrics("val", 1.0, {"NoC@90": 4.25}))])
    run.status()
    assert "NoC@90 4.25" in plain_line(status("Succeeded"), run.metrics())
    console = Console(file=(tmp_path / "view.txt").open("w"), width=100)
    console.print(view(status("Succeeded"), run.metrics()))
    console.file.close()
    assert "NoC@90 4.25" in (tmp_path / "view.txt").read_text()
