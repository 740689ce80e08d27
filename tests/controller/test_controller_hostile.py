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
    {"cvatTask": {"id": 7, "url": "http://cvat.local:8080", "credentialsSecret": {"name": "cvat-credentials"}}},
    # another server, with a Secret whose owner wrote that its token is for that server
    {"cvatTask": {"id": 7, "url": "http://other.example/", "credentialsSecret": {"name": "other-cvat"}}},
])
def test_the_configured_server_or_a_secret_made_for_the_server_is_dumped(monkeypatch, source):
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "operator-token")
    deps = make_deps()
    deps.cluster.secrets["ml", "other-cvat", "token"] = "other-token"
    deps.cluster.secrets["ml", "other-cvat", "url"] = "http://other.example"
    status = call(handlers.reconcile, training_run(source=source), deps)
    assert status["phase"] == "Submitted", status.get("problems")
    assert len(deps.dump.calls) == 1


@pytest.mark.parametrize("secret, words", [
    ("cvat-credentials", "does not say its token is for http://attacker.example"),  # made for the operator's CVAT
    ("aws", "does not say its token is for"),  # any Secret's key would do as a "token"
    ("other-cvat", "holds a token for http://other.example, not for http://attacker.example"),
])
def test_no_secret_is_sent_to_a_server_it_was_not_made_for(monkeypatch, secret, words):
    monkeypatch.delenv("CVAT_ACCESS_TOKEN", raising=False)
    deps = make_deps()
    deps.cluster.secrets["ml", "aws", "secretkey"] = "aws-secret"
    deps.cluster.secrets["ml", "other-cvat", "token"] = "other-token"
    deps.cluster.secrets["ml", "other-cvat", "url"] = "http://other.example"
    source = {"cvatTask": {"id": 7, "url": "http://attacker.example",
                           "credentialsSecret": {"name": secret, "key": "secretkey" if secret == "aws" else "token"}}}
    status = call(handlers.reconcile, training_run(source=source), deps)
    assert status["phase"] == "Invalid" and deps.dump.calls == [] and deps.cluster.creates == 0
    [problem] = [p for p in status["problems"] if p["path"] == "spec.source.cvatTask.url"]
    assert words in problem["message"] and "--from-literal=url=http://attacker.example" in problem["fix"]


def test_a_name_longer_than_a_label_value_is_invalid_before_any_dump():
    deps = make_deps()
    name = "r" * 64  # Kubernetes accepts up to 253 for a custom resource; the Workflow's label would not
    status = call(handlers.reconcile, training_run(name=name), deps)
    assert status["phase"] == "Invalid" and deps.dump.calls == [] and deps.cluster.creates == 0
    assert any(p["path"] == "metadata.name" and "at most 63" in p["fix"] for p in status["problems"])
    assert call(handlers.reconcile, training_run(name="r" * 63), make_deps())["phase"] == "Submitted"


@pytest.mark.parametrize("parameters, path", [
    ({"sys-annotation-path": "annotations/other/"}, "spec.parameters.sys-annotation-path"),  # a legacy alias
    ({"sys-output-path": "elsewhere/"}, "spec.parameters.sys-output-path"),
    ({"cvat-num-classes": "99"}, "spec.parameters.cvat-num-classes"),  # a task's count comes from its labels
    ({"sys-num-classes": "99"}, "spec.parameters.sys-num-classes"),
])
def test_a_value_the_operator_fills_is_refused_under_any_name_not_replaced_silently(parameters, path):
    deps = make_deps()
    status = call(handlers.reconcile, training_run(parameters={"epochs": "3", **parameters}), deps)
    assert status["phase"] == "Invalid" and deps.dump.calls == []
    assert any(p["path"] == path and "filled by the operator" in p["message"] for p in status["problems"])


def test_node_pool_given_twice_with_two_values_is_refused():
    deps = make_deps()
    body = training_run(nodePool="A100", parameters={"epochs": "3", "sys-node-pool": "g4dn.xlarge"})
    status = call(handlers.reconcile, body, deps)
    assert status["phase"] == "Invalid"
    assert any(p["path"] == "spec.nodePool" and "set it in one place" in p["fix"] for p in status["problems"])
    same = training_run(nodePool="A100", parameters={"epochs": "3", "sys-node-pool": "A100"})
    assert call(handlers.reconcile, same, make_deps())["phase"] == "Submitted"


@pytest.mark.parametrize("strategy", ["Stop", "Terminate"])
def test_a_run_created_already_stopped_dumps_and_submits_nothing(strategy):
    deps = make_deps()
    status = call(handlers.reconcile, training_run(shutdown=strategy), deps)
    assert status["phase"] == "Failed" and f"spec.shutdown is {strategy}" in status["message"]
    assert deps.dump.calls == [] and deps.cluster.creates == 0
