"""The CLI, `Client`, the HTTP API and the operator build the same Workflow for the same request (one pipeline)."""
from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from api_fixtures import TOKEN, served, wait_for
from controller_fixtures import FakeCluster, FakeCustomObjects, training_run
from cvatflow.api import create_app
from cvatflow.config import load_settings
from cvatflow.controller.deps import Deps
from cvatflow.controller.resource import RUN_LABEL
from cvatflow.controller.submit import submit
from cvatflow.runs import Client
from cvatflow.runs.kubernetes import KubernetesBackend

NAMESPACE, NAME, TASK = "ml", "r1", 7
PARAMETERS = {"epochs": "3", "cvat-model": "detr_small", "sys-node-pool": "T4"}


class Cluster(FakeCluster):
    """The operator's fake cluster, whose CustomObjectsApi the Kubernetes backend reads and writes too."""

    @property
    def custom(self):
        return Custom(self)


class Custom(FakeCustomObjects):
    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        from kubernetes.client.exceptions import ApiException

        found = (self.cluster.templates if plural == "workflowtemplates" else self.cluster.workflows).get(
            (namespace, name))
        if found is None:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(found)


class Dump:
    """Stands in for the CVAT export: the same prefix and labels for every caller."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, cvat_url, task_id, dump_format, store_uri, *, token=None, repository=None, progress=None):
        self.calls.append({"url": cvat_url, "task": task_id, "format": dump_format})
        return f"annotations/{task_id}/01022026120000/", ["car", "person", "bike"]


class FakeCvat:
    def task(self, task_id: int) -> dict[str, Any]:
        return {"id": task_id, "name": "cars"}


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A home whose config.yaml every entry point reads; a store holding one COCO dataset; a fake cluster."""
    home, store = tmp_path / "home", tmp_path / "store"
    dataset = store / "datasets" / "cars" / "annotations"
    dataset.mkdir(parents=True)
    (dataset / "instances_default.json").write_text(json.dumps(
        {"images": [], "annotations": [], "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}]}))
    home.mkdir()
    (home / "config.yaml").write_text(yaml.safe_dump({
        "backend": "kubernetes", "namespace": NAMESPACE, "store": store.as_uri(), "cvatUrl": "http://cvat.local:8080",
        "workflowServiceAccount": "cvatflow-workflow",
        "nodePools": {"label": "node.kubernetes.io/instance-type", "options": [
            {"name": "T4", "value": "g4dn.xlarge", "resources": {"limits": {"nvidia.com/gpu": 1}},
             "allocatable": {"cpu": "3920m", "memory": "14Gi", "nvidia.com/gpu": "1"}}]}}))
    for name in ("CVATFLOW_CONFIG", "CVATFLOW_STORE", "CVATFLOW_BACKEND", "CVATFLOW_NAMESPACE", "CVAT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CVATFLOW_HOME", str(home))
    cluster = Cluster(NAMESPACE)
    dump = Dump()
    monkeypatch.setattr(KubernetesBackend, "custom", property(lambda self: cluster.custom))
    monkeypatch.setattr("cvatflow.runs.kubernetes._api_client", lambda *args, **kwargs: object())
    monkeypatch.setattr("cvatflow.submission.dump_task", dump)
    return {"settings": load_settings(), "cluster": cluster, "dump": dump, "store": store.as_uri()}


def by_client(site, source: dict[str, Any]) -> None:
    Client(settings=site["settings"]).execute("detr-training", cvat_task=source.get("task"),
                                              dataset=source.get("dataset"), parameters=PARAMETERS, name=NAME)


def by_cli(site, source: dict[str, Any]) -> None:
    from cvatflow.cli import app

    args = ["run", "detr-training", "--kube", "--name", NAME]
    args += ["--cvat-task", str(source["task"])] if "task" in source else ["--data", source["dataset"]]
    for key, value in PARAMETERS.items():
        args += ["-p", f"{key}={value}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def by_api(site, source: dict[str, Any]) -> None:
    settings = site["settings"]
    settings.api_tokens = [TOKEN]
    app = create_app(settings, client=Client(settings=settings), cvat=FakeCvat)
    body = {"template": "detr-training", "parameters": PARAMETERS, "name": NAME}
    body |= {"cvatTask": source["task"]} if "task" in source else {"dataset": source["dataset"]}
    with served(app) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        answer = http.post("/api/v1/executions", json=body)
        assert answer.status_code == 202, answer.text
        wait_for(lambda: http.get(f"/api/v1/executions/{NAME}").json()["phase"] != "Preparing")


def by_operator(site, source: dict[str, Any]) -> None:
    deps = Deps(cluster=site["cluster"], settings=site["settings"], dump=site["dump"],
                checkpoint_exists=lambda prefix: False)
    spec_source = {"cvatTask": {"id": source["task"]}} if "task" in source else {"dataset": source["dataset"]}
    parameters = dict(PARAMETERS)
    if "dataset" in source:  # the operator does not read the store: a dataset source names its classes
        parameters["cvat-num-classes"] = "2"
    status = submit(training_run(NAME, NAMESPACE, source=spec_source, parameters=parameters), deps)
    assert status.get("phase") != "Invalid", status


ENTRY_POINTS = {"cli": by_cli, "client": by_client, "api": by_api, "operator": by_operator}


def manifest(site) -> dict[str, Any]:
    """The one Workflow created, less what only the operator adds: its TrainingRun as owner and run label."""
    (workflow,) = site["cluster"].workflows.values()
    workflow = copy.deepcopy(workflow)
    metadata = workflow["metadata"]
    metadata.pop("ownerReferences", None)
    metadata["labels"].pop(RUN_LABEL, None)
    return workflow


@pytest.mark.parametrize("source", ["task", "dataset"])
def test_every_entry_point_builds_the_same_workflow(site, source, tmp_path):
    sources = {"task": {"task": TASK}, "dataset": {"dataset": f"{site['store']}/datasets/cars/"}}
    made = {}
    for entry, start in ENTRY_POINTS.items():
        site["cluster"].workflows.clear()
        site["settings"] = load_settings()
        start(site, sources[source])
        made[entry] = manifest(site)
    first = made["cli"]
    for entry, workflow in made.items():
        assert workflow == first, f"{entry} differs from cli"
    parameters = {p["name"]: p["value"] for p in first["spec"]["arguments"]["parameters"]}
    assert first["spec"]["serviceAccountName"] == "cvatflow-workflow"
    assert '"nvidia.com/gpu": "1"' in parameters["sys-node-pool-patch"].replace("'", '"') or \
        "nvidia.com/gpu" in parameters["sys-node-pool-patch"]
    if source == "task":
        assert parameters["cvat-annotation-path"] == f"annotations/{TASK}/01022026120000/"
        assert parameters["cvat-num-classes"] == "3"
        assert len(site["dump"].calls) == len(ENTRY_POINTS)  # each entry point dumped once
    else:
        assert parameters["cvat-annotation-path"] == "datasets/cars/"
        assert parameters["cvat-num-classes"] == "2"
    prefix = first["metadata"]["annotations"]["cvatflow.io/output-prefix"]
    assert prefix == f"{site['store']}/{parameters['cvat-output-path'].strip('/')}/{NAME}/"
