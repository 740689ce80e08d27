"""The local executor's phases, log streaming, failure messages and stop, at their edges: kills cosmic-ray's mutants
of LocalExecutor.execute/_spawn that the broader executor tests let live (`make mutation TARGETS=executor`).

Equivalent mutants, left alive: `attempt < retries` as `!=` and `range(retries + 1)` as `+ 2` (attempt never exceeds
retries: the last attempt returns or raises); `time.sleep(0.5)` as 1.5 (the pause before a retry); the log file's
`buffering=1` as 2 (a 2-byte buffer passes every line longer than that straight through, as line buffering does)."""
from __future__ import annotations

import json
import signal
import sys

import pytest

from cvatflow.local import LocalExecutor
from cvatflow.templates import Template, render

STEP = r'''
import os, signal, sys, time
mode = sys.argv[1]
if mode == "talk":
    print("one", flush=True)
    print("two", flush=True)
elif mode == "silent-fail":
    sys.exit(4)
elif mode == "long-line":
    print("x" * 299 + "yz" + "w" * 100, flush=True)
    sys.exit(5)
elif mode == "stop-parent":
    print("asking to stop", flush=True)
    os.kill(os.getppid(), signal.SIGTERM)  # `cvatflow stop` signals the executor
    time.sleep(60)
'''


def one_step(tmp_path, mode: str, on_log=None, second: bool = False, also_failing: bool = False):
    steps = [{"name": "step", "template": "s", "arguments": {"parameters": [{"name": "mode", "value": mode}]}}]
    if also_failing:  # an independent second step that fails too
        steps.append({"name": "other", "template": "s",
                      "arguments": {"parameters": [{"name": "mode", "value": "silent-fail"}]}})
    if second:
        steps.append({"name": "after", "template": "s", "depends": "step",
                      "arguments": {"parameters": [{"name": "mode", "value": "talk"}]}})
    spec = {"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": steps}},
        {"name": "s", "inputs": {"parameters": [{"name": "mode"}]},
         "container": {"image": "x", "command": ["step"], "args": ["{{inputs.parameters.mode}}"]}}]}
    executor = LocalExecutor(tmp_path / "runs", (tmp_path / "store").as_uri(), on_log=on_log,
                             entry_points={"step": [sys.executable, "-c", STEP]})
    run_dir = executor.create(render(Template("one", [], spec)), {}, "run-1")
    return executor, run_dir


def test_each_log_line_goes_to_the_log_file_and_the_callback(tmp_path):
    seen = []
    executor, run_dir = one_step(tmp_path, "talk", on_log=lambda task, line: seen.append((task, line)))
    status = executor.execute(run_dir)
    assert status["phase"] == "Succeeded" and status["nodes"]["step"]["exitCode"] == 0
    assert seen == [("step", "one\n"), ("step", "two\n")]
    assert json.loads((run_dir / "status.json").read_text()) == status  # what watchers read
    assert status["startedAt"] and status["finishedAt"] and status["pid"] > 0


def test_a_step_that_fails_without_a_word_says_its_exit_code(tmp_path):
    executor, run_dir = one_step(tmp_path, "silent-fail", second=True)
    status = executor.execute(run_dir)
    assert status["phase"] == "Failed"
    assert status["message"].startswith("step step failed: exit code 4:  (full log: ")
    assert status["nodes"]["after"]["phase"] == "Omitted"
    assert json.loads((run_dir / "status.json").read_text())["phase"] == "Failed"


def test_the_failure_message_quotes_the_first_300_characters_of_the_last_line(tmp_path):
    executor, run_dir = one_step(tmp_path, "long-line")
    status = executor.execute(run_dir)
    message = status["nodes"]["step"]["message"]
    assert "x" * 299 + "y (full log" in message and "yz" not in message
    assert status["nodes"]["step"]["exitCode"] == 5


@pytest.fixture
def sigterm_restored():
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_stopped_run_ends_failed_with_the_step_killed(tmp_path, sigterm_restored):
    executor, run_dir = one_step(tmp_path, "stop-parent", second=True)
    status = executor.execute(run_dir)
    # A SIGTERM to the executor terminates the run, with the message Argo writes for it.
    assert (status["phase"], status["message"]) == ("Failed", "Stopped with strategy 'Terminate'")
    assert executor._process.wait(timeout=20) == -signal.SIGTERM  # the step was ended, not left sleeping
    assert "after" not in status["nodes"] or status["nodes"]["after"]["phase"] != "Succeeded"
    assert json.loads((run_dir / "status.json").read_text())["message"] == status["message"]


def test_with_two_failed_steps_the_message_names_the_first(tmp_path):
    executor, run_dir = one_step(tmp_path, "long-line", also_failing=True)
    status = executor.execute(run_dir)
    assert [status["nodes"][n]["phase"] for n in ("step", "other")] == ["Failed", "Failed"]
    assert status["message"].startswith("step step failed: exit code 5")
