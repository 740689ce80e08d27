"""Annotate a CVAT task with a finished run's model: download it, export the images, predict, upload (a job)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cvatflow import events as ev
from cvatflow.api.jobs import Job
from cvatflow.api.launch import ConflictError
from cvatflow.api.services import Services
from cvatflow.argo import Phase
from cvatflow.errors import CvatflowError, RunError

PREDICTIONS = "annotations/instances_default.json"  # what `cvatflow-train <model> predict` writes for CVAT
COCO_FORMAT = "COCO 1.0"


def predict_command(services: Services) -> list[str]:
    """`cvatflow-train` as this environment runs it (the config may point elsewhere, e.g. a wrapper script)."""
    configured = services.settings.predict_command
    if configured:
        return [str(part) for part in configured]
    return [sys.executable, "-m", "cvatflow.training.cli"]


def start(services: Services, execution: str, cvat_task: int, threshold: float) -> Job:
    """Check the run is finished and has a model, then queue the annotation; returns the job."""
    run = services.client.run(execution)  # 404 for an unknown execution
    status = run.status()
    if status.phase != Phase.SUCCEEDED:
        raise ConflictError(f"execution {execution} is {status.phase}; only a Succeeded run has a model to apply")
    model_uri = run.outputs().get("model")
    if not model_uri:
        raise ConflictError(f"execution {execution} has no model output (its template uploads no /mnt/output)")
    cvat = services.cvat()
    cvat.task(cvat_task)  # 404 now for a task that does not exist
    job = services.jobs.create("annotate", execution=execution, cvat_task=cvat_task, template=status.template)

    def work(job: Job) -> dict[str, Any]:
        return _annotate(services, job, model_uri, cvat_task, threshold, status.template)

    services.jobs.start(job, work)
    return job


def _annotate(services: Services, job: Job, model_uri: str, cvat_task: int, threshold: float,
              template: str) -> dict[str, Any]:
    jobs, cvat = services.jobs, services.cvat()
    with tempfile.TemporaryDirectory(prefix="cvatflow-annotate-") as tmp:
        work = Path(tmp)
        jobs.update(job, stage="downloading model")
        model_dir = _download(services, model_uri, work / "model", jobs.progress(job, "downloading model"))
        jobs.update(job, stage="exporting images", done=0, total=0)
        data_dir = _export_images(cvat, cvat_task, work / "data")
        jobs.update(job, stage="predicting", done=0, total=0)
        output = work / "predictions"
        _predict(services, job, _adapter(model_dir, template), model_dir, data_dir, output, threshold)
        predictions = output / PREDICTIONS
        coco = json.loads(predictions.read_text())
        count, images = len(coco.get("annotations") or []), len(coco.get("images") or [])
        jobs.update(job, stage="uploading")  # done/total keep the prediction's count of images
        cvat.upload_annotations(cvat_task, predictions, format_name=COCO_FORMAT)
    return {"cvatTask": cvat_task, "images": images, "annotations": count, "threshold": threshold}


def _download(services: Services, model_uri: str, target: Path, progress) -> Path:
    store = services.client.store
    root = services.settings.store.rstrip("/") + "/"
    if not model_uri.startswith(root):
        raise RunError(f"the run's model {model_uri} is not in the configured store {root}")
    store.download_prefix(model_uri[len(root):], target, progress=progress)
    return target


def _export_images(cvat, task_id: int, target: Path) -> Path:
    """The task's images, through a COCO export with images (the layout `predict --data` reads)."""
    target.mkdir(parents=True, exist_ok=True)
    archive = cvat.export(task_id, COCO_FORMAT, target.parent / "export.zip", include_images=True)
    from cvatflow.datasets.archive import extract_zip

    extract_zip(Path(archive), target)
    return target


def _adapter(model_dir: Path, template: str) -> str:
    """The model adapter (detr, maskrcnn) named in the model's config.json, else guessed from the template."""
    config = model_dir / "config.json"
    if config.exists():
        name = (json.loads(config.read_text()).get("settings") or {}).get("model")
        if name:
            return str(name)
    for name in ("maskrcnn", "detr"):
        if template.startswith(name):
            return name
    raise CvatflowError(f"cannot tell which model {model_dir} holds: its config.json names no settings.model")


def _predict(services: Services, job: Job, adapter: str, model: Path, data: Path, output: Path,
             threshold: float) -> None:
    command = predict_command(services) + [adapter, "predict", "--model", str(model), "--data", str(data),
                                            "--output", str(output), "--threshold", str(threshold)]
    tail: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL, env=os.environ.copy()) as process:
        for line in process.stdout:
            event = ev.parse_line(line)
            if event and event.get("event_type") == ev.PROGRESS:
                services.jobs.update(job, done=int(event.get("current") or 0), total=int(event.get("total") or 0))
            elif line.strip():
                tail = (tail + [line.rstrip()])[-5:]
    if process.returncode != 0:
        raise CvatflowError(f"prediction failed (exit {process.returncode}): {' | '.join(tail) or 'no output'}")
    if not (output / PREDICTIONS).exists():
        raise CvatflowError(f"prediction wrote no {PREDICTIONS}")

