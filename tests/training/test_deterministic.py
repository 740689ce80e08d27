"""`deterministic: true`: the demo's model trained twice on the same data gives the same metrics, every one."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cvatflow.demo import PARAMETERS
from training_fixtures import make_dataset

pytestmark = pytest.mark.slow

# The demo's model and augmentation, shrunk to seconds; one data-loader worker so seeded workers are exercised.
HP = ("deterministic: true\nmax_steps: 3\nbatch_size: 2\nimage_size: 64\nval_every: 1\nnum_workers: 1\n"
      "warmup_steps: 1\nhflip: 0.5\n")
TIMINGS = ("images_per_s",)  # how fast a step ran is not a result of the training


def train(data, output) -> dict:
    """One training in its own process, as two `make demo` runs are; returns every metric it wrote."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-m", "cvatflow.training.cli", "maskrcnn", "train", "--data", str(data),
                    "--output", str(output), "--model", PARAMETERS["cvat-model"], "--no-pretrained",
                    "--no-export", "--hyperparameters", HP], check=True, env=env, capture_output=True, timeout=600)
    info = json.loads((output / "experiment_info.json").read_text())
    report = json.loads((output / "report" / "metrics.json").read_text())
    report["history"] = [{k: v for k, v in entry.items() if k not in TIMINGS} for entry in report["history"]]
    assert any("loss" in entry for entry in report["history"])  # the training losses are compared too
    return {"report": report,
            "evaluation": info["evaluation_metrics"], "steps": info["steps"], "best_step": info["best_step"]}


def test_two_deterministic_runs_give_identical_metrics(tmp_path):
    assert "deterministic: true" in PARAMETERS["hyperparameters"]  # the demo asks for it
    data = make_dataset(tmp_path / "data", images=6, seed=3, size=64)
    first, second = train(data, tmp_path / "a"), train(data, tmp_path / "b")
    assert first["report"], "the run wrote no metrics"
    assert first == second
    sources = json.loads((tmp_path / "a" / "experiment_info.json").read_text())["hyperparameter_sources"]
    assert sources["deterministic"] == "hyperparameters"


def test_flip_augmentation_is_seeded_by_sample_and_epoch_not_by_the_process(tmp_path):
    import random

    from cvatflow.training import data as datalib

    coco = datalib.load(make_dataset(tmp_path / "data", images=4, seed=1, size=32))
    ids = coco.train_ids + coco.val_ids

    def flips(process_seed: int) -> list[bool]:
        random.seed(process_seed)  # what another worker or run would have drawn before
        dataset = datalib.DetectionDataset(coco, ids, 32, False, hflip=0.5, seed=7)
        plain = datalib.DetectionDataset(coco, ids, 32, False)
        return [bool((dataset[i][0] != plain[i % len(ids)][0]).any()) for i in range(3 * len(ids))]

    first = flips(1)
    assert first == flips(2)
    assert any(first) and not all(first)
