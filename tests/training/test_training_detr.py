"""DETR end to end on CPU, and a killed run that resumes from its last checkpoint with the same step count."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from cvatflow import events
from training_fixtures import make_dataset

pytestmark = pytest.mark.slow

HP = "max_steps: 16\nbatch_size: 4\nimage_size: 96\nval_every: 2\nnum_workers: 0\nwarmup_steps: 2\n"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("detr") / "data", images=12, seed=3, size=96)


def command(*args):
    return [sys.executable, "-m", "cvatflow.training.cli", "detr", *args]


def run_cli(args):
    proc = subprocess.run(command(*args), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return list(events.parse_lines(proc.stdout.splitlines())), proc.stdout


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    output = tmp_path_factory.mktemp("detr") / "out"
    evs, _ = run_cli(["train", "--data", str(dataset), "--output", str(output), "--model", "detr_small",
                      "--hyperparameters", HP])
    return output, evs


def test_loss_goes_down_events_and_outputs(run):
    output, evs = run
    train = [e["metrics"]["loss"] for e in evs if e["event_type"] == events.METRICS and e["type"] == "train"]
    val = [e for e in evs if e["event_type"] == events.METRICS and e["type"] == "val"]
    assert min(train[-2:]) < train[0]
    assert {"mAP", "AP50", "AP75", "precision", "recall", "f1"} <= set(val[-1]["metrics"])
    assert any(e["event_type"] == events.CHECKPOINT for e in evs)
    config = json.loads((output / "model/config.json").read_text())
    assert config["settings"]["detr_config"]["num_queries"] == 20  # rebuildable offline
    assert [c["shape"] for c in config["out_classes"]] == ["rectangle"] * 3
    for name in ("export/best.onnx", "report/pr_curve.png", "checkpoints/best.pt", "model_meta.json"):
        assert (output / name).is_file(), name


def test_onnx_matches_torch(run):
    import torch

    from cvatflow.training.export import run_onnx
    from cvatflow.training.predict import load_model

    output, _ = run
    adapter, model, _ = load_model("detr", output, "cpu")
    module, _, _ = adapter.export_module(model, 96)
    image = torch.rand(1, 3, 80, 96, generator=torch.Generator().manual_seed(0))  # another size: dynamic axes
    with torch.no_grad():
        expected = [t.numpy() for t in module(image)]
    got = run_onnx(output / "export/best.onnx", image)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-3)
    np.testing.assert_allclose(got[1], expected[1], atol=1e-4)
    np.testing.assert_array_equal(got[2], expected[2])


def test_killed_run_resumes_with_the_same_step_count(dataset, tmp_path):
    output = tmp_path / "out"
    hp = HP.replace("max_steps: 16", "max_steps: 12") + "checkpoint_every: 1\nval_every: 10\n"
    args = ["train", "--data", str(dataset), "--output", str(output), "--model", "detr_small",
            "--hyperparameters", hp, "--no-export"]
    proc = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    killed_after = None
    for line in proc.stdout:
        event = events.parse_line(line)
        if event and event["event_type"] == events.PROGRESS and event["current"] >= 5:
            killed_after = event["current"]
            os.killpg(proc.pid, signal.SIGKILL)  # a spot node going away: no clean shutdown
            break
    proc.wait(timeout=60)
    assert killed_after is not None and (output / "checkpoints/last.pt").is_file()
    assert not (output / "model").exists()

    evs, out = run_cli(args)
    resumed = int(out.split("resuming from checkpoints/last.pt at step ")[1].split()[0])
    assert 4 <= resumed <= killed_after + 1
    steps = [e["current"] for e in evs if e["event_type"] == events.PROGRESS]
    assert steps == list(range(resumed + 1, 13))
    info = json.loads((output / "experiment_info.json").read_text())
    assert info["steps"] == 12  # what an uninterrupted run does


def test_sigterm_to_the_process_group_finishes_the_step_writes_last_pt_and_exits_143(dataset, tmp_path):
    """What Stop/Terminate (local executor) and a pod's deletion send: SIGTERM to the trainer and its DataLoader
    workers. The step ends, last.pt is written at it, and the status is 143, which retryStrategy retries."""
    import torch

    output = tmp_path / "out"
    # no periodic checkpoint and no validation before the end: last.pt can only come from the SIGTERM
    hp = HP.replace("max_steps: 16", "max_steps: 60").replace("num_workers: 0", "num_workers: 1") + "val_every: 100\n"
    args = ["train", "--data", str(dataset), "--output", str(output), "--model", "detr_small",
            "--hyperparameters", hp, "--no-export"]
    proc = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    signalled_at = None
    for line in proc.stdout:
        event = events.parse_line(line)
        if event and event["event_type"] == events.PROGRESS and event["current"] >= 2:
            signalled_at = event["current"]
            os.killpg(proc.pid, signal.SIGTERM)  # the executor's Stop: the whole process group
            break
    rest = proc.stdout.read()
    code = proc.wait(timeout=120)
    assert signalled_at is not None
    assert code == 143, proc.stderr.read()[-3000:]
    saved = int(rest.split("SIGTERM: wrote checkpoints/last.pt at step ")[1].split()[0])
    assert signalled_at <= saved < 60
    payload = torch.load(output / "checkpoints/last.pt", map_location="cpu", weights_only=False)
    assert payload["step"] == saved and payload["optimizer"]
    assert not (output / "model").exists()  # stopped, not finished
