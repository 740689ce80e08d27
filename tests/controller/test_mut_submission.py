"""The operator's submission where the handler tests do not look: the status it records (template, annotation path,
message, times, generations), the CVAT a task names, multi-node runs without JobSet, a template without a default
annotation path, the retry delays: kills cosmic-ray's mutants of controller/submit.py (`make mutation
TARGETS=submission`). Each test goes through the kopf handler, as kopf calls it.

Left alive: `nodes > 1` as `nodes != 1` (equivalent: templates.jobset.nodes_asked never answers below 1), and
`refs[0]` as `refs[-1]` in _owner_uid (the first TrainingRun owner of a Workflow, or the last: the operator writes
exactly one ownerReference, so they differ only on a Workflow someone else gave two TrainingRun owners, where
neither choice is more right than the other).
"""
from __future__ import annotations

import kopf
import pytest

from controller_fixtures import STORE, FakeCluster, call, make_deps, training_run
from cvatflow.controller import handlers


def parameters(workflow):
    return {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}


def test_the_status_names_the_template_the_workflow_refers_to():
    deps = make_deps()
    status = call(handlers.reconcile, training_run(), deps)
    assert status["template"] == "detr-training"


def test_a_dataset_run_records_the_annotation_path_it_was_submitted_with():
    """No dump, so nothing recorded before: the path comes from the Workflow's own parameters."""
    deps = make_deps()
    body = training_run(source={"dataset": f"{STORE}/datasets/coco-cars/"}, parameters={"cvat-num-classes": "2"})
    status = call(handlers.reconcile, body, deps)
    assert status["annotationPath"] == "datasets/coco-cars/"
    assert status["annotationPath"] == parameters(deps.cluster.workflows["ml", "r1"])["cvat-annotation-path"]


@pytest.mark.parametrize("generation", [1, 4])
def test_an_invalid_run_records_the_generation_it_judged(generation):
    deps = make_deps()
    body = training_run(parameters={"epochs": "many"})
    body["metadata"]["generation"] = generation
    status = call(handlers.reconcile, body, deps)
    assert status["phase"] == "Invalid" and status["observedGeneration"] == generation
    assert [c.get("observedGeneration") for c in status["conditions"]] == [generation]


def test_a_task_on_another_cvat_is_dumped_from_that_cvat():
    deps = make_deps()
    deps.cluster.secrets["ml", "cvat-credentials", "url"] = "http://cvat-b.local:8080"  # the token is for cvat-b
    body = training_run(source={"cvatTask": {"id": 9, "url": "http://cvat-b.local:8080",
                                             "credentialsSecret": {"name": "cvat-credentials"}}})
    call(handlers.reconcile, body, deps)
    assert [c["url"] for c in deps.dump.calls] == ["http://cvat-b.local:8080"]


@pytest.mark.parametrize("nodes, refused", [("1", False), ("2", True), ("3", True)])
def test_only_a_multi_node_run_needs_jobset(nodes, refused):
    cluster = FakeCluster()
    cluster.jobset = False
    deps = make_deps(cluster=cluster)
    status = call(handlers.reconcile, training_run(parameters={"epochs": "3", "nodes": nodes}), deps)
    if refused:
        assert status["phase"] == "Invalid" and deps.cluster.creates == 0 and deps.dump.calls == []
        assert [p["path"] for p in status["problems"]] == ["spec.parameters.nodes"]
        assert "JobSet" in status["problems"][0]["message"] + status["problems"][0]["fix"]
    else:
        assert status["phase"] == "Submitted" and deps.cluster.creates == 1


def test_a_cvat_that_does_not_answer_is_asked_again_after_a_minute():
    from controller_fixtures import RecordedDump
    from cvatflow.errors import CvatError

    deps = make_deps(dump=RecordedDump(fail=CvatError("CVAT answered 503")))
    with pytest.raises(kopf.TemporaryError) as caught:
        call(handlers.reconcile, training_run(), deps)
    assert caught.value.delay == 60


def test_a_name_taken_by_a_stranger_is_tried_again_after_ten_seconds():
    cluster = FakeCluster()
    stranger = training_run()
    stranger["metadata"]["uid"] = "uid-of-a-deleted-run"
    call(handlers.reconcile, stranger, make_deps(cluster=cluster))
    with pytest.raises(kopf.TemporaryError) as caught:
        call(handlers.reconcile, training_run(), make_deps(cluster=cluster))
    assert caught.value.delay == 10


def test_a_new_submission_says_so_and_when():
    from datetime import UTC, datetime, timedelta

    deps = make_deps()
    body = training_run()
    body["metadata"]["generation"] = 3
    status = call(handlers.reconcile, body, deps)
    assert status["message"] == "Workflow r1 submitted"  # a fresh Workflow has no message of its own yet
    submitted_at = datetime.fromisoformat(status["submittedAt"])
    assert abs(datetime.now(UTC) - submitted_at) < timedelta(hours=1)
    assert status["observedGeneration"] == 3
    assert {c["type"]: c.get("observedGeneration") for c in status["conditions"]} == {"Valid": 3, "Submitted": 3}


def test_a_run_without_a_source_is_told_to_name_one_not_to_fill_the_operator_s_parameters():
    """The annotation path is the operator's to fill: a missing source is the one problem, never a `required`
    complaint about a parameter the user must not set (a template whose path has no default shows the difference)."""
    import yaml

    from controller_fixtures import ROOT

    text = (ROOT / "workflow_templates" / "detr-training.yaml").read_text()
    assert text.count('"cvat-annotation-path", "value": "annotations/"') == 1
    text = text.replace('"cvat-annotation-path", "value": "annotations/"', '"cvat-annotation-path", "value": ""')
    without_default = yaml.safe_load(text)
    for parameter in without_default["spec"]["arguments"]["parameters"]:
        if parameter["name"] == "cvat-annotation-path":
            parameter["value"] = ""
    cluster = FakeCluster()
    cluster.templates["ml", "detr-training"] = without_default
    body = training_run(parameters={"epochs": "3", "cvat-num-classes": "2"})
    body["spec"]["source"] = {}
    status = call(handlers.reconcile, body, make_deps(cluster=cluster))
    assert status["phase"] == "Invalid"
    assert [p["path"] for p in status["problems"]] == ["spec.source"]

    # and with a source, that template submits
    body = training_run(parameters={"epochs": "3"})
    deps = make_deps(cluster=cluster)
    assert call(handlers.reconcile, body, deps)["phase"] == "Submitted"
    assert parameters(cluster.workflows["ml", "r1"])["cvat-annotation-path"] == "annotations/7/01022026120000/"
