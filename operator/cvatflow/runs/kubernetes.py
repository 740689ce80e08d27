"""Runs on a cluster through the Kubernetes API: Workflow objects that reference a WorkflowTemplate."""
from __future__ import annotations

import secrets
from typing import Any

from cvatflow.errors import NotFoundError, RunError
from cvatflow.params import Filled
from cvatflow.runs.run import Run, RunStatus, StepStatus
from cvatflow.templates.manifest import load_dict
from cvatflow.templates.template import Template

GROUP, VERSION = "argoproj.io", "v1alpha1"
TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"


def run_name(template: str) -> str:
    """A fresh run name like Argo's generateName gives: `<template>-<5 characters>`."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return f"{template[:57]}-{''.join(secrets.choice(alphabet) for _ in range(5))}"


def workflow_object(filled: Filled, name: str, namespace: str,
                    owner: dict[str, Any] | None = None, output_prefix: str | None = None) -> dict[str, Any]:
    """The Workflow that runs `filled.template` (by reference) with its filled parameters and labels."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {**filled.labels, TEMPLATE_LABEL: filled.template.name},
    }
    annotations = dict(filled.annotations)  # the effective hyperparameters and their sources
    if output_prefix:
        annotations["cvatflow.io/output-prefix"] = output_prefix
    if annotations:
        metadata["annotations"] = annotations
    if owner:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": metadata,
        "spec": {
            "workflowTemplateRef": {"name": filled.template.name},
            "arguments": {"parameters": filled.arguments()},
        },
    }


def status_from_workflow(workflow: dict[str, Any]) -> RunStatus:
    """Argo's Workflow status as a RunStatus (Pending until the controller has seen it)."""
    metadata = workflow.get("metadata") or {}
    spec = workflow.get("spec") or {}
    status = workflow.get("status") or {}
    steps = []
    for node in (status.get("nodes") or {}).values():
        if node.get("type") in ("Pod", "Retry") and not (node.get("type") == "Pod" and _has_retry_parent(node, status)):
            steps.append(StepStatus(
                name=node.get("displayName") or node.get("name", ""),
                phase=node.get("phase", "Pending"),
                started_at=node.get("startedAt"),
                finished_at=node.get("finishedAt"),
                message=node.get("message", ""),
                template=node.get("templateName", ""),
            ))
    steps.sort(key=lambda s: s.started_at or "~")
    parameters = {p.get("name"): p.get("value", "") for p in ((spec.get("arguments") or {}).get("parameters") or [])}
    return RunStatus(
        name=metadata.get("name", ""),
        template=(spec.get("workflowTemplateRef") or {}).get("name")
        or (metadata.get("labels") or {}).get(TEMPLATE_LABEL, ""),
        phase=status.get("phase") or "Pending",
        progress=status.get("progress", ""),
        started_at=status.get("startedAt"),
        finished_at=status.get("finishedAt"),
        message=status.get("message", ""),
        steps=steps,
        labels=dict(metadata.get("labels") or {}),
        parameters=parameters,
        annotations=dict(metadata.get("annotations") or {}),
    )


def _has_retry_parent(node: dict[str, Any], status: dict[str, Any]) -> bool:
    # A retried step shows as a Retry node with one Pod child per attempt; list the step once.
    nodes = status.get("nodes") or {}
    return any(n.get("type") == "Retry" and node.get("id") in (n.get("children") or []) for n in nodes.values())


def _api_client(kubeconfig: str | None = None):
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config(config_file=kubeconfig or None)
        except (config.ConfigException, FileNotFoundError, TypeError) as exc:
            raise RunError(f"no Kubernetes cluster configured ({exc}); set KUBECONFIG or run in a cluster, "
                           f"or use --local") from None
    return client.ApiClient()


