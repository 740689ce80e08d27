"""An execution from a CVAT task (the fake CVAT) to a Workflow created through the Kubernetes API (kmock)."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from api_fixtures import TOKEN, served, settings_for
from cvatflow.api import create_app
from cvatflow.runs import Client
from kmock_argo import WORKFLOWS, backend_for, patch_status, setup_cluster

pytestmark = pytest.mark.asyncio



async def poll(http: httpx.AsyncClient, path: str, until, timeout: float = 60):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = (await http.get(path)).json()
        if until(body):
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; last answer: {body}")
        await asyncio.sleep(0.1)


async def test_an_execution_creates_a_workflow_and_follows_argo_s_status(kmock, tmp_path, fake_cvat):
    setup_cluster(kmock, namespace="ml")
    settings = settings_for(tmp_path / "home", cvat_url=fake_cvat.url, backend="kubernetes", namespace="ml")
    # The app talks to kmock, which serves from this test's event loop: the test only awaits, never blocks.
    client = Client(settings=settings, api=backend_for(kmock, "ml").api)
    with served(create_app(settings, client=client)) as url:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
            templates = (await http.get("/api/v1/templates", params={"label": "used-by=cvat"})).json()
            assert [t["name"] for t in templates["items"]] == ["maskrcnn-training"]
            answer = await http.post("/api/v1/executions", json={
                "template": "maskrcnn-training", "cvatTask": fake_cvat.task_id, "cvatJob": 7,
                "parameters": {"epochs": "3"}, "labels": {"team": "vision"}})
            assert answer.status_code == 202, answer.text
            name = answer.json()["id"]
            pending = await poll(http, f"/api/v1/executions/{name}", lambda e: e["phase"] != "Preparing")
            assert pending["phase"] == "Pending", pending

            workflow = kmock.objects[WORKFLOWS, "ml", name]
            assert workflow["spec"]["workflowTemplateRef"] == {"name": "maskrcnn-training"}
            parameters = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
            assert parameters["epochs"] == "3"
            assert parameters["cvat-num-classes"] == str(len(fake_cvat.labels))
            assert parameters["cvat-annotation-path"].startswith(f"annotations/{fake_cvat.task_id}/")
            labels = workflow["metadata"]["labels"]
            assert labels["cvatflow.io/cvat-task-id"] == str(fake_cvat.task_id)
            assert labels["cvat-job-id"] == "7" and labels["team"] == "vision"

            # Play the Argo controller, and see the API follow.
            await asyncio.to_thread(patch_status, kmock, name, {
                "phase": "Running", "progress": "1/3", "startedAt": "2026-11-22T10:00:00Z",
                "nodes": {f"{name}-1": {"id": f"{name}-1", "type": "Pod", "displayName": "train-model",
                                        "phase": "Running", "startedAt": "2026-11-22T10:00:05Z"}}}, "ml")
            running = await poll(http, f"/api/v1/executions/{name}", lambda e: e["phase"] == "Running")
            assert running["progress"] == "1/3"
            assert [s["name"] for s in running["steps"]] == ["train-model"]
            await asyncio.to_thread(patch_status, kmock, name, {
                "phase": "Succeeded", "progress": "3/3", "finishedAt": "2026-11-22T11:00:00Z"}, "ml")
            done = await poll(http, f"/api/v1/executions/{name}", lambda e: e["phase"] == "Succeeded")
            assert done["outputs"]["model"].endswith(f"/{name}/model/")
            listed = (await http.get("/api/v1/executions", params={"cvatTask": fake_cvat.task_id})).json()
            assert [e["id"] for e in listed["items"]] == [name]
