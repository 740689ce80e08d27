"""Stop, terminate, retry, resubmit and delete on the kubernetes backend, with kmock playing the Argo controller."""
from __future__ import annotations

import asyncio

import pytest

from cvatflow.errors import ConflictError
from cvatflow.params import CvatTask, autofill
from cvatflow.runs.workflow_run import RESUBMITTED_FROM
from cvatflow.templates import get_template
from kmock_argo import WORKFLOWS, backend_for, patch_status, setup_cluster

pytestmark = pytest.mark.asyncio
FAILED = {"phase": "Failed", "finishedAt": "2026-11-22T02:00:00Z", "message": "Stopped with strategy 'Terminate'",
          "nodes": {"r": {"id": "r", "type": "DAG", "phase": "Failed", "displayName": "r",
                          "children": ["r-1", "r-2"]},
                    "r-1": {"id": "r-1", "type": "Pod", "phase": "Succeeded", "displayName": "prepare-dataset",
                            "templateName": "prepare-dataset"},
                    "r-2": {"id": "r-2", "type": "Pod", "phase": "Failed", "displayName": "train",
                            "templateName": "train", "message": "Stopped with strategy 'Terminate'"}}}


async def submitted(kmock, name="r"):
    setup_cluster(kmock)
    backend = backend_for(kmock)
    filled = autofill(get_template("maskrcnn-training"), {"epochs": "3"}, task=CvatTask(id=1, labels=["a"]),
                      annotation_path="annotations/1/x/")
    run = await asyncio.to_thread(backend.submit, filled, name, f"s3://b/outputs/task-1/{name}/")
    return backend, run


@pytest.mark.parametrize("strategy", ["Stop", "Terminate"])
async def test_stop_and_terminate_patch_spec_shutdown(kmock, strategy):
    _backend, run = await submitted(kmock)
    await asyncio.to_thread(patch_status, kmock, "r", {"phase": "Running"})
    await asyncio.to_thread(getattr(run, strategy.lower()))
    assert kmock.objects[WORKFLOWS, "ml", "r"]["spec"]["shutdown"] == strategy
    assert kmock.objects[WORKFLOWS, "ml", "r"]["spec"]["workflowTemplateRef"] == {"name": "maskrcnn-training"}
    await asyncio.to_thread(patch_status, kmock, "r", FAILED)
    with pytest.raises(ConflictError, match="already ended"):
        await asyncio.to_thread(run.terminate)


async def test_retry_resets_failed_nodes_and_the_phase_as_argo_does(kmock):
    backend, run = await submitted(kmock)
    await asyncio.to_thread(backend.shutdown, "r", "Terminate")
    with pytest.raises(ConflictError, match="only a Failed or Error run"):
        await asyncio.to_thread(run.retry)
    await asyncio.to_thread(patch_status, kmock, "r", FAILED)
    await asyncio.to_thread(run.retry)
    workflow = kmock.objects[WORKFLOWS, "ml", "r"]
    assert "shutdown" not in workflow["spec"]
    status = workflow["status"]
    assert status["phase"] == "Running" and "finishedAt" not in status and status["message"] == ""
    assert set(status["nodes"]) == {"r", "r-1"}  # the failed pod's node goes: the controller runs it again
    assert status["nodes"]["r"]["phase"] == "Running" and status["nodes"]["r"]["children"] == ["r-1"]
    assert status["nodes"]["r-1"]["phase"] == "Succeeded"


async def test_resubmit_creates_a_new_workflow_with_the_same_parameters(kmock):
    backend, run = await submitted(kmock)
    await asyncio.to_thread(patch_status, kmock, "r", FAILED)
    new = await asyncio.to_thread(backend.resubmit, run, "r-again")
    old, fresh = kmock.objects[WORKFLOWS, "ml", "r"], kmock.objects[WORKFLOWS, "ml", "r-again"]
    assert new.name == "r-again"
    assert fresh["spec"]["arguments"] == old["spec"]["arguments"]
    assert fresh["metadata"]["labels"][RESUBMITTED_FROM] == "r"
    assert fresh["metadata"]["labels"]["cvatflow.io/cvat-task-id"] == "1"
    assert not fresh.get("status")
    assert new.output_prefix() == "s3://b/outputs/task-1/r-again/"


async def test_delete_removes_the_workflow(kmock):
    _backend, run = await submitted(kmock)
    await asyncio.to_thread(run.delete)
    assert (WORKFLOWS, "ml", "r") not in kmock.objects
