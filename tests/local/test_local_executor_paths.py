"""Container paths of a template (artifacts, arguments, mounts, workingDir) stay inside the run's folder, as they
stay inside the container on a cluster: `..` climbs no higher than the container's root."""
from __future__ import annotations

import sys

from cvatflow.local import LocalExecutor
from cvatflow.runs.local import LocalRun
from cvatflow.templates import Template, render
from paths import DATA

STEP = {"step": [sys.executable, str(DATA / "step.py")]}


def _run(tmp_path, step_template, name="run-1"):
    spec = {"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": [{"name": "a", "template": "a"}]}},
        {"name": "a", **step_template}]}
    executor = LocalExecutor(tmp_path / "runs", (tmp_path / "store").as_uri(), entry_points=STEP)
    run_dir = executor.create(render(Template("escape", [], spec)), {}, name)
    return executor.execute(run_dir), LocalRun(run_dir)


def test_a_raw_input_artifact_with_dot_dot_is_written_inside_the_step(tmp_path):
    outside = tmp_path / "outside.txt"
    climb = "/mnt/" + "../" * 12 + str(outside).lstrip("/")
    status, run = _run(tmp_path, {
        "inputs": {"artifacts": [{"name": "x", "path": climb, "raw": {"data": "planted"}}]},
        "container": {"image": "ghcr.io/cvatflow/maskrcnn:0.1.0", "command": ["step"],
                      "args": ["write", "/mnt/output/x", "1"]}})
    assert not outside.exists()
    assert status["phase"] == "Succeeded", run.status().steps[0].message
    # in the container, /mnt/../../.. is / : the file lands where a pod would put it, under the step's root
    assert (run.dir / "steps" / "a" / "fs" / str(outside).lstrip("/")).read_text() == "planted"


def test_an_output_artifact_with_dot_dot_never_uploads_a_file_from_outside(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the store")
    climb = "/mnt/output/" + "../" * 12 + str(secret).lstrip("/")
    status, _ = _run(tmp_path, {
        "container": {"image": "ghcr.io/cvatflow/maskrcnn:0.1.0", "command": ["step"],
                      "args": ["write", "/mnt/output/x", "1"]},
        "outputs": {"artifacts": [{"name": "o", "path": climb, "s3": {"key": "stolen"}}]}})
    assert status["phase"] == "Failed"  # not created inside the step: as on a cluster
    assert not (tmp_path / "store" / "stolen").exists()


def test_a_mounted_volume_cannot_be_left_with_dot_dot(tmp_path):
    outside = tmp_path / "outside.txt"
    climb = "/mnt/output/" + "../" * 12 + str(outside).lstrip("/")
    status, run = _run(tmp_path, {
        "container": {"image": "ghcr.io/cvatflow/maskrcnn:0.1.0", "command": ["step"], "args": ["write", climb, "1"],
                      "volumeMounts": [{"name": "output", "mountPath": "/mnt/output"}]}})
    assert not outside.exists()
    assert status["phase"] == "Succeeded"
    assert (run.dir / "steps" / "a" / "fs" / str(outside).lstrip("/")).read_text() == "1"
