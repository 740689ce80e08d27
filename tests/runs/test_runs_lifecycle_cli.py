"""`cvatflow runs stop|terminate|retry|resubmit|delete|prune` and `runs list` on local runs."""
from __future__ import annotations

import json

import pytest

from cvatflow.local import LocalExecutor
from cvatflow.templates import Template, render


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CVATFLOW_BACKEND", "local")
    monkeypatch.setenv("CVATFLOW_STORE", (tmp_path / "store").as_uri())
    return tmp_path / "home"


def make_run(home, name, phase="Failed", finished="2020-01-01T00:00:00Z"):
    executor = LocalExecutor(home / "runs", "file:///unused")
    spec = {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "x", "command": ["x"]}}]}
    run_dir = executor.create(render(Template("tpl", [], spec)), {"epochs": "2"}, name, {"team": "a"})
    workflow = json.loads((run_dir / "workflow.json").read_text())
    executor._save(run_dir, workflow, {"phase": phase, "nodes": {}, "finishedAt": finished, "message": "m"})
    return run_dir


def test_list_reads_the_index(cli, home):
    make_run(home, "one")
    make_run(home, "two", phase="Succeeded")
    result = cli("runs", "list", "--json", "--local")
    assert result.code == 0, result.err
    assert {r["name"]: r["phase"] for r in json.loads(result.out)} == {"one": "Failed", "two": "Succeeded"}
    result = cli("runs", "list", "--json", "--local", "--phase", "Failed")
    assert [r["name"] for r in json.loads(result.out)] == ["one"]


def test_delete_needs_yes_and_keeps_the_run_without_it(cli, home):
    run_dir = make_run(home, "one")
    result = cli("runs", "delete", "one", "--local")
    assert result.code != 0 and "--yes" in result.out + result.err
    assert run_dir.exists()
    result = cli("runs", "delete", "one", "--yes", "--local")
    assert result.code == 0, result.out + result.err
    assert not run_dir.exists()
    assert json.loads(cli("runs", "list", "--json", "--local").out) == []


def test_terminate_a_finished_run_is_one_clear_error(cli, home):
    make_run(home, "one")
    result = cli("runs", "terminate", "one", "--local")
    assert result.code != 0
    assert "already ended" in result.out + result.err and "Traceback" not in result.out + result.err


def test_prune_dry_run_then_prune(cli, home):
    make_run(home, "old")
    result = cli("runs", "prune", "--older-than", "30d", "--dry-run")
    assert result.code == 0 and "would remove old" in result.out
    assert (home / "runs" / "old").exists()
    result = cli("runs", "prune", "--older-than", "30d")
    assert "removed old" in result.out and not (home / "runs" / "old").exists()
    assert cli("runs", "prune", "--older-than", "soon").code != 0
