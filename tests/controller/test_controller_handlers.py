"""The operator's handlers, called as plain functions the way kopf calls them, against an in-memory cluster."""
from __future__ import annotations

import kopf
import pytest

from controller_fixtures import (
    STORE,
    FakeCluster,
    RecordedDump,
    argo_status,
    call,
    event_lines,
    make_deps,
    mirror,
    training_run,
)
from cvatflow.controller import handlers
from cvatflow.errors import CvatError


def parameters(workflow):
    return {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}


def test_create_dumps_the_task_and_submits_one_workflow_owned_by_the_run():
    deps = make_deps()
    body = training_run(nodePool="A100")
    status = call(handlers.reconcile, body, deps)

    workflow = deps.cluster.workflows["ml", "r1"]
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "detr-training"}
    values = parameters(workflow)
    assert values["cvat-annotation-path"] == "annotations/7/01022026120000/"
    assert values["cvat-num-classes"] == "3"
    assert values["epochs"] == "3" and values["cvat-model"] == "detr_small"
    assert values["sys-node-pool"] == "p4d.24xlarge"
    labels = workflow["metadata"]["labels"]
    assert labels["cvatflow.io/trainingrun"] == "r1"
    assert labels["cvatflow.io/cvat-task-id"] == "7"
    assert labels["workflows.argoproj.io/workflow-template"] == "detr-training"
    assert workflow["metadata"]["ownerReferences"] == [{
        "apiVersion": "cvatflow.io/v1alpha1", "kind": "TrainingRun", "name": "r1", "uid": "uid-r1",
        "controller": True, "blockOwnerDeletion": True}]
    assert deps.dump.calls == [{"url": "http://cvat.local:8080", "task": 7, "format": "cvat_coco", "store": STORE,
                                "token": "s3cr3t-token"}]

    assert status["phase"] == "Submitted"
    assert status["workflowName"] == "r1"
    assert status["annotationPath"] == "annotations/7/01022026120000/"
    assert status["taskLabels"] == ["car", "person", "bike"]
    assert status["outputs"]["model"] == f"{STORE}/outputs/task-7/r1/model/"
    assert status["outputs"]["checkpoints"] == f"{STORE}/outputs/task-7/r1/checkpoints/"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Valid": "True", "Submitted": "True"}


def test_workflows_run_as_the_configured_service_account():
    deps = make_deps()
    deps.settings.workflow_service_account = "cvatflow-workflow"
    call(handlers.reconcile, training_run(), deps)
    assert deps.cluster.workflows["ml", "r1"]["spec"]["serviceAccountName"] == "cvatflow-workflow"


def test_create_twice_makes_one_workflow_and_one_dump():
    deps = make_deps()
    body = training_run()
    call(handlers.reconcile, dict(body), deps)  # kopf saw no status echo yet: the same body again
    call(handlers.reconcile, training_run(), deps)
    status = call(handlers.reconcile, body, deps)  # and once more with its status applied
    assert deps.cluster.creates == 1
    assert len(deps.dump.calls) == 1
    assert status["workflowName"] == "r1"


def test_a_recorded_dump_is_reused_after_a_failed_attempt():
    deps = make_deps(dump=RecordedDump(fail=CvatError("CVAT answered 503")))
    body = training_run()
    with pytest.raises(kopf.TemporaryError):
        call(handlers.reconcile, body, deps)
    assert body["status"]["phase"] == "Pending" and "503" in body["status"]["message"]
    assert deps.cluster.creates == 0

    deps.dump.fail = None
    call(handlers.reconcile, body, deps)
    body["status"].pop("workflowName")  # pretend the operator restarted before recording the submission
    deps.cluster.workflows.clear()
    call(handlers.reconcile, body, deps)
    assert len(deps.dump.calls) == 2  # the failed one and one success, never a second export
    assert parameters(deps.cluster.workflows["ml", "r1"])["cvat-annotation-path"] == body["status"]["annotationPath"]


