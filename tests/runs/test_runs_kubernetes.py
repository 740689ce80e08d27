"""The Kubernetes backend against kmock: it creates the right Workflow, and status/wait follow Argo's status."""
from __future__ import annotations

import asyncio

import pytest

from cvatflow.params import CvatTask, autofill
from cvatflow.templates import get_template
from kmock_argo import WORKFLOWS, backend_for, patch_status, setup_cluster

pytestmark = pytest.mark.asyncio


async def test_templates_are_read_from_the_cluster(kmock):
    setup_cluster(kmock)
    backend = backend_for(kmock)
    templates = await asyncio.to_thread(backend.templates, {"used-by": "cvat"})
    assert [t.name for t in templates] == ["maskrcnn-training"]
    template = templates[0]
    assert template.parameter("cvat-model").type == "select.select"  # metadata survived kubectl apply


async def test_submit_creates_a_workflow_that_references_the_template(kmock):
    setup_cluster(kmock)
    backend = backend_for(kmock)
    template = await asyncio.to_thread(backend.get_template, "maskrcnn-training")
    filled = autofill(template, {"epochs": "3"}, task=CvatTask(id=42, labels=["a", "b"]),
                      annotation_path="annotations/42/11222026003000/")
    await asyncio.to_thread(backend.submit, filled, "maskrcnn-training-abcde", "s3://bucket/outputs/task-42/x/")
    workflow = kmock.objects[WORKFLOWS, "ml", "maskrcnn-training-abcde"]
    assert workflow["kind"] == "Workflow"
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "maskrcnn-training"}
    parameters = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert parameters["epochs"] == "3" and parameters["cvat-num-classes"] == "2"
    assert parameters["cvat-annotation-path"] == "annotations/42/11222026003000/"
    labels = workflow["metadata"]["labels"]
    assert labels["cvatflow.io/cvat-task-id"] == "42" and labels["cvat-job-id"] == "42"
    assert labels["workflows.argoproj.io/workflow-template"] == "maskrcnn-training"
    assert "spec" not in workflow or "templates" not in workflow["spec"]  # by reference, not a copy


async def test_status_and_wait_follow_the_argo_controller(kmock):
    setup_cluster(kmock)
    backend = backend_for(kmock)
    filled = autofill(get_template("maskrcnn-training"), task=CvatTask(id=1, labels=["a"]),
                      annotation_path="annotations/1/x/")
    run = await asyncio.to_thread(backend.submit, filled, "mrcnn-1", "s3://b/outputs/task-1/mrcnn-1/")
    assert (await asyncio.to_thread(run.status)).phase == "Pending"

    await asyncio.to_thread(patch_status, kmock, "mrcnn-1", {
        "phase": "Running", "progress": "1/2", "startedAt": "2026-11-22T01:00:00Z",
        "nodes": {"mrcnn-1": {"id": "mrcnn-1", "type": "DAG", "phase": "Running", "displayName": "mrcnn-1"},
                  "mrcnn-1-1": {"id": "mrcnn-1-1", "type": "Pod", "phase": "Succeeded",
                                "displayName": "prepare-dataset", "templateName": "prepare-dataset",
                                "startedAt": "2026-11-22T01:00:01Z"}}})
    status = await asyncio.to_thread(run.status)
    assert (status.phase, status.progress) == ("Running", "1/2")
    assert [(s.name, s.phase) for s in status.steps] == [("prepare-dataset", "Succeeded")]

    seen = []
    waiter = asyncio.create_task(asyncio.to_thread(run.wait, 30, 0.1, seen.append))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(patch_status, kmock, "mrcnn-1", {
        "phase": "Succeeded", "progress": "2/2", "finishedAt": "2026-11-22T02:00:00Z"})
    final = await waiter
    assert final.phase == "Succeeded" and final.finished_at == "2026-11-22T02:00:00Z"
    assert seen[0].phase == "Running" and seen[-1].phase == "Succeeded"
    assert run.outputs()["model"] == "s3://b/outputs/task-1/mrcnn-1/model/"


async def test_runs_are_listed_newest_first_with_their_labels(kmock):
    setup_cluster(kmock)
    backend = backend_for(kmock)
    template = get_template("maskrcnn-training")
    for i in (1, 2):
        filled = autofill(template, task=CvatTask(id=i, labels=["a"]), annotation_path=f"annotations/{i}/x/")
        await asyncio.to_thread(backend.submit, filled, f"run-{i}")
    runs = await asyncio.to_thread(backend.runs, {"cvatflow.io/cvat-task-id": "2"})
    assert [r.name for r in runs] == ["run-2"]


async def test_missing_template_is_a_clear_error(kmock):
    from cvatflow.errors import NotFoundError

    setup_cluster(kmock)
    backend = backend_for(kmock)
    with pytest.raises(NotFoundError, match="kubectl apply"):
        await asyncio.to_thread(backend.get_template, "yolo")


