"""Runs on a cluster through the Kubernetes API: Workflow objects that reference a WorkflowTemplate."""
from __future__ import annotations

from typing import Any

from cvatflow.argo import (  # noqa: F401 (re-exported: older imports of Argo's names from here keep working)
    GROUP,
    TEMPLATE_LABEL,
    VERSION,
    WORKFLOW_TEMPLATES,
    WORKFLOWS,
    output_prefix_of,
    pod_name,
    run_name,
    status_from_workflow,
)
from cvatflow.argo import workflow_manifest as workflow_object
from cvatflow.errors import NotFoundError, RunError
from cvatflow.params import Filled
from cvatflow.runs.backend import Backend
from cvatflow.runs.run import Run, RunStatus, StepStatus  # noqa: F401 (StepStatus re-exported)
from cvatflow.runs.workflow_run import WorkflowRun, resubmitted, retry_patch
from cvatflow.templates.manifest import load_dict
from cvatflow.templates.template import Template


def _api_client(kubeconfig: str | None = None, url: str | None = None):
    from cvatflow.kube import api_client

    return api_client(kubeconfig, url=url)


class KubernetesRun(WorkflowRun):
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


class KubernetesBackend(Backend):
    """Creates and reads Argo objects with the Kubernetes API (kubeconfig or in-cluster)."""

    def __init__(self, namespace: str = "default", api=None, kubeconfig: str | None = None,
                 url: str | None = None, service_account: str | None = None) -> None:
        self.namespace = namespace
        self.api = api or _api_client(kubeconfig, url)
        self.service_account = service_account  # the pods' account (settings.workflow_service_account)

    @property
    def custom(self):
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    def templates(self, labels: dict[str, str] | None = None) -> list[Template]:
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items()) or None
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, WORKFLOW_TEMPLATES, label_selector=selector).get("items", [])
        return [load_dict(item, source=item["metadata"]["name"]) for item in items]

    def get_template(self, name: str) -> Template:
        from kubernetes.client.exceptions import ApiException

        try:
            doc = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, WORKFLOW_TEMPLATES, name)
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
                               output_prefix=output_prefix, service_account=self.service_account)
        created = self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, WORKFLOWS, body)
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
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, WORKFLOWS, name)
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
            GROUP, VERSION, self.namespace, WORKFLOWS, label_selector=selector).get("items", [])
        # Filter here too: the selector is an optimisation some test servers ignore.
        items = [w for w in items if all(((w.get("metadata") or {}).get("labels") or {}).get(k) == v
                                         for k, v in wanted.items())]
        items.sort(key=lambda w: (w.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
        return [KubernetesRun(self, item) for item in items]

    # -- lifecycle, by Argo's own means: the controller acts on spec.shutdown; retry edits the Workflow --------

    def _api_error(self, what: str, exc) -> Exception:
        if exc.status == 404:
            return NotFoundError(f"no run {what!r} in namespace {self.namespace}")
        return RunError(f"run {what}: the Kubernetes API answered {exc.status} {exc.reason}")

    def shutdown(self, name: str, strategy: str) -> None:
        """Merge-patch `spec.shutdown` (Stop or Terminate), as `argo stop` and `argo terminate` do."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, WORKFLOWS, name,
                                                       {"spec": {"shutdown": strategy}})
        except ApiException as exc:
            raise self._api_error(name, exc) from None

    def retry_workflow(self, name: str) -> None:
        """Argo's retry: reset the failed nodes and the phase (`retry_patch`), patch the Workflow, delete the
        failed pods so the controller creates them again."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        patch, removed = retry_patch(self.get_workflow(name))
        try:
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, WORKFLOWS, name, patch)
        except ApiException as exc:
            raise self._api_error(name, exc) from None
        core = client.CoreV1Api(self.api)
        for node_id, node in removed.items():
            if node.get("type") != "Pod":
                continue
            try:
                core.delete_namespaced_pod(pod_name(name, node_id, node), self.namespace)
            except ApiException as exc:
                if exc.status != 404:  # already gone: nothing to do
                    raise self._api_error(name, exc) from None

    def resubmit(self, run: Run, name: str | None = None) -> KubernetesRun:
        """A new Workflow with the old one's spec and labels (Argo's resubmit)."""
        old = self.get_workflow(run.name)
        body = resubmitted(old, name or run_name(run.template or run.name))
        created = self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, WORKFLOWS, body)
        return KubernetesRun(self, created or body)

    def delete_workflow(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, WORKFLOWS, name)
        except ApiException as exc:
            raise self._api_error(name, exc) from None
