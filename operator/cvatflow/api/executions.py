"""/api/v1/executions: start a template on a CVAT task or dataset, follow it (status, SSE events, logs), annotate."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from cvatflow.api import annotate, launch
from cvatflow.api.models import (
    RUN_NAME,
    AnnotateRequest,
    ErrorBody,
    Execution,
    ExecutionList,
    ExecutionRequest,
    ExecutionSummary,
    Job,
)
from cvatflow.api.present import execution_of_job, execution_of_run, summary_of_job, summary_of_status
from cvatflow.api.routing import ServicesDep, api_router
from cvatflow.api.templates import parse_labels
from cvatflow.argo import Phase, status_from_workflow
from cvatflow.errors import NotFoundError
from cvatflow.numbers import whole_number
from cvatflow.storage.keys import key_in_store

router = api_router("/api/v1/executions", "executions")
ExecutionId = Annotated[str, Path(pattern=RUN_NAME, description="The execution id, which is the run name.")]
CONFLICT = {409: {"model": ErrorBody, "description": "The name is taken, or the run is not finished."}}


@router.post("", status_code=202, response_model=Execution, responses=CONFLICT, summary="Start an execution")
def create_execution(body: ExecutionRequest, services: ServicesDep) -> Execution:
    """Checks the request and the parameters at once (422/404), then exports the CVAT task and submits the
    run in the background: follow `preparation` on GET, or the events stream."""
    job = launch.start(services, launch.Launch(
        template=body.template, cvat_task=body.cvatTask, cvat_job=body.cvatJob, dataset=body.dataset,
        parameters=dict(body.parameters), labels=dict(body.labels), name=body.name))
    return execution_of_job(services.jobs, job)


@router.get("", response_model=ExecutionList, summary="List executions, newest first")
def list_executions(
    services: ServicesDep,
    template: Annotated[str | None, Query(max_length=253)] = None,
    phase: Annotated[str | None, Query(max_length=32)] = None,
    cvatTask: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    label: Annotated[list[str] | None, Query(description="key=value")] = None,
    withMetrics: Annotated[bool, Query(description="Read each run's events for bestMap (slower).")] = False,
) -> ExecutionList:
    labels = parse_labels(label or [])
    if cvatTask is not None:
        labels["cvatflow.io/cvat-task-id"] = str(cvatTask)
    items: list[ExecutionSummary] = []
    submitted = set()
    if not withMetrics and hasattr(services.client, "statuses"):
        # The local backend answers from its index; the cluster backends read each Workflow's own status.
        for status in services.client.statuses(labels or None):
            submitted.add(status.name)
            items.append(summary_of_status(status))
    for run in services.client.runs(labels or None) if withMetrics or not hasattr(services.client, "statuses") else ():
        # A listed Workflow already carries its status: reading it again would cost a request per run.
        workflow = getattr(run, "_workflow", None)
        try:
            status = status_from_workflow(workflow) if isinstance(workflow, dict) else run.status()
        except (OSError, ValueError):
            continue  # a local run folder still being laid out; its job is listed below meanwhile
        submitted.add(status.name)
        best = run.metrics().best_map if withMetrics else None
        items.append(summary_of_status(status, best))
    pending = [summary_of_job(services.jobs, j) for j in services.jobs.all("execution")
               if j.execution not in submitted and j.state != "succeeded"
               and all(j.labels.get(k) == v for k, v in labels.items() if k != "cvatflow.io/cvat-task-id")
               and (cvatTask is None or j.cvat_task == cvatTask)]
    items = pending + items
    items = [i for i in items if (template is None or i.template == template) and (phase is None or i.phase == phase)]
    return ExecutionList(count=len(items), items=items)


@router.get("/{id}", response_model=Execution, summary="An execution: phase, progress, metrics, outputs, errors")
def get_execution(id: ExecutionId, services: ServicesDep) -> Execution:
    job = services.jobs.get(id)
    if job is not None and job.kind == "execution" and job.state != "succeeded":
        return execution_of_job(services.jobs, job)
    return execution_of_run(services.client.run(id), job, services.jobs, services.settings.store)


def existing(id: ExecutionId, services: ServicesDep) -> str:
    """Dependency: a 404 before a stream starts, rather than an empty stream."""
    if services.jobs.get(id) is None:
        services.client.run(id)
    return id


@router.get("/{id}/events", response_class=EventSourceResponse,
            summary="Server-sent events: preparation, status, training events, end")
async def execution_events(
    request: Request,
    id: Annotated[str, Depends(existing)],
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> AsyncIterable[ServerSentEvent]:
    """`preparation` (the export/submit job), `status` (phase, progress, steps) on each change, `training`
    for each JSON event the training printed (id = its index, so a reconnect resumes), then `end`."""
    interval = services.settings.events_interval
    # "²" or 5,000 digits broke the stream with a traceback in the server log; anything but a small whole number
    # starts from the first event.
    last = whole_number(last_event_id)
    sent = last + 1 if last is not None else 0
    job_version, status_key = -1, None
    while not await request.is_disconnected():
        job = services.jobs.get(id)
        if job is not None and job.kind == "execution" and job.version != job_version:
            job_version = job.version
            yield ServerSentEvent(event="preparation", data=services.jobs.snapshot(job).model_dump())
        if job is not None and job.state == "failed":
            yield ServerSentEvent(event="end", data={"phase": Phase.ERROR, "message": job.message})
            return
        if job is None or job.state == "succeeded":
            try:
                run = await asyncio.to_thread(services.client.run, id)
            except NotFoundError:
                await asyncio.sleep(interval)
                continue
            status = await asyncio.to_thread(run.status)
            key = (status.phase, status.progress, tuple((s.name, s.phase) for s in status.steps))
            if key != status_key:
                status_key = key
                yield ServerSentEvent(event="status", data={
                    **summary_of_status(status).model_dump(),
                    "steps": [{"name": s.name, "phase": s.phase} for s in status.steps]})
            events = await asyncio.to_thread(run.events)
            for index in range(sent, len(events)):
                yield ServerSentEvent(event="training", data=events[index], id=str(index))
            sent = max(sent, len(events))
            if status.done:
                yield ServerSentEvent(event="end", data={"phase": status.phase, "message": status.message})
                return
        await asyncio.sleep(interval)


@router.get("/{id}/logs", response_class=PlainTextResponse, summary="The run's log lines (all steps, or one)",
            responses={200: {"content": {"text/plain": {}}}})
def execution_logs(id: ExecutionId, services: ServicesDep,
                   step: Annotated[str | None, Query(max_length=253)] = None) -> PlainTextResponse:
    job = services.jobs.get(id)
    if job is not None and job.kind == "execution" and job.state != "succeeded":
        lines = [f"[cvatflow] {job.stage}: {job.message}".rstrip(": ")]
        return PlainTextResponse("\n".join(lines) + "\n")
    return PlainTextResponse(services.client.run(id).logs(step))


ReportFile = Annotated[str, Path(pattern=r"^[a-z0-9_]{1,64}\.(png|json)$",
                                 description="A file of report/: metrics.json, pr_curve.png, loss.png, map.png.")]


@router.get("/{id}/report/{file}", summary="A file of the run's report (metrics, PR curve and other plots)",
            responses={200: {"content": {"image/png": {}, "application/json": {}}}})
def report_file(id: ExecutionId, file: ReportFile, services: ServicesDep) -> Response:
    """Read from the run's output in the store; 404 until the training has written it."""
    prefix = services.client.run(id).output_prefix()
    key = key_in_store(prefix, services.settings.store) if prefix else None
    if key is None:
        raise NotFoundError(f"execution {id} has no output in the store (yet)")
    data = services.client.store.get_bytes(f"{key.rstrip('/')}/report/{file}")
    return Response(data, media_type="image/png" if file.endswith(".png") else "application/json")


@router.post("/{id}/annotate", status_code=202, response_model=Job, responses=CONFLICT,
             summary="Annotate a CVAT task with the run's model (a Workflow of the annotate-task template)")
def annotate_task(id: ExecutionId, body: AnnotateRequest, services: ServicesDep) -> Job:
    """Submits annotate-task in the background; follow it with GET /api/v1/jobs/{job id}."""
    job = annotate.start(services, id, body.cvatTask, body.threshold, body.clearExisting)
    return services.jobs.snapshot(job)
