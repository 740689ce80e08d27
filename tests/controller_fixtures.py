"""Test doubles for the operator: an in-memory cluster, a recorded CVAT dump, TrainingRun and Workflow bodies."""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import kopf
import yaml

from cvatflow.config import NodePool, NodePools, Settings
from cvatflow.controller.cluster import Cluster
from cvatflow.controller.deps import Deps
from cvatflow.errors import NotFoundError
from cvatflow.templates.manifest import load_dict

ROOT = Path(__file__).resolve().parents[1]
STORE = "s3://cvatflow-test"
# The COCO datasets in the fake store, by annotation path: how many categories each has.
DATASET_CLASSES = {"datasets/coco-cars/": 2}
LOG = logging.getLogger("test-controller")
# What DESIGN.md lists; used only while cvatflow.datasets.formats has not landed in this checkout.
def workflow_template(name: str = "detr-training") -> dict[str, Any]:
    """A built-in WorkflowTemplate as `kubectl apply -f workflow_templates/` puts it in the cluster."""
    return yaml.safe_load((ROOT / "workflow_templates" / f"{name}.yaml").read_text())


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386), what the API server does with application/merge-patch+json."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


class FakeCustomObjects:
    """The CustomObjectsApi calls Cluster makes on Workflows, over FakeCluster's dicts, answered as the API
    server answers them: a create of a name that exists is refused with 409 Conflict, never merged quietly."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        from kubernetes.client.exceptions import ApiException

        assert (group, plural) == ("argoproj.io", "workflows"), (group, plural)
        key = (namespace, body["metadata"]["name"])
        if key in self.cluster.workflows:
            self.cluster.conflicts += 1
            raise ApiException(status=409, reason="Conflict")
        self.cluster.creates += 1
        self.cluster.workflows[key] = json.loads(json.dumps(body))
        return copy.deepcopy(self.cluster.workflows[key])


class FakeCluster(Cluster):
    """The operator's cluster gateway over dicts; counts what the operator did. Workflows are created by the
    real Cluster.create_workflow against FakeCustomObjects, so its handling of a 409 is what runs."""

    def __init__(self, namespace: str = "ml") -> None:
        self.api = None  # no kubeconfig: every call the operator makes is answered below
        self.templates = {(namespace, "detr-training"): workflow_template("detr-training")}
        self.workflows: dict[tuple[str, str], dict[str, Any]] = {}
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets = {(namespace, "cvat-credentials", "token"): "s3cr3t-token"}
        self.logs: dict[tuple[str, str], str] = {}
        self.creates = 0  # Workflows created
        self.conflicts = 0  # creates refused with 409 because the name was taken
        self.deletes: list[str] = []
        self.shutdowns: list[tuple[str, str]] = []

    @property
    def custom(self):
        return FakeCustomObjects(self)

    jobset = True  # the cluster serves jobset.x-k8s.io (multi-node runs); set False to see the refusal

    def jobset_served(self) -> bool:
        if self.api is not None:  # a test pointed discovery at kmock: ask it, as the real cluster does
            from cvatflow.templates.jobset import api_served

            return api_served(self.api)
        return self.jobset

    def template(self, namespace: str, name: str):
        if (namespace, name) not in self.templates:
            raise NotFoundError(f"no WorkflowTemplate {name!r} in namespace {namespace}; "
                                f"apply it with `kubectl apply -f workflow_templates/`")
        return load_dict(copy.deepcopy(self.templates[namespace, name]), source=name)

    def workflow(self, namespace: str, name: str):
        found = self.workflows.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def shutdown_workflow(self, namespace: str, name: str, strategy: str) -> bool:
        self.shutdowns.append((name, strategy))
        if (namespace, name) not in self.workflows:
            return False
        self.workflows[namespace, name].setdefault("spec", {})["shutdown"] = strategy
        return True

    def delete_workflow(self, namespace: str, name: str) -> bool:
        self.deletes.append(name)
        return self.workflows.pop((namespace, name), None) is not None

    def run(self, namespace: str, name: str):
        found = self.runs.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def patch_run_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        if (namespace, name) not in self.runs:
            return False
        merge(self.runs[namespace, name].setdefault("status", {}), json.loads(json.dumps(status)))
        return True

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        if (namespace, name, key) not in self.secrets:
            raise NotFoundError(f"no Secret {name!r} with key {key!r} in namespace {namespace}")
        return self.secrets[namespace, name, key]

    def pod_log(self, namespace: str, pod: str, container: str = "main"):
        return self.logs.get((namespace, pod))


class RecordedDump:
    """Stands in for cvatflow.cvat.dump_task: remembers its calls, answers a timestamped prefix."""

    def __init__(self, labels=("car", "person", "bike"), fail: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.labels = list(labels)
        self.fail = fail

    def __call__(self, cvat_url, task_id, dump_format, store_uri, *, token=None, repository=None):
        self.calls.append({"url": cvat_url, "task": task_id, "format": dump_format, "store": store_uri,
                           "token": token})
        if self.fail is not None:
            raise self.fail
        return f"annotations/{task_id}/01022026120000/", list(self.labels)


def make_deps(cluster=None, dump=None, checkpoints=("outputs/task-7/earlier-run/",), events=None) -> Deps:
    settings = Settings(home=Path("/nonexistent"), store=STORE, namespace="ml", cvat_url="http://cvat.local:8080",
                        node_pools=NodePools(label="node.kubernetes.io/instance-type", pools=[
                            NodePool("T4", "g4dn.xlarge", {"limits": {"nvidia.com/gpu": 1}}),
                            NodePool("A100", "p4d.24xlarge", {"limits": {"nvidia.com/gpu": 8}})]))
    return Deps(cluster=cluster or FakeCluster(), settings=settings, dump=dump or RecordedDump(),
                checkpoint_exists=lambda prefix: prefix in checkpoints, count_classes=DATASET_CLASSES.get,
                post_event=lambda obj, type, reason, message: (events if events is not None else []).append(
                    (obj["metadata"]["name"], type, reason, message)))


def training_run(name: str = "r1", namespace: str = "ml", *, source: dict[str, Any] | None = None,
                 parameters: dict[str, str] | None = None, template: str = "detr-training",
                 **spec: Any) -> dict[str, Any]:
    """A TrainingRun body as the API server hands it to the operator."""
    return {
        "apiVersion": "cvatflow.io/v1alpha1", "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1},
        "spec": {"template": {"name": template},
                 "source": source or {"cvatTask": {"id": 7, "credentialsSecret": {"name": "cvat-credentials"}}},
                 "parameters": parameters if parameters is not None else {"epochs": "3", "cvat-model": "detr_small"},
                 **spec},
    }


def event_lines(*, epoch: float, step: int, total: int, mAP: float | None = None, loss: float = 1.0) -> str:
    """Log lines of a training step: ordinary output with JSON events among it (DESIGN.md, Events)."""
    lines = ["loading dataset...",
             json.dumps({"message": "progress", "event_type": "EventType.PROGRESS", "subtask": "train",
                         "current": step, "total": total, "timestamp": 1.0}),
             json.dumps({"message": "metrics", "event_type": "EventType.METRICS", "type": "train", "epoch": epoch,
                         "metrics": {"loss": loss}, "timestamp": 1.0})]
    if mAP is not None:
        lines.append(json.dumps({"message": "metrics", "event_type": "EventType.METRICS", "type": "val",
                                 "epoch": epoch, "metrics": {"mAP": mAP, "mAP_50": mAP + 0.1}, "timestamp": 1.0}))
    return "\n".join(lines) + "\n"


def argo_status(phase: str, *, train_phase: str | None = None, progress: str = "1/2",
                workflow: str = "r1", finished: bool = False) -> dict[str, Any]:
    """A Workflow status as Argo's controller writes it: a prepare step and a train step."""
    nodes = {
        f"{workflow}-1111": {"id": f"{workflow}-1111", "name": f"{workflow}.prepare-dataset",
                             "displayName": "prepare-dataset", "type": "Pod", "templateName": "prepare-dataset",
                             "phase": "Succeeded", "startedAt": "2026-01-02T12:00:00Z",
                             "finishedAt": "2026-01-02T12:01:00Z"},
    }
    if train_phase:
        nodes[f"{workflow}-2222"] = {"id": f"{workflow}-2222", "name": f"{workflow}.train", "displayName": "train",
                                     "type": "Pod", "templateName": "train", "phase": train_phase,
                                     "startedAt": "2026-01-02T12:01:05Z",
                                     **({"finishedAt": "2026-01-02T13:00:00Z"} if finished else {})}
    status = {"phase": phase, "progress": progress, "startedAt": "2026-01-02T12:00:00Z", "nodes": nodes}
    if finished:
        status["finishedAt"] = "2026-01-02T13:00:00Z"
    return status


def call(handler, body: dict[str, Any], deps: Deps, **kwargs: Any) -> dict[str, Any]:
    """Run a TrainingRun handler as kopf does: a fresh patch, merged into the object afterwards (errors too)."""
    patch = kopf.Patch()
    try:
        handler(body=kopf.Body(body), patch=patch, memo=kopf.Memo(deps=deps), logger=LOG, **kwargs)
    finally:
        merge(body, json.loads(json.dumps(dict(patch))))
    return body.get("status") or {}


def mirror(deps: Deps, workflow: dict[str, Any], memo=None, type_: str = "MODIFIED") -> None:
    """Deliver a Workflow watch event to the operator's mirror handler."""
    from cvatflow.controller import handlers

    handlers.mirror(event={"type": type_, "object": workflow}, body=kopf.Body(workflow),
                    memo=memo if memo is not None else kopf.Memo(deps=deps), logger=LOG)
