"""The local executor runs a WorkflowTemplate's DAG on this machine, like Argo would on a cluster."""
from __future__ import annotations

import sys

import pytest

from cvatflow.local import LocalExecutor
from cvatflow.runs.local import LocalRun
from cvatflow.templates import Parameter, Template, render
from paths import DATA

STEP = {"step": [sys.executable, str(DATA / "step.py")]}


def container(name, args, inputs=None, outputs=None, mounts=None, image="ghcr.io/cvatflow/maskrcnn:0.1.0",
              command=("step",)):
    tpl = {"name": name, "container": {"image": image, "command": list(command), "args": args}}
    if mounts:
        tpl["container"]["volumeMounts"] = [{"name": m, "mountPath": p} for m, p in mounts.items()]
    if inputs:
        tpl["inputs"] = {"artifacts": inputs}
    if outputs:
        tpl["outputs"] = {"artifacts": outputs}
    return tpl


def pipeline(tasks, templates, parameters=(), claims=()):
    spec = {"entrypoint": "main", "templates": [{"name": "main", "dag": {"tasks": tasks}}, *templates]}
    if claims:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": c}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}} for c in claims]
    return Template("pipeline", [Parameter(n, v) for n, v in parameters], spec)


def execute(tmp_path, template, values=None, name="run-1"):
    executor = LocalExecutor(tmp_path / "runs", (tmp_path / "store").as_uri(), entry_points=STEP)
    run_dir = executor.create(render(template), values or {}, name)
    status = executor.execute(run_dir)
    return status, LocalRun(run_dir)


def test_multi_step_run_passes_artifacts_and_uploads_outputs(tmp_path):
    template = pipeline(
        tasks=[{"name": "produce", "template": "produce"},
               {"name": "consume", "template": "consume", "depends": "produce",
                "arguments": {"artifacts": [{"name": "data", "from": "{{tasks.produce.outputs.artifacts.data}}"}]}},
               {"name": "train", "template": "train", "depends": "consume"}],
        templates=[
            container("produce", ["write", "/mnt/output/data.txt", "{{workflow.parameters.greeting}}"],
                      outputs=[{"name": "data", "path": "/mnt/output"}]),
            container("consume", ["append", "/mnt/data/in/data.txt", "/mnt/output/result.txt", " world"],
                      inputs=[{"name": "data", "path": "/mnt/data/in"}],
                      outputs=[{"name": "result", "path": "/mnt/output",
                                "s3": {"key": "{{workflow.parameters.out}}/{{workflow.name}}"}}]),
            container("train", ["events", "/mnt/output/model"], mounts={"output": "/mnt/output"},
                      outputs=[{"name": "model", "path": "/mnt/output", "s3": {"key": "models/{{workflow.name}}"}}]),
        ],
        parameters=[("greeting", "hello"), ("out", "outputs")], claims=["output"])
    status, run = execute(tmp_path, template)
    assert status["phase"] == "Succeeded", status
    assert [s.name for s in run.status().steps] == ["produce", "consume", "train"]
    assert run.status().progress == "3/3"
    assert (tmp_path / "store" / "outputs" / "run-1" / "result.txt").read_text() == "hello world"
    assert (tmp_path / "store" / "models" / "run-1" / "model" / "model.txt").read_text() == "weights"
    assert "wrote" in run.logs("produce")
    assert run.metrics().best_map == pytest.approx(0.2)
    assert run.metrics().step == 20


def test_failing_step_fails_the_run_and_later_steps_do_not_run(tmp_path):
    template = pipeline(
        tasks=[{"name": "first", "template": "ok"}, {"name": "broken", "template": "broken", "depends": "first"},
               {"name": "after", "template": "ok", "depends": "broken"}],
        templates=[container("ok", ["write", "/mnt/output/x", "1"]), container("broken", ["fail"])])
    status, run = execute(tmp_path, template)
    assert status["phase"] == "Failed"
    phases = {s.name: s.phase for s in run.status().steps}
    assert phases == {"first": "Succeeded", "broken": "Failed", "after": "Omitted"}
    assert "exit code 3" in status["message"] and "bad input" in status["message"]
    assert "something went wrong" in run.logs("broken")


def test_foreign_image_is_refused_with_a_clear_message(tmp_path):
    template = pipeline(tasks=[{"name": "train", "template": "tf"}],
                        templates=[container("tf", ["main.py"], image="tensorflow/tensorflow:1.13.1-py3",
                                             command=("python",))])
    status, run = execute(tmp_path, template)
    assert status["phase"] == "Failed"
    message = run.status().steps[0].message
    assert "tensorflow/tensorflow:1.13.1-py3" in message and "not a cvatflow entry point" in message
    assert "--kube" in message


