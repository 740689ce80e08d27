"""GET /api/v1/jobs[/{id}]: the background work the API is doing or did (exports, submissions, annotations)."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from cvatflow.api.auth import require_token
from cvatflow.api.errors import ERROR_RESPONSES
from cvatflow.api.models import Job, JobList
from cvatflow.api.services import Services, get_services
from cvatflow.errors import NotFoundError

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], dependencies=[Depends(require_token)],
                   responses=ERROR_RESPONSES)
ServicesDep = Annotated[Services, Depends(get_services)]


@router.get("", response_model=JobList, summary="Jobs held in memory, newest first")
def list_jobs(services: ServicesDep,
              kind: Annotated[Literal["execution", "annotate"] | None, Query()] = None) -> JobList:
    items = [services.jobs.snapshot(j) for j in services.jobs.all(kind)]
    return JobList(count=len(items), items=items)


@router.get("/{id}", response_model=Job, summary="One job: state, stage, progress, problems, result")
def get_job(id: Annotated[str, Path(max_length=128)], services: ServicesDep) -> Job:
    job = services.jobs.get(id)
    if job is None:
        raise NotFoundError(f"no job {id!r}; jobs are kept in memory until the server restarts")
    return services.jobs.snapshot(job)
