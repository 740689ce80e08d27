"""Annotate a CVAT task with a finished run's model: submit the annotate-task template and follow it (a job)."""
from __future__ import annotations

import time
from typing import Any

from cvatflow import events as ev
from cvatflow.api.jobs import Job
from cvatflow.api.launch import ConflictError
from cvatflow.api.services import Services
from cvatflow.argo import Phase
from cvatflow.auto_annotate import Request, model_key, submit
from cvatflow.errors import CvatflowError

POLL_SECONDS = 1.0


def start(services: Services, execution: str, cvat_task: int, threshold: float,
          clear_existing: bool = False) -> Job:
    """Check the run is finished and has a model and that the task exists, then queue the annotation; returns the
    job. The job submits a Workflow of annotate-task (on the cluster's GPU node pool, or the local executor) and
    follows it: `stage` is the run's name, done/total the frames annotated."""
    run = services.client.run(execution)  # 404 for an unknown execution
    try:
        model_key(services.client, execution)
    except CvatflowError as exc:
        raise ConflictError(str(exc)) from None
    services.cvat().task(cvat_task)  # 404 now for a task that does not exist
    job = services.jobs.create("annotate", execution=execution, cvat_task=cvat_task, template=run.status().template)

    def work(job: Job) -> dict[str, Any]:
        return _annotate(services, job, Request(execution, cvat_task, threshold, clear_existing))

    services.jobs.start(job, work)
    return job


def _annotate(services: Services, job: Job, request: Request) -> dict[str, Any]:
    jobs = services.jobs
    jobs.update(job, stage="submitting")
    run = submit(services.client, request)
    jobs.update(job, stage=f"annotating ({run.name})")
    while True:
        status = run.status()
        progress = [e for e in run.events() if e.get("event_type") == ev.PROGRESS and e.get("subtask") == "annotate"]
        if progress:
            jobs.update(job, done=int(progress[-1].get("current") or 0), total=int(progress[-1].get("total") or 0))
        if status.done:
            break
        time.sleep(POLL_SECONDS)
    if status.phase != Phase.SUCCEEDED:
        tail = " | ".join(run.logs().strip().splitlines()[-3:])
        raise CvatflowError(f"annotation run {run.name} {status.phase}: {status.message or tail or 'no log'}")
    return {"cvatTask": request.cvat_task, "run": run.name, "threshold": request.threshold,
            "annotations": services.cvat().annotation_counts(request.cvat_task)}
