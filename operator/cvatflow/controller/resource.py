"""The TrainingRun resource: its API names, phases, labels, owner references and status conditions."""
from __future__ import annotations

from typing import Any

from cvatflow.argo import FINISHED, Phase
from cvatflow.runs.run import now

GROUP, VERSION, PLURAL, KIND = "cvatflow.io", "v1alpha1", "trainingruns", "TrainingRun"
API_VERSION = f"{GROUP}/{VERSION}"
# The Workflow carries this label so the operator finds the TrainingRun it belongs to.
RUN_LABEL = "cvatflow.io/trainingrun"
FINALIZER = "cvatflow.io/finalizer"

# Phases: Pending (accepted, not yet submitted), Invalid (nothing submitted; see problems), then Argo's own.
PENDING, INVALID, SUBMITTED = Phase.PENDING, Phase.INVALID, Phase.SUBMITTED
RUNNING, SUCCEEDED, FAILED, ERROR = Phase.RUNNING, Phase.SUCCEEDED, Phase.FAILED, Phase.ERROR
DONE = FINISHED


def workflow_name(run_name: str) -> str:
    """The one Workflow of a run: its name is the run's, so a retried or resumed create finds it (409)."""
    return run_name


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    """The ownerReference that makes Kubernetes' garbage collector delete the Workflow with its run."""
    metadata = body.get("metadata") or {}
    return {"apiVersion": body.get("apiVersion", API_VERSION), "kind": body.get("kind", KIND),
            "name": metadata["name"], "uid": metadata["uid"], "controller": True, "blockOwnerDeletion": True}


def owner_body(workflow: dict[str, Any]) -> dict[str, Any] | None:
    """The TrainingRun a Workflow belongs to, as a body Events can be posted on (None if not ours)."""
    metadata = workflow.get("metadata") or {}
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
            return {"apiVersion": ref["apiVersion"], "kind": KIND,
                    "metadata": {"name": ref["name"], "namespace": metadata.get("namespace"), "uid": ref.get("uid")}}
    return None


def set_condition(conditions: list[dict[str, Any]] | None, type_: str, status: bool, reason: str,
                  message: str = "", generation: int | None = None) -> list[dict[str, Any]]:
    """The conditions with `type_` set; its transition time moves only when its status changes."""
    out = [dict(c) for c in (conditions or []) if c.get("type") != type_]
    previous = next((c for c in conditions or [] if c.get("type") == type_), None)
    value = "True" if status else "False"
    changed = previous is None or previous.get("status") != value
    condition = {"type": type_, "status": value, "reason": reason, "message": message,
                 "lastTransitionTime": now() if changed else previous.get("lastTransitionTime", now())}
    if generation is not None:
        condition["observedGeneration"] = generation
    out.append(condition)
    return out
