"""The Onepanel CVAT fork's own calls (onepanelio/cvat v0.19.0_cvat.1.0.0), written as data and replayed against
`cvatflow serve` and the fake CVAT: each answers in the shape the fork's code reads.

Sources: `cvat-ui/src/onepanelio/api/onepanelApi.ts` and `createAnnotationModal/createAnnotation.action.ts` (the
dialog; axios through `core.server.request`, which sends CVAT's cookies and `X-CSRFTOKEN`, except
`executeWorkflow`, a plain `fetch` with `credentials: 'same-origin'`), and `cvat-core/src/server-proxy.js`
(`exportDataset`, `dumpAnnotations`: GET until not 202, then again with `&action=download`).
"""
from __future__ import annotations

import io
import zipfile
from typing import Any

import httpx
import pytest

from api_fixtures import TINY, TOKEN, tiny_api, wait_for
from cvatflow.config import NodePool, NodePools

COOKIES = {"auth-token": TOKEN, "auth-username": "admin", "csrftoken": "fork-csrf"}
ACCEPT = {"Accept": "application/json, text/plain, */*"}  # axios's default
AXIOS = {"X-CSRFTOKEN": "fork-csrf", "Content-Type": "application/json", **ACCEPT}  # core.server.request
FETCH = {"Content-Type": "application/json"}  # OnepanelApi.fetchJson
FILE = "task_shapes.zip"  # dumpAnnotations: the task's name with "/" replaced, as the fork builds it

# (what, method, path, headers, body, fields the fork reads: "a[].b" = field b of every item of list a).
# {task}, {uid} and {parameters} are filled in as the dialog would have them by then.
CALLS: list[dict[str, Any]] = [
    {"what": "getWorkflowTemplateAsync", "method": "GET", "path": "/onepanelio/workflow_templates",
     "headers": {"X-CSRFTOKEN": "fork-csrf", **ACCEPT}, "reads": ["count", "workflow_templates[].uid",
                                                       "workflow_templates[].name", "workflow_templates[].version"]},
    {"what": "listWorkflowTemplateVersions", "method": "GET", "path": "/onepanelio/workflow_templates/{uid}/versions",
     "headers": AXIOS, "reads": ["count", "workflow_templates[].version"]},
    {"what": "getWorkflowTemplate", "method": "GET", "path": "/onepanelio/workflow_templates/{uid}/versions/0",
     "headers": AXIOS, "reads": ["parameters[].name", "parameters[].value", "parameters[].type",
                                 "parameters[].display_name", "parameters[].hint", "parameters[].options",
                                 "parameters[].required", "parameters[].visibility"]},
    {"what": "getNodePool", "method": "POST", "path": "/onepanelio/get_node_pool", "headers": AXIOS,
     "reads": ["node_pool.label", "node_pool.options[].name", "node_pool.options[].value"]},
    {"what": "getBaseModel", "method": "POST", "path": "/onepanelio/get_base_model", "headers": AXIOS,
     "body": {"uid": "{uid}", "sysRefModel": ""}, "reads": ["keys"]},
    {"what": "getBaseModelsAsync", "method": "POST", "path": "/onepanelio/get_base_model", "headers": AXIOS,
     "body": {"model_type": "maskrcnn"}, "reads": ["keys"]},
    {"what": "getOutputPath", "method": "POST", "path": "/onepanelio/get_output_path/{task}", "headers": AXIOS,
     "body": {"uid": "{uid}"}, "reads": ["name"]},
    {"what": "getAnnotationPath", "method": "GET", "path": "/onepanelio/get_annotation_path/{task}",
     "headers": AXIOS, "reads": ["name"]},
    {"what": "getAvailableDumpFormats", "method": "POST", "path": "/onepanelio/get_available_dump_formats",
     "headers": AXIOS, "reads": ["dump_formats[].name", "dump_formats[].tag"]},
    {"what": "getObjectCounts", "method": "POST", "path": "/onepanelio/get_object_counts/{task}", "headers": AXIOS,
     "reads": ["shapes", "tracks"]},
    {"what": "executeWorkflow", "method": "POST", "path": "/onepanelio/execute_workflow/{task}", "headers": FETCH,
     "body": {"workflow_template": "{uid}", "parameters": "{parameters}"}, "reads": ["url"]},
    {"what": "exportDataset (poll)", "method": "GET", "path": "/onepanelio/api/v1/tasks/{task}/dataset",
     "params": {"format": "COCO 1.0"}, "headers": {"X-CSRFTOKEN": "fork-csrf", **ACCEPT}, "poll": True},
    {"what": "exportDataset (download)", "method": "GET", "path": "/onepanelio/api/v1/tasks/{task}/dataset",
     "params": {"format": "COCO 1.0", "action": "download"}, "headers": {"X-CSRFTOKEN": "fork-csrf", **ACCEPT},
     "reads": ["message"], "saved": "task_42_dataset.zip", "images": True},
    {"what": "dumpAnnotations (poll)", "method": "GET", "path": f"/onepanelio/api/v1/tasks/{{task}}/annotations/{FILE}",
     "params": {"format": "COCO 1.0"}, "headers": {"X-CSRFTOKEN": "fork-csrf", **ACCEPT}, "poll": True},
    {"what": "dumpAnnotations (download)", "method": "GET",
     "path": f"/onepanelio/api/v1/tasks/{{task}}/annotations/{FILE}",
     "params": {"format": "COCO 1.0", "action": "download"}, "headers": {"X-CSRFTOKEN": "fork-csrf", **ACCEPT},
     "reads": ["message"], "saved": FILE, "images": False},
]


