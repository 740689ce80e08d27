"""`cvatflow runs get` as a person reads it: each part of the run on its own lines."""
from __future__ import annotations

import json

from cvatflow.events import Summary
from cvatflow.one_value import ANNOTATION
from cvatflow.runs.run import RunStatus, StepStatus


class TrainedRun:
    """A finished run whose training reported its last step (so `runs get` draws the progress bar)."""

    def status(self) -> RunStatus:
        settings = {"epochs": {"value": "2", "source": "parameter"}}
        return RunStatus("train-abc12", "detr-training", "Succeeded", "2/2",
                         steps=[StepStatus("train", "Succeeded")],
                         annotations={ANNOTATION: json.dumps(settings)})

    def metrics(self) -> Summary:
        return Summary(epoch=2.0, step=10, total_steps=10, train={"loss": 0.5}, val={"mAP": 0.3})

    def outputs(self) -> dict[str, str]:
        return {"model": "s3://bucket/outputs/model/"}


def test_hyperparameters_heading_starts_its_own_line(cli, monkeypatch):
    import cvatflow.runs.cli as runs_cli

    monkeypatch.setattr(runs_cli, "_find", lambda *a, **k: TrainedRun())
    result = cli("runs", "get", "train-abc12")
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert "hyperparameters (value, source):" in lines, result.out
    bar = next(line for line in lines if "━" in line)
    assert set(bar.strip()) == {"━"}, result.out  # the progress bar alone on its line
    assert "  epochs: 2  (parameter)" in lines
    assert lines.index("outputs:") == lines.index("  epochs: 2  (parameter)") + 1  # a heading of their own
    assert lines[lines.index("outputs:") + 1].split() == ["model", "s3://bucket/outputs/model/"]
