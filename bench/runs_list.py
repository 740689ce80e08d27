"""`cvatflow runs list --json` with 10,000 local runs against 100: the runs index keeps the 100x listing under 3x."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _goal import Goals, quick

from cvatflow.local.executor import write_json
from cvatflow.runs.index import RunIndex

SMALL = 100
LARGE = int(os.environ.get("BENCH_RUNS_LARGE", "1000" if quick() else "10000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
# A workflow.json as big as a real one: the rendered template travels with every run.
TEMPLATE = {"metadata": {"name": "detr-training"}, "spec": {"templates": [
    {"name": f"step-{i}", "container": {"image": "ghcr.io/cvatflow/detr:0.1.0", "args": ["x" * 200]}}
    for i in range(20)]}}


def lay_out(home: Path, count: int) -> None:
    """`count` finished run folders as the executor leaves them, then their index rows (as the executor writes)."""
    runs = home / "runs"
    runs.mkdir(parents=True)
    index = RunIndex(runs)
    for i in range(count):
        name = f"detr-training-{i:05d}"
        (runs / name / "logs").mkdir(parents=True)
        status = {"phase": "Succeeded" if i % 7 else "Failed", "nodes": {"train": {"phase": "Succeeded"}},
                  "progress": "2/2", "startedAt": "2026-11-30T10:00:00Z", "finishedAt": "2026-11-30T11:00:00Z",
                  "message": ""}
        workflow = {"name": name, "uid": str(i), "template": "detr-training",
                    "createdAt": f"2026-11-30T10:{i // 600 % 60:02d}:{i // 10 % 60:02d}Z", "labels": {"team": "a"},
                    "annotations": {}, "parameters": {"epochs": "5"}, "storeUri": "file:///tmp/store",
                    "outputPrefix": None, "workflowTemplate": TEMPLATE}
        write_json(runs / name / "status.json", status)
        write_json(runs / name / "workflow.json", workflow)
    index.rows()  # indexes every folder once, as the executors would have while the runs ran


def list_seconds(home: Path, expected: int) -> float:
    env = {**os.environ, "CVATFLOW_HOME": str(home), "CVATFLOW_BACKEND": "local"}
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "cvatflow.cli", "runs", "list", "--json"], env=env,
                             capture_output=True, text=True, check=True).stdout
        times.append(time.perf_counter() - start)
        assert len(json.loads(out)) == expected
    return statistics.median(times)


def main() -> int:
    goals = Goals(__file__)
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "small", Path(tmp) / "large"
        lay_out(small, SMALL)
        lay_out(large, LARGE)
        t_small, t_large = list_seconds(small, SMALL), list_seconds(large, LARGE)
    print(f"runs list --json: {SMALL} runs {t_small:.3f} s, {LARGE} runs {t_large:.3f} s "
          f"(median of {REPEATS}, whole command including interpreter start-up)")
    goals.note(f"runs list, {SMALL} runs", t_small, " s")
    goals.note(f"runs list, {LARGE} runs", t_large, " s")
    goals.check(f"runs list time ratio, {LARGE} vs {SMALL} runs", t_large / t_small, "<", 3.0, "x")
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
