"""Runs through an Argo Server's REST API (hera's WorkflowsService), for clusters that expose one."""
from __future__ import annotations

from typing import Any

from cvatflow.argo import run_name, workflow_manifest
from cvatflow.errors import NotFoundError, RunError
from cvatflow.params import Filled
from cvatflow.runs.backend import Backend
from cvatflow.runs.run import Run
from cvatflow.runs.workflow_run import WorkflowRun
from cvatflow.templates.manifest import load_dict
from cvatflow.templates.template import Template


def _plain(model) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json") if model is not None else {}


class ArgoServerRun(WorkflowRun):
    def logs(self, step: str | None = None) -> str:
        return self.backend.workflow_logs(self.name, step)


class ArgoServerBackend(Backend):
    """Talks to https://argo-server:2746 with a bearer token (ARGO_TOKEN), as the `argo` CLI does."""

    def __init__(self, url: str, namespace: str = "default", token: str | None = None, verify_ssl: bool = True,
                 service_account: str | None = None):
        from hera.workflows import WorkflowsService

        self.url = url.rstrip("/")
        self.namespace = namespace
        self.token = token
        self.service_account = service_account
        self.service = WorkflowsService(host=self.url, token=token, namespace=namespace, verify_ssl=verify_ssl)

    def _call(self, what: str, fn, *args, **kwargs):
        import requests

        try:
            return fn(*args, **kwargs)
        except requests.exceptions.ConnectionError:
            raise RunError(f"cannot reach the Argo Server at {self.url}; check --argo-server and the network") from None
        except Exception as exc:  # hera raises its own exception types per status code
            text = str(exc)
            if "404" in text or "not found" in text.lower():
                raise NotFoundError(f"{what}: not found on the Argo Server ({text[:200]})") from None
            raise RunError(f"{what}: the Argo Server answered: {text[:300]}") from None

    def templates(self, labels: dict[str, str] | None = None) -> list[Template]:
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items()) or None
        listing = self._call("list templates", self.service.list_workflow_templates, namespace=self.namespace,
                             label_selector=selector)
        return [load_dict(_plain(item) | {"kind": "WorkflowTemplate"}, source=item.metadata.name)
                for item in (listing.items or [])]

    def get_template(self, name: str) -> Template:
        item = self._call(f"template {name}", self.service.get_workflow_template, name, namespace=self.namespace)
        return load_dict(_plain(item) | {"kind": "WorkflowTemplate"}, source=name)

    def submit(self, filled: Filled, name: str | None = None, output_prefix: str | None = None) -> ArgoServerRun:
        from hera.workflows.models import Workflow, WorkflowCreateRequest

        body = workflow_manifest(filled, name or run_name(filled.template.name), self.namespace,
                                 output_prefix=output_prefix, service_account=self.service_account)
        created = self._call("submit", self.service.create_workflow,
                             WorkflowCreateRequest(workflow=Workflow.model_validate(body)), namespace=self.namespace)
        return ArgoServerRun(self, _plain(created) or body)

    def get_workflow(self, name: str) -> dict[str, Any]:
        return _plain(self._call(f"run {name}", self.service.get_workflow, name, namespace=self.namespace))

    def run(self, name: str) -> ArgoServerRun:
        return ArgoServerRun(self, self.get_workflow(name))

    def runs(self, labels: dict[str, str] | None = None) -> list[ArgoServerRun]:
        selector = ",".join(f"{k}={v}" for k, v in {"app.kubernetes.io/managed-by": "cvatflow",
                                                    **(labels or {})}.items())
        listing = self._call("list runs", self.service.list_workflows, namespace=self.namespace,
                             label_selector=selector)
        items = [_plain(w) for w in (listing.items or [])]
        items.sort(key=lambda w: (w.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
        return [ArgoServerRun(self, w) for w in items]

    # -- lifecycle, through the workflow service's endpoints (PUT .../stop, /terminate, /retry, /resubmit) ----

    def shutdown(self, name: str, strategy: str) -> None:
        from hera.workflows.models import WorkflowStopRequest, WorkflowTerminateRequest

        if strategy == "Stop":
            self._call(f"stop {name}", self.service.stop_workflow, name,
                       WorkflowStopRequest(name=name, namespace=self.namespace), namespace=self.namespace)
        else:
            self._call(f"terminate {name}", self.service.terminate_workflow, name,
                       WorkflowTerminateRequest(name=name, namespace=self.namespace), namespace=self.namespace)

    def retry_workflow(self, name: str) -> None:
        from hera.workflows.models import WorkflowRetryRequest

        self._call(f"retry {name}", self.service.retry_workflow, name,
                   WorkflowRetryRequest(name=name, namespace=self.namespace), namespace=self.namespace)

    def resubmit(self, run: Run, name: str | None = None) -> ArgoServerRun:
        """The Argo Server names the new run itself (the old name and a suffix); `name` cannot be chosen."""
        from hera.workflows.models import WorkflowResubmitRequest

        if name:
            raise RunError("the Argo Server names a resubmitted run itself; resubmit without a name")
        created = self._call(f"resubmit {run.name}", self.service.resubmit_workflow, run.name,
                             WorkflowResubmitRequest(name=run.name, namespace=self.namespace),
                             namespace=self.namespace)
        return ArgoServerRun(self, _plain(created))

    def delete_workflow(self, name: str) -> None:
        self._call(f"delete {name}", self.service.delete_workflow, name, namespace=self.namespace)

    def workflow_logs(self, name: str, step: str | None = None) -> str:
        """The log stream is newline-delimited JSON, which hera's own method cannot read, so read it directly."""
        import json

        import requests

        params = {"logOptions.container": "main"}
        headers = {"Authorization": self.token if (self.token or "").startswith("Bearer ") else f"Bearer {self.token}"} \
            if self.token else {}
        try:
            response = requests.get(f"{self.url}/api/v1/workflows/{self.namespace}/{name}/log", params=params,
                                    headers=headers, stream=True, timeout=30)
        except requests.exceptions.ConnectionError:
            raise RunError(f"cannot reach the Argo Server at {self.url}") from None
        if response.status_code == 404:
            raise NotFoundError(f"no run {name!r} on the Argo Server")
        lines = []
        for raw in response.iter_lines(decode_unicode=True):
            if not raw:
                continue
            result = (json.loads(raw).get("result") or {})
            if step is None or step in result.get("podName", ""):
                lines.append(result.get("content", ""))
        return "\n".join(lines) + ("\n" if lines else "")
