"""The local executor retries a killed step as the built-in templates' retryStrategy tells Argo to, and only then."""
from __future__ import annotations

import sys

import pytest

from cvatflow.local import LocalExecutor
from cvatflow.runs.local import LocalRun
from cvatflow.templates import Template, get_template, render

# A step that counts its attempts in a file, then dies the way the mode says (SIGKILL is a preempted pod).
STEP = r'''
import os, signal, sys
mode, tally = sys.argv[1], sys.argv[2]
with open(tally, "a") as f:
    f.write("x")
attempt = len(open(tally).read())
print(f"attempt {attempt}", flush=True)
if mode == "kill-once" and attempt == 1 or mode == "kill-always":
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "term-once" and attempt == 1:
    os.kill(os.getpid(), signal.SIGTERM)  # a pod evicted with a grace period
if mode == "exit-137-once" and attempt == 1:
    sys.exit(137)
if mode == "exit-143-once" and attempt == 1:
    sys.exit(143)  # SIGTERM as a shell or container runtime reports it
if mode == "exit-3":
    print("bad input", flush=True)
    sys.exit(3)
'''


def builtin_retry_strategy() -> dict:
    """The train step's retryStrategy of the built-in DETR template, as rendered for Argo."""
    doc = render(get_template("detr-training"))
    train = next(t for t in doc["spec"]["templates"] if t["name"] == "train")
    return train["retryStrategy"]


def run_step(tmp_path, mode: str, retry_strategy: dict | None):
    tally = tmp_path / "tally"
    step = {"name": "step", "container": {"image": "ghcr.io/cvatflow/detr:0.1.0", "command": ["flaky"],
                                          "args": [mode, str(tally)]}}
    if retry_strategy is not None:
        step["retryStrategy"] = retry_strategy
    spec = {"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": [{"name": "train", "template": "step"}]}}, step]}
    executor = LocalExecutor(tmp_path / "runs", (tmp_path / "store").as_uri(),
                             entry_points={"flaky": [sys.executable, "-c", STEP]})
    run_dir = executor.create(render(Template("flaky", [], spec)), {}, "run-1")
    status = executor.execute(run_dir)
    attempts = len(tally.read_text()) if tally.exists() else 0
    return status, status["nodes"]["train"], attempts, LocalRun(run_dir)


def test_the_builtin_retry_strategy_retries_preemption_three_times():
    strategy = builtin_retry_strategy()
    assert strategy["limit"] == "3"
    assert "137" in strategy["expression"] and "143" in strategy["expression"]


@pytest.mark.parametrize("mode", ["kill-once", "term-once", "exit-137-once", "exit-143-once"])
def test_a_step_killed_once_is_retried_and_the_run_succeeds(tmp_path, mode):
    status, node, attempts, run = run_step(tmp_path, mode, builtin_retry_strategy())
    assert status["phase"] == "Succeeded", status
    assert attempts == 2
    assert node["retries"] == 1 and node["exitCode"] == 0
    assert run.status().steps[0].phase == "Succeeded"


def test_a_step_killed_every_time_stops_after_the_limit(tmp_path):
    status, node, attempts, _ = run_step(tmp_path, "kill-always", {"limit": "2"})
    assert status["phase"] == "Failed"
    assert attempts == 3  # the first try and two retries
    assert node["retries"] == 2 and node["exitCode"] == 137  # 128 + SIGKILL, as a container reports it


def test_a_step_that_fails_by_itself_is_not_retried(tmp_path):
    status, node, attempts, _ = run_step(tmp_path, "exit-3", builtin_retry_strategy())
    assert status["phase"] == "Failed"
    assert attempts == 1 and "retries" not in node
    assert "exit code 3" in status["message"] and "bad input" in status["message"]


def test_without_a_retry_strategy_a_killed_step_fails_the_run(tmp_path):
    status, node, attempts, _ = run_step(tmp_path, "kill-once", None)
    assert status["phase"] == "Failed" and attempts == 1 and node["exitCode"] == 137


def test_a_dag_that_cannot_run_ends_in_error_naming_the_cycle(tmp_path):
    spec = {"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": [{"name": "a", "template": "s", "depends": "b"},
                                           {"name": "b", "template": "s", "depends": "a"}]}},
        {"name": "s", "container": {"image": "x", "command": ["flaky"], "args": ["exit-3", str(tmp_path / "t")]}}]}
    executor = LocalExecutor(tmp_path / "runs", (tmp_path / "store").as_uri(),
                             entry_points={"flaky": [sys.executable, "-c", STEP]})
    status = executor.execute(executor.create(render(Template("cycle", [], spec)), {}, "run-1"))
    assert status["phase"] == "Error" and "cycle" in status["message"]
    assert not (tmp_path / "t").exists()  # nothing ran
