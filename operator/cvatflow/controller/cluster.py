"""What the operator reads and writes in the cluster, behind one small gateway (kubernetes client)."""
from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from cvatflow.controller.resource import GROUP, PLURAL, VERSION
from cvatflow.errors import NotFoundError
from cvatflow.kube import api_client as build_api_client
from cvatflow.runs import kubernetes as argo
from cvatflow.templates.template import Template

log = logging.getLogger(__name__)
# Points the operator (and kopf's login) at a test or development API server without a kubeconfig.
URL_ENV = "CVATFLOW_KUBE_URL"


def api_client():
    """A kubernetes ApiClient: the CVATFLOW_KUBE_URL setting, else in-cluster, else the kubeconfig."""
    from cvatflow.config import load_settings

    settings = load_settings()
    return build_api_client(settings.kubeconfig or None, url=settings.kube_url or None)


def _unless_gone(call: Callable[[], Any]) -> bool:
    """Run a write to an object; False when the API server answers 404 (it is gone), True when done."""
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


class Cluster:
    """The Kubernetes calls of the operator; tests replace it with an in-memory fake of the same shape."""

    def __init__(self, api=None) -> None:
        self.api = api or api_client()

    @property
    def custom(self):
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    @property
    def core(self):
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def template(self, namespace: str, name: str) -> Template:
        """The WorkflowTemplate a run names (NotFoundError with the fix when it is not applied)."""
        return argo.KubernetesBackend(namespace, api=self.api).get_template(name)

    def node_allocatable(self, label: str, value: str) -> dict[str, str] | None:
        """What a node of the pool `label=value` allocates; None without the chart's rbac.readNodes."""
        return argo.KubernetesBackend("default", api=self.api).node_allocatable(label, value)

    def jobset_served(self) -> bool:
        """Whether the cluster serves the JobSet API that multi-node runs create (discovery)."""
        from cvatflow.templates.jobset import api_served

        return api_served(self.api)

    def create_workflow(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the Workflow, or return the one already there under its name (a retried create)."""
        from kubernetes.client.exceptions import ApiException

        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            self.custom.create_namespaced_custom_object(argo.GROUP, argo.VERSION, namespace, "workflows", body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        # Read it back rather than trusting create's answer: some API servers answer 200 with no body.
        return self.workflow(namespace, name) or body

    def delete_workflow(self, namespace: str, name: str) -> bool:
        """Delete the Workflow (its pods go with it); False when it was already gone."""
        return _unless_gone(lambda: self.custom.delete_namespaced_custom_object(
            argo.GROUP, argo.VERSION, namespace, "workflows", name, propagation_policy="Background"))

    def shutdown_workflow(self, namespace: str, name: str, strategy: str) -> bool:
        """Set the Workflow's spec.shutdown (Stop or Terminate), as `argo stop|terminate`; False when it is gone."""
        return _unless_gone(lambda: self.custom.patch_namespaced_custom_object(
            argo.GROUP, argo.VERSION, namespace, "workflows", name, {"spec": {"shutdown": strategy}}))

    def workflow(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return argo.KubernetesBackend(namespace, api=self.api).get_workflow(name)
        except NotFoundError:
            return None

    def run(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_run_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """Merge `status` into the run's status; False when the run is gone (deleted meanwhile)."""
        return _unless_gone(lambda: self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}))

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        from kubernetes.client.exceptions import ApiException

        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFoundError(f"no Secret {name!r} in namespace {namespace}; create it with "
                                    f"`kubectl create secret generic {name} --from-literal={key}=...`") from None
            raise
        data = secret.data or {}
        if key not in data:
            raise NotFoundError(f"Secret {name!r} has no key {key!r}; its keys are: {', '.join(data) or 'none'}")
        return base64.b64decode(data[key]).decode()

    def pod_log(self, namespace: str, pod: str, container: str = "main") -> str | None:
        """A pod's log, or None when it cannot be read (pod garbage-collected, not started, node gone).

        Metrics are a bonus on top of the Workflow's state: an unreadable log must not stop the mirroring.
        """
        from kubernetes.client.exceptions import ApiException

        try:
            return self.core.read_namespaced_pod_log(pod, namespace, container=container)
        except ApiException as exc:
            if exc.status not in (400, 404):
                log.warning("cannot read the log of pod %s/%s: %s %s", namespace, pod, exc.status, exc.reason)
            return None