def fields(body: Any, path: str) -> list[Any]:
    """The values at `path` ("a.b", "a[].b") in `body`; fails when a step is missing or not a list/object."""
    values = [body]
    for step in path.split("."):
        many = step.endswith("[]")
        name = step.removesuffix("[]")
        found = []
        for value in values:
            assert isinstance(value, dict) and name in value, f"{path}: no {name!r} in {str(value)[:200]}"
            item = value[name]
            if many:
                assert isinstance(item, list) and item, f"{path}: {name!r} is not a non-empty list"
                found.extend(item)
            else:
                found.append(item)
        values = found
    return values


def fill(value: Any, known: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: fill(v, known) for k, v in value.items()}
    if value == "{parameters}":
        return known["parameters"]
    return value.format(**known) if isinstance(value, str) else value


@pytest.fixture
def fork(tmp_path, fake_cvat):
    pools = NodePools(label="node.kubernetes.io/instance-type", pools=[NodePool("GPU: 1x T4", "g4dn.xlarge")])
    with tiny_api(tmp_path / "home", fake_cvat.url, node_pools=pools) as served:
        yield served


def test_the_fork_s_calls_are_all_here():
    assert len({(c["method"], c["path"], str(c.get("params", {}).get("action"))) for c in CALLS}) == 14


def test_every_call_of_the_fork_answers_in_the_shape_it_reads(fork, fake_cvat):
    from cvatflow.storage import open_store

    url, settings = fork
    store = open_store(settings.store)
    known: dict[str, Any] = {"task": fake_cvat.task_id, "uid": TINY}
    answers: dict[str, httpx.Response] = {}
    with httpx.Client(base_url=url, cookies=COOKIES, timeout=30) as browser:  # no Authorization header at all
        for call in CALLS:
            request = browser.build_request(call["method"], fill(call["path"], known), headers=call["headers"],
                                            params=call.get("params"),
                                            json=fill(call["body"], known) if "body" in call else None)
            answer = browser.send(request)
            if call.get("poll"):
                statuses = [answer.status_code]
                while answer.status_code == 202 and len(statuses) < 50:
                    answer = browser.send(request)
                    statuses.append(answer.status_code)
                assert statuses[0] == 202 and statuses[-1] == 201, (call["what"], statuses)
                continue
            assert answer.status_code == 200, (call["what"], answer.status_code, answer.text[:300])
            answers[call["what"]] = answer
            body = answer.json()
            for path in call["reads"]:
                fields(body, path)
            if "saved" in call:  # tasks-actions.tsx shows `message`; the file is in the store where it says
                key = f"exports/task-{fake_cvat.task_id}/{call['saved']}"
                assert body["message"].endswith(store.uri_for(key)), body
                archive = zipfile.ZipFile(io.BytesIO(store.get_bytes(key)))
                assert "annotations/instances_default.json" in archive.namelist()
                assert any(n.startswith("images/") for n in archive.namelist()) == call["images"]
            if call["what"] == "getWorkflowTemplate":  # the dialog posts every parameter at its value
                known["parameters"] = {p["name"]: p["value"] for p in body["parameters"]}

        assert TINY in fields(answers["getWorkflowTemplateAsync"].json(), "workflow_templates[].uid")
        assert answers["getOutputPath"].json() == {"name": f"outputs/task-{fake_cvat.task_id}/"}
        # "Open Workflow details": the browser opens `url` with CVAT's cookies only and gets the run page,
        # whose script then reads the run with the same cookies.
        link = answers["executeWorkflow"].json()["url"]
        page = browser.get(link, headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        run = link.rsplit("/", 1)[1]
        execution = wait_for(lambda: (e := browser.get(f"/api/v1/executions/{run}").json())["phase"]
                             in ("Succeeded", "Failed", "Error") and e, timeout=120)
    assert execution["phase"] == "Succeeded", execution
