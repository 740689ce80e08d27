"""Annotate a CVAT task with a run's model: the annotate-task step's body, and its submission as a Workflow."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cvatflow import events
from cvatflow.errors import CvatflowError

log = logging.getLogger(__name__)
TEMPLATE = "annotate-task"
ANNOTATES_LABEL = "cvatflow.io/annotates"  # the run whose model a Workflow of annotate-task applies
TASK_LABEL = "cvatflow.io/cvat-task-id"


def annotate(model: str, cvat_url: str, task_id: int, threshold: float = 0.5, clear_existing: bool = False,
             shape: str = "auto", token: str | None = None, device: str | None = None) -> dict[str, Any]:
    """Run the model state at `model` (folder, .tar or store URI) over CVAT task `task_id` and upload its shapes
    (cvat_sdk.auto_annotation.annotate_task): added to the task's annotations, or replacing them with
    `clear_existing`. Model classes are matched to the task's labels by name; those the task lacks are reported
    and skipped. Emits progress events (subtask "annotate", frames done of total) on stdout; returns counts."""
    from cvatflow.cvat import CvatClient
    from cvatflow.cvat_function import create

    function = create(model=model, threshold=threshold, shape="" if shape == "auto" else shape,
                      device=device or "")
    with CvatClient(cvat_url, token) as client:
        labels = set(client.labels(task_id))
        classes = list(function.state.classes)
        unmatched = [c for c in classes if c not in labels]
        if len(unmatched) == len(classes):
            raise CvatflowError(f"task {task_id}: none of the model's classes ({', '.join(classes)}) is a label of "
                                f"the task ({', '.join(sorted(labels)) or 'no labels'}); labels match by name")
        if unmatched:
            print(f"note: the task has no label {', '.join(unmatched)}; the model's detections of "
                  f"{'it' if len(unmatched) == 1 else 'them'} are skipped", flush=True)

        def progress(done: int, total: int) -> None:
            events.emit(events.progress("annotate", done, total))

        from cvat_sdk.auto_annotation import BadFunctionError

        try:
            # shape=polygon makes the function trace polygons itself, so CVAT's conv_mask_to_poly stays off.
            client.auto_annotate(task_id, function, threshold=threshold, clear_existing=clear_existing,
                                 progress=progress)
        except BadFunctionError as exc:  # e.g. a label whose CVAT type is not the shape the model gives
            raise CvatflowError(f"task {task_id}: {exc}; choose the shape the task's labels take (--shape "
                                f"mask, polygon or rectangle) or set those labels to type 'any' in CVAT") from None
    counts = function.counts
    print(f"task {task_id}: {counts} uploaded ({'replacing' if clear_existing else 'added to'} its annotations; "
          f"score >= {threshold})", flush=True)
    return {"cvatTask": task_id, "detections": counts.detections, "shapes": counts.shapes,
            "droppedEmpty": counts.dropped_empty, "unmatchedLabels": unmatched, "threshold": threshold}


@dataclass
class Request:
    """What to annotate: CVAT task `cvat_task` with the model of run `run`."""

    run: str
    cvat_task: int
    threshold: float = 0.5
    clear_existing: bool = False
    shape: str = "auto"
    node_pool: str | None = None


def model_key(client, run_name: str) -> str:
    """The store key of a finished run's model/ folder; RunError/ConflictError-like CvatflowErrors otherwise."""
    run = client.run(run_name)
    status = run.status()
    if status.phase != "Succeeded":
        raise CvatflowError(f"run {run_name} is {status.phase}; only a Succeeded run has a model to apply")
    uri = run.outputs().get("model")
    if not uri:
        raise CvatflowError(f"run {run_name} has no model output (its template uploads no /mnt/output)")
    root = client.settings.store.rstrip("/") + "/"
    if not uri.startswith(root):
        raise CvatflowError(f"the model of run {run_name} ({uri}) is not in the configured store {root}")
    return uri[len(root):]


def submit(client, request: Request, wait: bool = False):
    """Start a Workflow of the annotate-task template for `request` through `client` (a cvatflow.runs.Client);
    returns the Run. The run's model is checked to exist first."""
    parameters = {"model-path": model_key(client, request.run), "cvat-task-id": str(request.cvat_task),
                  "threshold": str(request.threshold), "clear-existing": str(bool(request.clear_existing)).lower(),
                  "shape": request.shape}
    if request.node_pool:
        parameters["sys-node-pool"] = request.node_pool
    labels = {ANNOTATES_LABEL: request.run, TASK_LABEL: str(request.cvat_task)}
    return client.execute(TEMPLATE, parameters=parameters, labels=labels, wait=wait)
