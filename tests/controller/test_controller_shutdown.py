"""The operator: a TrainingRun's spec.shutdown reaches its Workflow; deleting a run terminates its Workflow first."""
from __future__ import annotations

from controller_fixtures import FakeCluster, call, make_deps, training_run
from cvatflow.controller import handlers


def test_spec_shutdown_is_set_on_the_workflow_and_is_no_refused_spec_change():
    events = []
    deps = make_deps(events=events)
    body = training_run()
    call(handlers.reconcile, body, deps)
    body["spec"]["shutdown"] = "Stop"
    status = call(handlers.spec_changed, body, deps, diff=[("add", ("shutdown",), None, "Stop")])
    assert not any(c["type"] == "SpecChangeRefused" for c in status.get("conditions") or [])
    call(handlers.shutdown_changed, body, deps, new="Stop")
    assert deps.cluster.workflows["ml", "r1"]["spec"]["shutdown"] == "Stop"
    assert ("r1", "Normal", "Shutdown") == events[-1][:3]


def test_deleting_the_run_terminates_then_deletes_its_workflow():
    cluster = FakeCluster()
    deps = make_deps(cluster=cluster)
    body = training_run()
    call(handlers.reconcile, body, deps)
    call(handlers.delete_workflow, body, deps)
    assert cluster.shutdowns == [("r1", "Terminate")]
    assert cluster.deletes == ["r1"] and not cluster.workflows
