"""Argo's vocabulary in one place: API names, labels, the Workflow manifest, status parsing and the Phase enum."""
from __future__ import annotations

import secrets
from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # run.py imports this module; the status types are imported where they are built
    from cvatflow.params import Filled
    from cvatflow.runs.run import RunStatus

GROUP, VERSION = "argoproj.io", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
WORKFLOWS, WORKFLOW_TEMPLATES = "workflows", "workflowtemplates"  # plurals in the API paths
# Argo labels a Workflow submitted from a WorkflowTemplate with the template's name.
TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"
MANAGED_BY = "app.kubernetes.io/managed-by"
OUTPUT_PREFIX_ANNOTATION = "cvatflow.io/output-prefix"
# Characters Argo's generateName suffix uses (no vowels, so no words).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class Phase(StrEnum):
    """Where a run stands: Argo's Workflow and node phases, then cvatflow's own before submission.

    A `str` enum, so `Phase.SUCCEEDED == "Succeeded"` and JSON carries the plain string.
    """

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERROR = "Error"
    SKIPPED = "Skipped"  # node phases (a `when:` that was false, an omitted step)
    OMITTED = "Omitted"
    # cvatflow's: the operator refused the TrainingRun (nothing submitted), or created a Workflow Argo has
    # not picked up yet.
    INVALID = "Invalid"
    SUBMITTED = "Submitted"
    # The API's: the export and the submission are under way, no Workflow yet.
    PREPARING = "Preparing"

    @property
    def done(self) -> bool:
        """True for phases a run never leaves (Invalid included: nothing will run)."""
        return self in FINISHED or self is Phase.INVALID

    @classmethod
    def of(cls, value: str | None, default: Phase | None = None) -> Phase | str:
        """`value` as a Phase; an unknown string from a newer Argo is kept as it is, not refused."""
        if not value:
            return default or cls.PENDING
        try:
            return cls(value)
        except ValueError:
            return value


#: A run in one of these phases has finished.
FINISHED = (Phase.SUCCEEDED, Phase.FAILED, Phase.ERROR)
#: The phases of Argo itself (a Workflow's status.phase), in order of a run's life.
ARGO_PHASES = (Phase.PENDING, Phase.RUNNING, Phase.SUCCEEDED, Phase.FAILED, Phase.ERROR)


def run_name(template: str) -> str:
    """A fresh run name like Argo's generateName gives: `<template>-<5 characters>` (at most 63 characters)."""
    return f"{template[:57]}-{''.join(secrets.choice(_NAME_ALPHABET) for _ in range(5))}"


def workflow_manifest(filled: Filled, name: str, namespace: str, owner: dict[str, Any] | None = None,
                      output_prefix: str | None = None, service_account: str | None = None) -> dict[str, Any]:
    """The Workflow that runs `filled.template` (by reference) with its filled parameters and labels.

    `output_prefix` (a store URI) is recorded in an annotation so every reader finds the outputs;
    `owner` is an ownerReference (the operator's TrainingRun); `service_account` the pods run as.
    """
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {**filled.labels, TEMPLATE_LABEL: filled.template.name},
    }
    annotations = dict(filled.annotations)  # the effective hyperparameters and their sources
    if output_prefix:
        annotations[OUTPUT_PREFIX_ANNOTATION] = output_prefix
    if annotations:
        metadata["annotations"] = annotations
    if owner:
        metadata["ownerReferences"] = [owner]
    spec: dict[str, Any] = {
        "workflowTemplateRef": {"name": filled.template.name},
        "arguments": {"parameters": filled.arguments()},
    }
    if service_account:  # the chart's service account, allowed what Argo's executor needs
        spec["serviceAccountName"] = service_account
    return {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": metadata, "spec": spec}


def progress(phases: Iterable[str | None]) -> str:
    """Argo's `status.progress`, "N/M", from the phases of a run's step (pod) nodes.

    M counts the steps the run has started so far (a skipped or omitted task makes no pod, and one not reached
    yet has no node, so M grows as the run goes); N counts those of them that ended, whatever the outcome.
    Source: argo-workflows docs/progress.md and workflow/progress (a pod node is 1/1 once `Fulfilled()`).
    """
    started = [p for p in phases if p in (Phase.PENDING, Phase.RUNNING, *FINISHED)]
    return f"{sum(p in FINISHED for p in started)}/{len(started)}"


def output_prefix_of(workflow: dict[str, Any]) -> str | None:
    """The output prefix recorded on a Workflow by `workflow_manifest`, or None."""
    return ((workflow.get("metadata") or {}).get("annotations") or {}).get(OUTPUT_PREFIX_ANNOTATION)


def status_from_workflow(workflow: dict[str, Any]) -> RunStatus:
    """Argo's Workflow status as a RunStatus (Pending until the controller has seen it)."""
    from cvatflow.runs.run import RunStatus, StepStatus

    metadata = workflow.get("metadata") or {}
    spec = workflow.get("spec") or {}
    status = workflow.get("status") or {}
    steps = []
    for node in (status.get("nodes") or {}).values():
        if node.get("type") in ("Pod", "Retry") and not (node.get("type") == "Pod" and _has_retry_parent(node, status)):
            steps.append(StepStatus(
                name=node.get("displayName") or node.get("name", ""),
                phase=Phase.of(node.get("phase")),
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
        phase=Phase.of(status.get("phase")),
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


def pod_name(workflow: str, node_id: str, node: dict[str, Any]) -> str:
    """The pod of a node, in Argo's v2 pod names: `<workflow>-<template>-<hash>` (the node id's suffix)."""
    suffix = node_id.rsplit("-", 1)[-1]
    return f"{workflow}-{node.get('templateName')}-{suffix}" if node.get("templateName") else node_id
