"""`cvatflow operator` starts kopf with the scope and probes it was given."""
from __future__ import annotations

import kopf


def test_operator_runs_kopf_on_the_given_namespaces(cli, monkeypatch):
    calls = []
    monkeypatch.setattr(kopf, "run", lambda **kwargs: calls.append(kwargs))
    result = cli("operator", "-n", "team-a", "-n", "team-b", "--standalone",
                 "--liveness", "http://0.0.0.0:8080/healthz")
    assert result.code == 0, result.err
    assert calls == [{"clusterwide": False, "namespaces": ["team-a", "team-b"], "standalone": True,
                      "liveness_endpoint": "http://0.0.0.0:8080/healthz"}]


def test_operator_watches_every_namespace_by_default(cli, monkeypatch):
    calls = []
    monkeypatch.setattr(kopf, "run", lambda **kwargs: calls.append(kwargs))
    assert cli("operator", "--all-namespaces").code == 0
    assert calls[0]["clusterwide"] is True and calls[0]["namespaces"] == []


def test_namespace_and_all_namespaces_exclude_each_other(cli):
    result = cli("operator", "-n", "a", "--all-namespaces")
    assert result.code == 1 and "exclude each other" in result.err
