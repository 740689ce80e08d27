"""Runs and jobs as API answers: an execution is a preparation job, then the run it submitted."""
from __future__ import annotations

from cvatflow.api.jobs import Job, JobStore
from cvatflow.api.models import Execution, ExecutionSummary, Metrics, Step
from cvatflow.argo import Phase
from cvatflow.events import Summary
from cvatflow.numbers import whole_number
from cvatflow.one_value import from_annotations
from cvatflow.runs.run import Run, RunStatus
from cvatflow.storage.keys import key_in_store

TASK_LABEL = "cvatflow.io/cvat-task-id"


def _task_id(labels: dict[str, str]) -> int | None:
    return whole_number(labels.get(TASK_LABEL))


def job_phase(job: Job) -> str:
    """Before a run exists: Preparing while the dump and submission go on, Error if they failed."""
    return Phase.ERROR if job.state == "failed" else Phase.PREPARING


def summary_of_job(jobs: JobStore, job: Job) -> ExecutionSummary:
    snap = jobs.snapshot(job)
    return ExecutionSummary(id=job.execution or job.id, template=job.template, phase=job_phase(job),
                            cvatTask=job.cvat_task, startedAt=snap.createdAt, message=snap.message,
                            labels=dict(job.labels))


def summary_of_status(status: RunStatus, best_map: float | None = None) -> ExecutionSummary:
    return ExecutionSummary(id=status.name, template=status.template, phase=status.phase, progress=status.progress,
                            cvatTask=_task_id(status.labels), startedAt=status.started_at,
                            finishedAt=status.finished_at, message=status.message, labels=dict(status.labels),
                            bestMap=best_map)


def metrics_of(summary: Summary) -> Metrics:
    return Metrics(epoch=summary.epoch, step=summary.step, totalSteps=summary.total_steps, train=summary.train,
                   val=summary.val, bestMap=summary.best_map, checkpoints=summary.checkpoints,
                   history=summary.history)


def execution_of_job(jobs: JobStore, job: Job) -> Execution:
    snap = jobs.snapshot(job)
    return Execution(**summary_of_job(jobs, job).model_dump(), preparation=snap, problems=snap.problems)


def execution_of_run(run: Run, job: Job | None, jobs: JobStore, store_uri: str = "") -> Execution:
    status = run.status()
    outputs = run.outputs()
    key = key_in_store(outputs["output"], store_uri) if outputs.get("output") and store_uri else None
    metrics = metrics_of(run.metrics())
    steps = [Step(name=s.name, phase=s.phase, startedAt=s.started_at, finishedAt=s.finished_at, message=s.message,
                  template=s.template) for s in status.steps]
    return Execution(**summary_of_status(status, metrics.bestMap).model_dump(), parameters=dict(status.parameters),
                     hyperparameters=from_annotations(status.annotations), steps=steps, preparation=jobs.snapshot(job) if job else None, metrics=metrics,
                     outputs=outputs, outputKey=key or None)
