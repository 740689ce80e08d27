"""Local executor overhead: the demo's steps run by the executor vs the same commands run by hand in sequence."""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _goal import Goals

from cvatflow.config import load_settings
from cvatflow.datasets.synth import make_export
from cvatflow.runs.client import Client

IMAGES = int(os.environ.get("BENCH_LOCAL_IMAGES", "40"))
PARAMETERS = {"cvat-model": "maskrcnn_mobilenet_v3", "epochs": "1", "batch-size": "4", "val-split": "20",
              "hyperparameters": "image_size: 128\nnum_workers: 0\n"}
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn, *args) -> tuple[float, float]:
    """Wall seconds and CPU seconds of the child processes (the second resists other load on the machine)."""
    wall, cpu = time.perf_counter(), child_cpu()
    fn(*args)
    return time.perf_counter() - wall, child_cpu() - cpu


def by_hand(export_dir: Path, work: Path) -> None:
    """The same two commands the template's steps run, with the data already in place."""
    prepared, output = work / "prepared", work / "output"
    subprocess.run([sys.executable, "-m", "cvatflow.cli", "dataset", "prepare", str(export_dir), "--out",
                    str(prepared), "--val-split", PARAMETERS["val-split"]], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "cvatflow.training.cli", "maskrcnn", "train", "--data", str(prepared),
                    "--output", str(output), "--model", PARAMETERS["cvat-model"], "--num-classes", "3",
                    "--epochs", PARAMETERS["epochs"], "--batch-size", PARAMETERS["batch-size"],
                    "--hyperparameters", PARAMETERS["hyperparameters"]], check=True, capture_output=True)


def by_executor(client: Client, filled, name: str) -> None:
    run = client.backend.submit(filled, name=name, detach=False)
    if run.status().phase != "Succeeded":
        raise SystemExit(f"run {name} failed: {run.status().message}")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = load_settings(env={"CVATFLOW_HOME": str(tmp / "home")})
        client = Client("local", settings=settings)
        export = make_export(tmp / "export.zip", images=IMAGES, seed=1)
        filled = client.prepare("maskrcnn-training", dataset=export, parameters=PARAMETERS)
        export_dir = tmp / "export-dir"
        client.store.download_prefix(filled.values["cvat-annotation-path"], export_dir)
        hand, executor = [], []
        for i in range(ROUNDS):  # interleaved, so drift in machine load hits both alike
            hand.append(timed(by_hand, export_dir, tmp / f"hand-{i}"))
            executor.append(timed(by_executor, client, filled, f"bench-{i}"))
        ratios = {}
        for label, index in (("wall", 0), ("child CPU", 1)):
            h = statistics.median(x[index] for x in hand)
            e = statistics.median(x[index] for x in executor)
            print(f"{label:10} by hand {h:6.1f} s, local executor {e:6.1f} s (medians of {ROUNDS}): "
                  f"ratio {e / h:.3f} (overhead {100 * (e / h - 1):+.1f}%)")
            ratios[label] = e / h
    goals = Goals(__file__)
    goals.check("local executor / by hand, wall time", ratios["wall"], "<", 1.05, "x")
    goals.note("local executor / by hand, child CPU", ratios["child CPU"], "x")
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