def test_invalid_parameters_end_invalid_with_every_problem_and_nothing_submitted():
    events = []
    deps = make_deps(events=events)
    body = training_run(parameters={"epochs": "many", "cvat-model": "yolo", "learning-rate": "0.1"})
    status = call(handlers.reconcile, body, deps)

    assert status["phase"] == "Invalid"
    paths = {p["path"] for p in status["problems"]}
    assert paths == {"epochs", "cvat-model", "learning-rate"}
    assert "Epochs must be a number, not 'many'" in status["message"]
    assert "'yolo' is not an option of Model" in status["message"]
    assert "has no parameter 'learning-rate'" in status["message"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Valid": "False"}
    assert deps.cluster.creates == 0 and deps.dump.calls == []  # refused before any export
    assert events and events[0][1:3] == ("Warning", "Invalid")

    # A resumed operator leaves the verdict alone; fixing the spec is what re-judges it.
    call(handlers.reconcile, body, deps)
    assert deps.cluster.creates == 0
    body["spec"]["parameters"] = {"epochs": "5"}
    body["metadata"]["generation"] = 2
    status = call(handlers.spec_changed, body, deps)
    assert status["phase"] == "Submitted" and status["problems"] == [] and deps.cluster.creates == 1


@pytest.mark.parametrize("spec, path, words", [
    ({"template": "no-such-template"}, "spec.template.name", "kubectl apply -f workflow_templates/"),
    ({"nodePool": "TPU"}, "sys-node-pool", "node pool 'TPU' is not configured"),
    ({"parameters": {"cvat-finetune-checkpoint": "outputs/nothing-here/"}}, "cvat-finetune-checkpoint",
     "Checkpoint path does not exist in object storage."),
    ({"parameters": {"cvat-annotation-path": "annotations/x/"}}, "spec.parameters.cvat-annotation-path",
     "filled by the operator"),
    ({"source": {"dataset": "s3://another-bucket/annotations/7/x/"}}, "spec.source.dataset",
     "is not in the configured store"),
    ({"source": {"dataset": "annotations/7/x/"}, "parameters": {}}, "spec.parameters.cvat-num-classes",
     "does not say how many classes"),
    ({"template": {"name": "detr-training", "version": "2"}}, "spec.template.version", "carries no version label"),
])
def test_each_kind_of_bad_spec_is_named(spec, path, words):
    deps = make_deps()
    body = training_run()
    if isinstance(spec.get("template"), str):
        spec["template"] = {"name": spec["template"]}
    body["spec"].update(spec)
    status = call(handlers.reconcile, body, deps)
    assert status["phase"] == "Invalid"
    assert any(p["path"] == path and words in f"{p['message']} {p['fix']}" for p in status["problems"]), status
    assert deps.cluster.creates == 0


def test_a_dataset_source_in_the_store_trains_without_a_dump():
    deps = make_deps()
    body = training_run(source={"dataset": f"{STORE}/datasets/coco-cars/"},
                        parameters={"cvat-num-classes": "2"}, outputPrefix="outputs/team-a")
    status = call(handlers.reconcile, body, deps)
    values = parameters(deps.cluster.workflows["ml", "r1"])
    assert values["cvat-annotation-path"] == "datasets/coco-cars/"
    assert values["cvat-output-path"] == "outputs/team-a"
    assert status["outputs"]["report"] == f"{STORE}/outputs/team-a/r1/report/"
    assert deps.dump.calls == []


def test_a_dataset_source_without_a_class_count_gets_the_count_of_its_coco_categories():
    deps = make_deps()
    body = training_run(source={"dataset": f"{STORE}/datasets/coco-cars/"}, parameters={})
    status = call(handlers.reconcile, body, deps)
    assert status["phase"] == "Submitted", status
    assert parameters(deps.cluster.workflows["ml", "r1"])["cvat-num-classes"] == "2"


def test_a_spec_change_after_submission_is_refused_with_a_condition():
    events = []
    deps = make_deps(events=events)
    body = training_run()
    call(handlers.reconcile, body, deps)
    body["spec"]["parameters"]["epochs"] = "100"
    status = call(handlers.spec_changed, body, deps)
    refused = next(c for c in status["conditions"] if c["type"] == "SpecChangeRefused")
    assert refused["status"] == "True" and "Create a new TrainingRun" in refused["message"]
    assert parameters(deps.cluster.workflows["ml", "r1"])["epochs"] == "3"
    assert deps.cluster.creates == 1
    assert ("r1", "Warning", "SpecChangeRefused") == events[-1][:3]


def test_workflow_state_logs_and_outputs_flow_into_the_run_status():
    events = []
    cluster = FakeCluster()
    deps = make_deps(cluster=cluster, events=events)
    body = training_run()
    call(handlers.reconcile, body, deps)
    cluster.runs["ml", "r1"] = body
    workflow = cluster.workflows["ml", "r1"]
    memo = kopf.Memo(deps=deps)

    workflow["status"] = argo_status("Running", train_phase="Running")
    cluster.logs["ml", "r1-train-2222"] = event_lines(epoch=1, step=100, total=400, mAP=0.25)
    mirror(deps, workflow, memo)
    status = cluster.runs["ml", "r1"]["status"]
    assert status["phase"] == "Running" and status["progress"] == "1/2"
    assert [(s["name"], s["phase"]) for s in status["steps"]] == [("prepare-dataset", "Succeeded"),
                                                                   ("train", "Running")]
    assert status["metrics"]["mAP"] == 0.25 and status["metrics"]["progress"] == 0.25
    assert status["metrics"]["train"] == {"loss": 1.0}

    cluster.logs["ml", "r1-train-2222"] += event_lines(epoch=2, step=400, total=400, mAP=0.5, loss=0.2)
    workflow["status"] = argo_status("Succeeded", train_phase="Succeeded", progress="2/2", finished=True)
    mirror(deps, workflow, memo)
    status = cluster.runs["ml", "r1"]["status"]
    assert status["phase"] == "Succeeded" and status["finishedAt"] == "2026-01-02T13:00:00Z"
    assert status["metrics"]["mAP"] == 0.5 and status["metrics"]["epoch"] == 2
    assert status["outputs"]["model"] == f"{STORE}/outputs/task-7/r1/model/"
    assert any(c["type"] == "Completed" and c["reason"] == "Succeeded" for c in status["conditions"])
    assert [e[1:3] for e in events] == [("Normal", "Submitted"), ("Normal", "Running"), ("Normal", "Succeeded")]

    # Pods garbage-collected after the run: the metrics already recorded stay.
    cluster.logs.clear()
    mirror(deps, workflow)
    assert cluster.runs["ml", "r1"]["status"]["metrics"]["mAP"] == 0.5


def test_running_metrics_are_refreshed_by_the_timer():
    cluster = FakeCluster()
    deps = make_deps(cluster=cluster)
    body = training_run()
    call(handlers.reconcile, body, deps)
    cluster.workflows["ml", "r1"]["status"] = argo_status("Running", train_phase="Running")
    cluster.logs["ml", "r1-train-2222"] = event_lines(epoch=3, step=300, total=400, mAP=0.4)
    status = call(handlers.refresh_metrics, body, deps)
    assert status["metrics"]["epoch"] == 3 and status["metrics"]["mAP"] == 0.4


def test_a_workflow_deleted_mid_run_ends_the_run_in_error():
    cluster = FakeCluster()
    deps = make_deps(cluster=cluster)
    body = training_run()
    call(handlers.reconcile, body, deps)
    cluster.runs["ml", "r1"] = body
    workflow = cluster.workflows.pop(("ml", "r1"))
    mirror(deps, workflow, type_="DELETED")
    status = cluster.runs["ml", "r1"]["status"]
    assert status["phase"] == "Error" and "was deleted before it finished" in status["message"]


def test_deleting_the_run_deletes_its_workflow():
    cluster = FakeCluster()
    deps = make_deps(cluster=cluster)
    body = training_run()
    call(handlers.reconcile, body, deps)
    call(handlers.delete_workflow, body, deps)
    assert cluster.deletes == ["r1"] and not cluster.workflows


def test_a_foreign_workflow_of_the_same_name_is_never_adopted():
    cluster = FakeCluster()
    deps = make_deps(cluster=cluster)
    stranger = training_run(name="r1")
    stranger["metadata"]["uid"] = "uid-of-a-deleted-run"
    call(handlers.reconcile, stranger, deps)
    with pytest.raises(kopf.TemporaryError, match="belongs to another object"):
        call(handlers.reconcile, training_run(), deps)
    assert cluster.creates == 1
