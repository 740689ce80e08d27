"""A run that is an Argo Workflow object (kubernetes and argo-server backends), and Argo's retry and resubmit."""
from __future__ import annotations

import copy
from typing import Any

from cvatflow.argo import OUTPUT_PREFIX_ANNOTATION, Phase, output_prefix_of, status_from_workflow
from cvatflow.errors import ConflictError, RunError
from cvatflow.runs.run import Run, RunStatus

COMPLETED_LABEL = "workflows.argoproj.io/completed"
PHASE_LABEL = "workflows.argoproj.io/phase"
RESUBMITTED_FROM = "workflows.argoproj.io/resubmitted-from-workflow"


class WorkflowRun(Run):
    """A Workflow read back from a cluster; the backend gives `get_workflow`, `shutdown`, `retry_workflow`
    and `delete_workflow`, each in its own API's words."""

    def __init__(self, backend, workflow: dict[str, Any]) -> None:
        status = status_from_workflow(workflow)
        super().__init__(status.name, status.template)
        self.backend = backend
        self._workflow = workflow

    def refresh(self) -> dict[str, Any]:
        self._workflow = self.backend.get_workflow(self.name)
        return self._workflow

    def status(self) -> RunStatus:
        return status_from_workflow(self.refresh())

    def output_prefix(self) -> str | None:
        return output_prefix_of(self._workflow)

    def _shutdown(self, strategy: str) -> None:
        self.backend.shutdown(self.name, strategy)

    def retry(self) -> None:
        """Argo's retry: failed steps run again, succeeded ones are kept (RunError unless Failed or Error)."""
        self.backend.retry_workflow(self.name)

    def delete(self, outputs: bool = False, store=None) -> int:
        """Delete the Workflow (Argo ends its pods); with `outputs`, also its output under `store`."""
        removed = delete_outputs(self, store) if outputs else 0
        self.backend.delete_workflow(self.name)
        return removed


def delete_outputs(run: Run, store) -> int:
    """Remove a run's output prefix from `store` (never the store's root, never outside it); objects removed."""
    from cvatflow.storage.keys import key_in_store

    prefix = run.output_prefix()
    if not prefix:
        return 0
    if store is None:
        raise RunError(f"run {run.name}: deleting its outputs needs the store they are in")
    key = key_in_store(prefix, store.uri_for(""))
    return store.delete_prefix(key.rstrip("/")) if key else 0


def retried(workflow: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """`workflow` as Argo's retry leaves it (workflow/util FormulateRetryWorkflow): phase Running, no finish
    time or message, the shutdown cleared, Failed/Error/Omitted pods' nodes removed so they run again, the
    failed DAG or Steps nodes above them Running again, succeeded nodes kept. Returns it and the removed
    nodes by id (their pods must go). RunError unless the Workflow ended Failed or Error."""
    wf = copy.deepcopy(workflow)
    status = wf.setdefault("status", {})
    name = (wf.get("metadata") or {}).get("name")
    if status.get("phase") not in (Phase.FAILED, Phase.ERROR):
        raise ConflictError(f"run {name} is {status.get('phase') or 'Pending'}; only a Failed or Error run can be "
                       f"retried (stop or terminate it first)")
    (wf.get("spec") or {}).pop("shutdown", None)
    labels = wf.setdefault("metadata", {}).setdefault("labels", {})
    labels.pop(COMPLETED_LABEL, None)
    labels.pop(PHASE_LABEL, None)
    status.update(phase=Phase.RUNNING, message="")
    status.pop("finishedAt", None)
    nodes = status.get("nodes") or {}
    removed: dict[str, dict[str, Any]] = {}
    for node_id, node in list(nodes.items()):
        if node.get("phase") in (Phase.SUCCEEDED, Phase.SKIPPED):
            continue
        if node.get("type") == "Pod" or node.get("phase") == Phase.OMITTED:
            removed[node_id] = nodes.pop(node_id)
        else:  # a DAG, Steps or retry node: running again
            node.update(phase=Phase.RUNNING, message="")
            node.pop("finishedAt", None)
    for node in nodes.values():
        if node.get("children"):
            node["children"] = [c for c in node["children"] if c not in removed]
    return wf, removed


def retry_patch(workflow: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """`retried` as a JSON merge patch (null removes a key), so a retry does not overwrite what the controller
    writes meanwhile to other fields; with the removed nodes by id."""
    wf, removed = retried(workflow)
    before = (workflow.get("status") or {}).get("nodes") or {}
    after = wf["status"].get("nodes") or {}
    nodes: dict[str, Any] = {node_id: None for node_id in removed}
    nodes.update({node_id: node for node_id, node in after.items() if before.get(node_id) != node})
    patch = {"spec": {"shutdown": None},
             "metadata": {"labels": {COMPLETED_LABEL: None, PHASE_LABEL: None}},
             "status": {"phase": Phase.RUNNING.value, "message": "", "finishedAt": None, "nodes": nodes}}
    return patch, removed


def resubmitted(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    """A new Workflow `name` with `workflow`'s spec, labels and parameters (Argo's resubmit): no status, no
    shutdown, a label naming where it came from; the output prefix moves to the new name."""
    metadata = workflow.get("metadata") or {}
    old = metadata.get("name", "")
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if not k.startswith("workflows.argoproj.io/")}
    labels[RESUBMITTED_FROM] = old
    annotations = dict(metadata.get("annotations") or {})
    prefix = annotations.get(OUTPUT_PREFIX_ANNOTATION)
    if prefix and old and prefix.rstrip("/").endswith("/" + old):
        annotations[OUTPUT_PREFIX_ANNOTATION] = prefix.rstrip("/")[: -len(old)] + name + \
            ("/" if prefix.endswith("/") else "")
    spec = copy.deepcopy(workflow.get("spec") or {})
    spec.pop("shutdown", None)
    body = {"apiVersion": workflow.get("apiVersion", "argoproj.io/v1alpha1"), "kind": "Workflow",
            "metadata": {"name": name, "labels": labels, "annotations": annotations}, "spec": spec}
    if metadata.get("namespace"):
        body["metadata"]["namespace"] = metadata["namespace"]
    if metadata.get("ownerReferences"):
        body["metadata"]["ownerReferences"] = metadata["ownerReferences"]
    return body