def test_when_false_skips_a_task(tmp_path):
    template = pipeline(
        tasks=[{"name": "a", "template": "ok", "when": "'{{workflow.parameters.ckpt}}' == ''"},
               {"name": "b", "template": "ok", "when": "'{{workflow.parameters.ckpt}}' != ''"}],
        templates=[container("ok", ["write", "/mnt/output/x", "1"])], parameters=[("ckpt", "")])
    status, run = execute(tmp_path, template)
    assert status["phase"] == "Succeeded"
    assert {s.name: s.phase for s in run.status().steps} == {"a": "Succeeded", "b": "Skipped"}


def test_parameter_values_are_never_run_by_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    template = pipeline(tasks=[{"name": "a", "template": "ok"}],
                        templates=[container("ok", ["write", "/mnt/output/x", "{{workflow.parameters.v}}"],
                                             outputs=[{"name": "o", "path": "/mnt/output"}])],
                        parameters=[("v", f"x; touch {marker} && $(touch {marker})")])
    status, run = execute(tmp_path, template)
    assert status["phase"] == "Succeeded"
    assert not marker.exists()
    assert (run.dir / "steps" / "a" / "fs" / "mnt" / "output" / "x").read_text().startswith("x; touch")


def test_unknown_reference_is_an_error_naming_it(tmp_path):
    template = pipeline(tasks=[{"name": "a", "template": "ok"}],
                        templates=[container("ok", ["write", "/mnt/output/x", "{{workflow.parameters.nope}}"])])
    status, run = execute(tmp_path, template)
    assert status["phase"] == "Failed"
    assert "{{workflow.parameters.nope}}" in run.status().steps[0].message


def test_detached_run_reports_phases_until_it_ends(tmp_path):
    # A real entry point: the worker is a fresh interpreter that knows only cvatflow's own commands.
    template = pipeline(tasks=[{"name": "a", "template": "ok"}],
                        templates=[container("ok", ["templates", "list"], command=("cvatflow",))])
    executor = LocalExecutor(tmp_path / "runs", (tmp_path / "store").as_uri())
    run_dir = executor.create(render(template), {}, "detached")
    run = LocalRun(run_dir)
    assert run.status().phase == "Pending"
    executor.start(run_dir)
    seen = []
    final = run.wait(timeout=120, poll=0.2, on_change=lambda s: seen.append(s.phase))
    assert final.phase == "Succeeded", final.message
    assert seen[-1] == "Succeeded" and final.finished_at
    assert "maskrcnn-training" in run.logs("a")


def test_progress_counts_the_same_while_running_and_at_the_end(tmp_path, monkeypatch):
    # Argo's status.progress: steps ended / steps started. A skipped task is neither, so the count never
    # starts at 0/3 and ends at 2/2.
    seen = []
    save = LocalExecutor._save
    monkeypatch.setattr(LocalExecutor, "_save", lambda self, d, w, s: (seen.append(s["progress"]), save(self, d, w, s)))
    template = pipeline(
        tasks=[{"name": "a", "template": "ok"},
               {"name": "skipped", "template": "ok", "depends": "a", "when": "'{{workflow.parameters.ckpt}}' != ''"},
               {"name": "b", "template": "ok", "depends": "a"}],
        templates=[container("ok", ["write", "/mnt/output/x", "1"])], parameters=[("ckpt", "")])
    status, run = execute(tmp_path, template)
    assert status["phase"] == "Succeeded"
    progress = [p for i, p in enumerate(seen) if p and (i == 0 or p != seen[i - 1])]
    assert progress == ["0/0", "0/1", "1/1", "1/2", "2/2"], seen
    assert run.status().progress == "2/2"


def test_a_failed_step_counts_as_ended_as_in_argo(tmp_path):
    template = pipeline(tasks=[{"name": "a", "template": "ok"}, {"name": "b", "template": "bad", "depends": "a"},
                               {"name": "c", "template": "ok", "depends": "b"}],
                        templates=[container("ok", ["write", "/mnt/output/x", "1"]), container("bad", ["fail"])])
    status, run = execute(tmp_path, template)
    assert status["phase"] == "Failed"
    assert run.status().progress == "2/2"  # c was omitted: never started, so not counted
