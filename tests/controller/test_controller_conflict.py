"""A Workflow create that meets a taken name gets 409 from the API server; the operator adopts its own Workflow and
never someone else's. The fake cluster answers 409 as the API server does, so the real handling runs."""
from __future__ import annotations

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from controller_fixtures import FakeCluster, call, make_deps, training_run
from cvatflow.controller import handlers


def test_the_fake_cluster_refuses_a_taken_name_with_409_like_the_api_server():
    cluster = FakeCluster()
    body = {"metadata": {"name": "w", "namespace": "ml"}, "spec": {"n": 1}}
    cluster.custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", "ml", "workflows", body)
    with pytest.raises(ApiException) as caught:
        cluster.custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", "ml", "workflows",
                                                       {**body, "spec": {"n": 2}})
    assert caught.value.status == 409
    assert cluster.workflows["ml", "w"]["spec"] == {"n": 1} and (cluster.creates, cluster.conflicts) == (1, 1)


def test_a_retried_create_returns_the_workflow_already_there():
    cluster = FakeCluster()
    body = {"metadata": {"name": "w", "namespace": "ml"}, "spec": {"n": 1}}
    assert cluster.create_workflow(body)["spec"] == {"n": 1}
    again = cluster.create_workflow({**body, "spec": {"n": 2}})
    assert again["spec"] == {"n": 1}  # read back, not the body it sent
    assert (cluster.creates, cluster.conflicts) == (1, 1)


class RacingCluster(FakeCluster):
    """Another operator replica creates this run's Workflow between our look-up and our create."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    def workflow(self, namespace, name):
        if not self.raced:
            self.raced = True
            found = super().workflow(namespace, name)
            replica = make_deps(cluster=FakeCluster())  # the other replica's whole submission
            call(handlers.reconcile, training_run(), replica)
            self.workflows[namespace, name] = replica.cluster.workflows[namespace, name]
            return found
        return super().workflow(namespace, name)


def test_a_run_whose_workflow_another_replica_just_created_adopts_it_after_the_409():
    cluster = RacingCluster()
    deps = make_deps(cluster=cluster)
    status = call(handlers.reconcile, training_run(), deps)
    assert cluster.raced and cluster.conflicts == 1 and cluster.creates == 0
    assert status["phase"] == "Submitted" and status["workflowName"] == "r1"


def test_a_stranger_s_workflow_under_the_run_s_name_is_never_adopted():
    cluster = FakeCluster()
    stranger = make_deps(cluster=cluster)
    earlier = training_run()
    earlier["metadata"]["uid"] = "uid-of-a-deleted-run"
    call(handlers.reconcile, earlier, stranger)
    deps = make_deps(cluster=cluster)
    with pytest.raises(kopf.TemporaryError, match="belongs to another object"):
        call(handlers.reconcile, training_run(), deps)
    assert cluster.conflicts == 1 and cluster.creates == 1


@pytest.mark.parametrize("status", [403, 422, 500])
def test_any_other_refusal_of_the_create_is_raised_not_taken_for_a_conflict(status, monkeypatch):
    """403 (RBAC), 422 (invalid) and 500 are not "already there": kopf must see them and retry or report."""
    from controller_fixtures import FakeCustomObjects

    def refuse(self, *args, **kwargs):
        raise ApiException(status=status, reason="Refused")

    monkeypatch.setattr(FakeCustomObjects, "create_namespaced_custom_object", refuse)
    with pytest.raises(ApiException) as caught:
        FakeCluster().create_workflow({"metadata": {"name": "w", "namespace": "ml"}})
    assert caught.value.status == status
