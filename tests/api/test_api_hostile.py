"""Hostile requests a fresh QA pass found: each was accepted or crashed before its fix."""
from __future__ import annotations

import json

import pytest

from api_fixtures import client, served, settings_for
from cvatflow.api import create_app


@pytest.fixture
def api_with_a_run(tmp_path):
    """The API over a home holding one finished local run `abc` with a `train` log, and a *.log outside it."""
    home = tmp_path / "home"
    run = home / "runs" / "abc"
    (run / "logs").mkdir(parents=True)
    (run / "workflow.json").write_text(json.dumps({"name": "abc", "template": "maskrcnn-training"}))
    (run / "status.json").write_text(json.dumps({"phase": "Succeeded", "nodes": {"train": {"phase": "Succeeded"}}}))
    (run / "logs" / "train.log").write_text("epoch 1\n")
    (tmp_path / "secret.log").write_text("not for API clients\n")
    with served(create_app(settings_for(home))) as url:
        yield url


@pytest.mark.parametrize("step", ["../../../secret", "../logs/../../../secret", "..", "/etc/hostname"])
def test_a_log_step_never_reads_outside_the_run_logs(api_with_a_run, step):
    with client(api_with_a_run) as http:
        assert http.get("/api/v1/executions/abc/logs", params={"step": "train"}).text == "epoch 1\n"
        answer = http.get("/api/v1/executions/abc/logs", params={"step": step})
    assert answer.status_code == 404, answer.text
    assert "not for API clients" not in answer.text
    assert "no step" in answer.json()["message"]