class KubernetesRun(Run):
    def __init__(self, backend: KubernetesBackend, workflow: dict[str, Any]) -> None:
        status = status_from_workflow(workflow)
        super().__init__(status.name, status.template)
        self.backend = backend
        self._workflow = workflow

    def refresh(self) -> dict[str, Any]:
        self._workflow = self.backend.get_workflow(self.name)
        return self._workflow

    def status(self) -> RunStatus:
        return status_from_workflow(self.refresh())

    def logs(self, step: str | None = None) -> str:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core = client.CoreV1Api(self.backend.api)
        nodes = (self._workflow.get("status") or {}).get("nodes") or {}
        out = []
        for node_id, node in sorted(nodes.items(), key=lambda kv: kv[1].get("startedAt") or "~"):
            if node.get("type") != "Pod" or (step and node.get("displayName") != step):
                continue
            pod = pod_name(self.name, node_id, node)
            try:
                out.append(core.read_namespaced_pod_log(pod, self.backend.namespace, container="main"))
            except ApiException:
                continue  # the pod was garbage-collected; Argo's log archive keeps it if configured
        return "".join(out)

    def output_prefix(self) -> str | None:
        return ((self._workflow.get("metadata") or {}).get("annotations") or {}).get("cvatflow.io/output-prefix")


def pod_name(workflow: str, node_id: str, node: dict[str, Any]) -> str:
    # Argo's v2 pod names: <workflow>-<template>-<hash>, where the hash is the node id's suffix.
    suffix = node_id.rsplit("-", 1)[-1]
    return f"{workflow}-{node.get('templateName')}-{suffix}" if node.get("templateName") else node_id


class KubernetesBackend:
    """Creates and reads Argo objects with the Kubernetes API (kubeconfig or in-cluster)."""

    def __init__(self, namespace: str = "default", api=None, kubeconfig: str | None = None) -> None:
        self.namespace = namespace
        self.api = api or _api_client(kubeconfig)

    @property
    def custom(self):
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    def templates(self, labels: dict[str, str] | None = None) -> list[Template]:
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items()) or None
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "workflowtemplates", label_selector=selector).get("items", [])
        return [load_dict(item, source=item["metadata"]["name"]) for item in items]

    def get_template(self, name: str) -> Template:
        from kubernetes.client.exceptions import ApiException

        try:
            doc = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "workflowtemplates", name)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFoundError(f"no WorkflowTemplate {name!r} in namespace {self.namespace}; "
                                    f"apply it with `kubectl apply -f workflow_templates/`") from None
            raise RunError(f"reading WorkflowTemplate {name!r}: {exc.reason}") from None
        return load_dict(doc, source=name)

    def submit(self, filled: Filled, name: str | None = None, output_prefix: str | None = None) -> KubernetesRun:
        from cvatflow.templates import jobset

        nodes = jobset.nodes_asked(filled.values)
        if nodes > 1 and not jobset.api_served(self.api):  # single-node runs need nothing extra
            raise RunError(jobset.missing_api_message(nodes))
        body = workflow_object(filled, name or run_name(filled.template.name), self.namespace,
                               output_prefix=output_prefix)
        created = self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "workflows", body)
        # Some API servers (and kmock) answer 200 instead of 201, which the client maps to no body.
        return KubernetesRun(self, created or body)

    def node_allocatable(self, label: str, value: str) -> dict[str, str] | None:
        """What the largest node labelled `label=value` allocates (its status.allocatable); None when no such node
        runs now (a pool scaled to zero) or the credentials may not list nodes (a namespaced service account)."""
        import urllib3
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        from cvatflow.nodepool import quantity

        try:
            nodes = client.CoreV1Api(self.api).list_node(label_selector=f"{label}={value}").items
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError):
            return None  # unknown: the submission goes ahead unchecked, as before
        best: dict[str, str] = {}
        for node in nodes:
            for resource, amount in ((node.status and node.status.allocatable) or {}).items():
                if resource not in best or quantity(amount) > quantity(best[resource]):
                    best[resource] = str(amount)
        return best or None

    def get_workflow(self, name: str) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "workflows", name)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFoundError(f"no run {name!r} in namespace {self.namespace}") from None
            raise RunError(f"reading run {name!r}: {exc.reason}") from None

    def run(self, name: str) -> KubernetesRun:
        return KubernetesRun(self, self.get_workflow(name))

    def runs(self, labels: dict[str, str] | None = None) -> list[KubernetesRun]:
        wanted = {"app.kubernetes.io/managed-by": "cvatflow", **(labels or {})}
        selector = ",".join(f"{k}={v}" for k, v in wanted.items())
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "workflows", label_selector=selector).get("items", [])
        # Filter here too: the selector is an optimisation some test servers ignore.
        items = [w for w in items if all(((w.get("metadata") or {}).get("labels") or {}).get(k) == v
                                         for k, v in wanted.items())]
        items.sort(key=lambda w: (w.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
        return [KubernetesRun(self, item) for item in items]
