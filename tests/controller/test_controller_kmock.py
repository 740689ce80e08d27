"""The operator running under kopf against kmock, an in-memory Kubernetes API: the whole life of a TrainingRun."""
from __future__ import annotations

import asyncio
import contextlib

import pytest
import requests
from kmock import Response

import kube_mock as mock
from controller_fixtures import (
    STORE,
    RecordedDump,
    argo_status,
    event_lines,
    make_deps,
    training_run,
    workflow_template,
)
from cvatflow.controller.cluster import URL_ENV, Cluster
from cvatflow.controller.deps import kopf_event

RUNS, WORKFLOWS = mock.RUNS, mock.WORKFLOWS
# kmock plus what a real API server does that kopf relies on (names from generateName, resourceVersions).
pytestmark = pytest.mark.kmock(cls=mock.versioned_emulator())
LOG_PATH = "/api/v1/namespaces/ml/pods/r1-train-2222/log"


def declare_cluster(kmock) -> None:
    mock.declare(kmock, "ml", templates=[workflow_template("detr-training")],
                 secrets={"cvat-credentials": {"token": "s3cr3t-token"}})


async def eventually(check, timeout: float = 20.0):
    """Poll `check()` until it returns something truthy without raising (the operator works concurrently)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (KeyError, AssertionError, TypeError):
            if asyncio.get_running_loop().time() > deadline:
                raise
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {check.__doc__ or check}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def operator(deps):
    """kopf's operator on this event loop, as `cvatflow operator --all-namespaces --standalone` runs it."""
    import kopf

    import cvatflow.controller.handlers  # noqa: F401  (registers the handlers)

    task = asyncio.create_task(kopf.operator(clusterwide=True, standalone=True, memo=kopf.Memo(deps=deps)))
    try:
        yield task
    finally:
        # Cancelled like a killed pod; a stop flag would also wait 5 s for kmock's open watch connections.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


def seed_run(kmock, run: dict) -> None:
    mock.add_run(kmock, run)


def status_of(kmock, name: str) -> dict:
    return dict(kmock.objects[RUNS, "ml", name].get("status") or {})


async def api(kmock, verb: str, resource: str, name: str, body: dict | None = None) -> None:
    """A kubectl-like request (off the event loop, which serves kmock)."""
    group_version, plural = resource.rsplit("/", 1)
    response = await asyncio.to_thread(
        getattr(requests, verb), f"{kmock.url}/apis/{group_version}/namespaces/ml/{plural}/{name}",
        json=body, headers={"Content-Type": "application/merge-patch+json"}, timeout=10)
    response.raise_for_status()


async def patch_workflow_status(kmock, status: dict) -> None:
    """Play Argo's controller: it writes the Workflow's status as the steps run."""
    await api(kmock, "patch", WORKFLOWS, "r1", {"status": status})


