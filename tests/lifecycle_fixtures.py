"""A stand-in training harness and a two-step template for the run-lifecycle tests (local executor, API)."""
from __future__ import annotations

import threading
import time

from cvatflow.runs.local import LocalRun
from cvatflow.templates import Template, render

# A stand-in training harness: resumes from last.pt, writes it every step and once more on SIGTERM, as the
# real harness's checkpoints do; "prep" succeeds at once and counts its attempts.
STEP = r'''
import os, signal, sys, time
from pathlib import Path
mode, out = sys.argv[1], Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
with open(out / f"{mode}.attempts", "a") as f:
    f.write("x")
if mode == "prep":
    (out / "data.txt").write_text("data")
    sys.exit(0)
last = out / "last.pt"
step = int(last.read_text()) if last.exists() else 0
print(f"resuming from checkpoints/last.pt at step {step}" if step else "starting", flush=True)
def save_and_exit(signum, frame):
    last.write_text(str(step))
    print(f"SIGTERM: wrote last.pt at step {step}", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, save_and_exit)
while step < int(os.environ.get("STEPS", "400")):
    step += 1
    last.write_text(str(step))
    print(f"step {step}", flush=True)
    time.sleep(0.05)
print("done", flush=True)
'''


def template() -> Template:
    def step(name):
        return {"name": name, "container": {"image": "ghcr.io/cvatflow/detr:0.1.0", "command": ["harness"],
                                            "args": [name, "{{workflow.parameters.out}}"]}}
    spec = {"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": [{"name": "prep", "template": "prep"},
                                           {"name": "train", "template": "train", "dependencies": ["prep"]}]}},
        step("prep"), step("train")]}
    from cvatflow.templates import Parameter

    return Template("lifecycle", [Parameter("out", "")], spec)


def start(executor, tmp_path, name="run-1"):
    run_dir = executor.create(render(template()), {"out": str(tmp_path / "out")}, name, {"team": "a"})
    thread = threading.Thread(target=executor.execute, args=(run_dir,), daemon=True)
    thread.start()
    run = LocalRun(run_dir, executor)
    deadline = time.monotonic() + 60
    while "step 3" not in run.logs("train"):
        assert time.monotonic() < deadline, run.logs()
        time.sleep(0.05)
    return run, thread
