"""Local runs stop, terminate, retry, resubmit and delete as Argo's Workflows do, and list from the index."""
from __future__ import annotations

import json
import sys
import time

import pytest

from cvatflow.argo import Phase
from cvatflow.errors import ConflictError
from cvatflow.local import LocalExecutor
from cvatflow.runs.index import RunIndex
from cvatflow.runs.local import LocalBackend, LocalRun
from cvatflow.templates import render
from lifecycle_fixtures import STEP, start, template


@pytest.fixture
def executor(tmp_path):
    return LocalExecutor(tmp_path / "runs", (tmp_path / "store").as_uri(),
                         entry_points={"harness": [sys.executable, "-c", STEP]})


@pytest.mark.parametrize("strategy", ["Stop", "Terminate"])
def test_stop_and_terminate_end_every_step_and_keep_last_pt(executor, tmp_path, strategy):
    run, thread = start(executor, tmp_path)
    getattr(run, strategy.lower())()
    thread.join(60)
    status = run.status()
    assert status.phase == Phase.FAILED
    assert status.message == f"Stopped with strategy '{strategy}'"
    assert {s.name: s.phase for s in status.steps} == {"prep": Phase.SUCCEEDED, "train": Phase.FAILED}
    assert all(s.finished_at for s in status.steps)
    assert "SIGTERM: wrote last.pt" in run.logs("train")  # the grace period let the harness save
    assert int((tmp_path / "out" / "last.pt").read_text()) >= 3
    raw = json.loads((run.dir / "status.json").read_text())
    assert raw["nodes"]["train"]["message"] == f"Stopped with strategy '{strategy}'"
    with pytest.raises(ConflictError, match="already ended"):
        run.terminate()


def test_retry_after_terminate_resumes_from_last_pt_and_keeps_succeeded_steps(executor, tmp_path, monkeypatch):
    run, thread = start(executor, tmp_path)
    run.terminate()
    thread.join(60)
    saved = int((tmp_path / "out" / "last.pt").read_text())
    monkeypatch.setenv("STEPS", str(saved + 2))
    run.retry(detach=False)
    status = run.status()
    assert status.phase == Phase.SUCCEEDED, status.message
    assert status.message == ""
    assert f"resuming from checkpoints/last.pt at step {saved}" in run.logs("train")
    assert (tmp_path / "out" / "prep.attempts").read_text() == "x"  # the succeeded step did not run again
    assert (tmp_path / "out" / "train.attempts").read_text() == "xx"


def test_retry_refuses_a_running_or_succeeded_run(executor, tmp_path, monkeypatch):
    run, thread = start(executor, tmp_path)
    with pytest.raises(ConflictError, match="still Running"):
        run.retry()
    run.terminate()
    thread.join(60)
    monkeypatch.setenv("STEPS", "1")
    run.retry(detach=False)
    with pytest.raises(ConflictError, match="only a Failed or Error run"):
        run.retry()


def test_resubmit_makes_a_new_run_with_the_same_parameters(tmp_path, monkeypatch):
    backend = LocalBackend(tmp_path / "home", (tmp_path / "store").as_uri())
    old_dir = backend.executor.create(render(template()), {"out": "x"}, "old-run", {"team": "a"},
                                      (tmp_path / "store").as_uri() + "/outputs/old-run/")
    monkeypatch.setattr(backend.executor, "start", lambda run_dir: 0)  # recorded, not executed
    new = backend.resubmit(LocalRun(old_dir))
    assert new.name != "old-run" and new.name.startswith("lifecycle-")
    assert new.workflow["parameters"] == {"out": "x"}
    assert new.workflow["labels"] == {"team": "a"}
    assert new.workflow["outputPrefix"].endswith(f"/outputs/{new.name}/")


def test_delete_keeps_outputs_unless_asked(tmp_path):
    store_uri = (tmp_path / "store").as_uri()
    backend = LocalBackend(tmp_path / "home", store_uri)
    store = backend.executor.store
    for name in ("keep", "drop"):
        store.put_bytes(b"w", f"outputs/{name}/model/model.pt")
        run_dir = backend.executor.create(render(template()), {"out": "x"}, name, {}, f"{store_uri}/outputs/{name}/")
        backend.executor._save(run_dir, json.loads((run_dir / "workflow.json").read_text()),
                               {"phase": "Failed", "nodes": {}, "finishedAt": "2020-01-01T00:00:00Z"})
    assert backend.run("keep").delete() == 0
    assert store.exists("outputs/keep/model/model.pt")
    assert backend.run("drop").delete(outputs=True) == 1
    assert not store.exists("outputs/drop/model/model.pt")
    assert backend.runs() == [] and not (tmp_path / "home" / "runs" / "keep").exists()


def test_index_lists_runs_and_repairs_itself(tmp_path):
    backend = LocalBackend(tmp_path / "home", (tmp_path / "store").as_uri())
    for name in ("a-1", "b-2"):
        backend.executor.create(render(template()), {}, name, {"team": name[0]})
    assert [s.name for s in backend.statuses({"team": "b"})] == ["b-2"]
    index = RunIndex(backend.runs_dir)
    index.path.unlink()  # lost: rebuilt from the folders
    assert sorted(r["name"] for r in index.rows()) == ["a-1", "b-2"]
    index.update({"name": "gone", "template": "t"}, {"phase": "Succeeded"})  # a folder removed by hand
    assert "gone" not in {r["name"] for r in index.rows()}


def test_prune_removes_old_finished_runs_only(tmp_path):
    backend = LocalBackend(tmp_path / "home", (tmp_path / "store").as_uri())
    for name, phase, finished in (("old", "Succeeded", "2020-01-01T00:00:00Z"), ("new", "Failed", None),
                                  ("going", "Pending", None)):
        run_dir = backend.executor.create(render(template()), {}, name)
        backend.executor._save(run_dir, json.loads((run_dir / "workflow.json").read_text()),
                               {"phase": phase, "nodes": {}, "finishedAt": finished or time.strftime(
                                   "%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    assert backend.prune(86400, dry_run=True) == ["old"]
    assert (backend.runs_dir / "old").exists()
    assert backend.prune(86400) == ["old"]
    assert sorted(s.name for s in backend.statuses()) == ["going", "new"]