def posted_event_reasons(kmock) -> list[str]:
    """Reasons of the Events the API server stored, oldest first (not the requests: a refused one is no Event)."""
    return [event.get("reason") for event in mock.stored_events(kmock, "ml")]


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_training_run_from_creation_to_success_across_an_operator_restart(kmock, monkeypatch):
    declare_cluster(kmock)
    monkeypatch.setenv(URL_ENV, str(kmock.url))
    log = {"text": event_lines(epoch=1, step=100, total=400, mAP=0.25)}
    # The API server answers pod logs as text/plain (the client refuses other binary types).
    kmock["get " + LOG_PATH] << (lambda: Response(payload=log["text"].encode(),
                                                   headers={"Content-Type": "text/plain"}))
    run = training_run()
    seed_run(kmock, run)
    dump = RecordedDump()

    def fresh_deps():  # what a new operator process builds
        deps = make_deps(cluster=Cluster(), dump=dump)
        deps.post_event = kopf_event
        return deps

    async with operator(fresh_deps()):
        workflow = await eventually(lambda: dict(kmock.objects[WORKFLOWS, "ml", "r1"]))
        assert workflow["spec"]["workflowTemplateRef"] == {"name": "detr-training"}
        values = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
        assert values["cvat-annotation-path"] == "annotations/7/01022026120000/"
        assert values["cvat-num-classes"] == "3" and values["epochs"] == "3"
        assert workflow["metadata"]["labels"]["cvatflow.io/trainingrun"] == "r1"
        assert workflow["metadata"]["ownerReferences"][0]["uid"] == "uid-r1"
        assert workflow["metadata"]["ownerReferences"][0]["controller"] is True
        await eventually(lambda: status_of(kmock, "r1")["phase"] == "Submitted")
        assert dump.calls[0]["token"] == "s3cr3t-token"

        await patch_workflow_status(kmock, argo_status("Running", train_phase="Running"))
        await eventually(lambda: status_of(kmock, "r1").get("metrics", {}).get("mAP") == 0.25)
        assert status_of(kmock, "r1")["phase"] == "Running"
        # kopf posts Events from a queue: let it deliver before this operator is killed
        await eventually(lambda: "Running" in posted_event_reasons(kmock))

    # A new operator process: it resumes the run instead of submitting it again.
    async with operator(fresh_deps()):
        await asyncio.sleep(1.0)
        assert status_of(kmock, "r1")["phase"] == "Running"
        assert status_of(kmock, "r1")["metrics"]["mAP"] == 0.25
        log["text"] += event_lines(epoch=2, step=400, total=400, mAP=0.5, loss=0.2)
        await patch_workflow_status(kmock, argo_status("Succeeded", train_phase="Succeeded", progress="2/2",
                                                       finished=True))
        await eventually(lambda: status_of(kmock, "r1")["phase"] == "Succeeded")
        await eventually(lambda: status_of(kmock, "r1")["metrics"]["mAP"] == 0.5)
        await eventually(lambda: "Succeeded" in posted_event_reasons(kmock))
        status = status_of(kmock, "r1")

        # Editing a submitted run is refused, visibly; deleting it takes its Workflow along.
        await api(kmock, "patch", RUNS, "r1", {"spec": {"parameters": {"epochs": "100"}}})
        await eventually(lambda: any(c["type"] == "SpecChangeRefused" for c in status_of(kmock, "r1")["conditions"]))
        await api(kmock, "delete", RUNS, "r1")
        await eventually(lambda: kmock.objects[WORKFLOWS, "ml", "r1"].deleted)
        await eventually(lambda: kmock.objects[RUNS, "ml", "r1"].deleted)  # our finalizer released it

    assert status["finishedAt"] == "2026-01-02T13:00:00Z" and status["progress"] == "2/2"
    assert [s["phase"] for s in status["steps"]] == ["Succeeded", "Succeeded"]
    assert status["outputs"]["model"] == f"{STORE}/outputs/task-7/r1/model/"
    workflow_creates = [q for q in kmock["post"] if q.url.path.endswith("/workflows")]
    assert len(workflow_creates) == 1 and len(dump.calls) == 1
    reasons = posted_event_reasons(kmock)
    assert [r for r in reasons if r in ("Submitted", "Running", "Succeeded")][:1] == ["Submitted"]
    assert reasons.index("Submitted") < reasons.index("Running") < reasons.index("Succeeded"), reasons
    assert len(reasons) == len([q for q in kmock["post"] if q.url.path.endswith("/events")])  # none refused


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_an_invalid_training_run_ends_invalid_with_readable_messages(kmock, monkeypatch):
    declare_cluster(kmock)
    monkeypatch.setenv(URL_ENV, str(kmock.url))
    seed_run(kmock, training_run("bad", parameters={"epochs": "ten", "batch-size": "2"}, nodePool="TPU"))
    dump = RecordedDump()
    deps = make_deps(cluster=Cluster(), dump=dump)
    deps.post_event = kopf_event
    async with operator(deps):
        await eventually(lambda: status_of(kmock, "bad").get("phase") == "Invalid")
    status = status_of(kmock, "bad")
    assert "Epochs must be a number, not 'ten'" in status["message"]
    assert "node pool 'TPU' is not configured" in status["message"]
    assert {p["path"] for p in status["problems"]} == {"epochs", "sys-node-pool"}
    assert not [q for q in kmock["post"] if q.url.path.endswith("/workflows")] and dump.calls == []
    assert "Invalid" in posted_event_reasons(kmock)
