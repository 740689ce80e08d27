"""TrainingRuns the CRD schema lets through but the operator must not act on as asked."""
from __future__ import annotations

import pytest

from controller_fixtures import call, make_deps, training_run
from cvatflow.controller import handlers


@pytest.mark.parametrize("url", ["http://attacker.example", "https://cvat.local:8080", "http://cvat.local:8081"])
def test_another_cvat_server_never_gets_the_operators_own_token(monkeypatch, url):
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "operator-token")
    deps = make_deps()
    status = call(handlers.reconcile, training_run(source={"cvatTask": {"id": 7, "url": url}}), deps)
    assert status["phase"] == "Invalid" and deps.dump.calls == [] and deps.cluster.creates == 0
    [problem] = [p for p in status["problems"] if p["path"] == "spec.source.cvatTask.url"]
    assert "credentialsSecret" in problem["fix"] and "operator-token" not in str(status)


@pytest.mark.parametrize("source", [
    {"cvatTask": {"id": 7, "url": "HTTP://CVAT.local:8080/"}},  # the configured server, written differently
    {"cvatTask": {"id": 7}},
    {"cvatTask": {"id": 7, "url": "http://other.example", "credentialsSecret": {"name": "cvat-credentials"}}},
])
def test_the_configured_server_or_a_run_with_its_own_secret_is_dumped(monkeypatch, source):
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "operator-token")
    deps = make_deps()
    status = call(handlers.reconcile, training_run(source=source), deps)
    assert status["phase"] == "Submitted", status.get("problems")
    assert len(deps.dump.calls) == 1
