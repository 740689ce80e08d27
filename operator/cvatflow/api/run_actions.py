"""/api/v1/executions/{id}/stop|terminate|retry|resubmit and DELETE: a run's lifecycle, as Argo offers it."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from cvatflow.api.auth import require_token
from cvatflow.api.errors import ERROR_RESPONSES
from cvatflow.api.executions import ExecutionId, ServicesDep
from cvatflow.api.models import RUN_NAME, ErrorBody, ExecutionSummary
from cvatflow.api.present import summary_of_status
from cvatflow.errors import Problem as ProblemItem
from cvatflow.errors import ProblemsError

router = APIRouter(prefix="/api/v1/executions", tags=["executions"], dependencies=[Depends(require_token)],
                   responses=ERROR_RESPONSES)
CONFLICT = {409: {"model": ErrorBody, "description": "The run is not in a phase this action applies to."}}


class Resubmitted(BaseModel):
    id: str = Field(description="The new execution's id (run name).")
    resubmittedFrom: str


class Deleted(BaseModel):
    id: str
    outputsDeleted: int = Field(0, description="Objects removed from the store (only with outputs=true).")


def _after(services, id: str) -> ExecutionSummary:
    return summary_of_status(services.client.run(id).status())


@router.post("/{id}/stop", response_model=ExecutionSummary, responses=CONFLICT, summary="Stop a running execution")
def stop_execution(id: ExecutionId, services: ServicesDep) -> ExecutionSummary:
    """Argo's stop: no new step starts, the running step is asked to end (training keeps its last.pt)."""
    services.client.run(id).stop()
    return _after(services, id)


@router.post("/{id}/terminate", response_model=ExecutionSummary, responses=CONFLICT,
             summary="Terminate a running execution now")
def terminate_execution(id: ExecutionId, services: ServicesDep) -> ExecutionSummary:
    services.client.run(id).terminate()
    return _after(services, id)


@router.post("/{id}/retry", response_model=ExecutionSummary, responses=CONFLICT,
             summary="Retry a Failed or Error execution's failed steps (succeeded ones are kept)")
def retry_execution(id: ExecutionId, services: ServicesDep) -> ExecutionSummary:
    services.client.run(id).retry()
    return _after(services, id)


@router.post("/{id}/resubmit", status_code=202, response_model=Resubmitted,
             summary="Start a new execution with the same template, parameters and labels")
def resubmit_execution(id: ExecutionId, services: ServicesDep) -> Resubmitted:
    new = services.client.resubmit(services.client.run(id))
    return Resubmitted(id=new.name, resubmittedFrom=id)


@router.delete("/{id}", response_model=Deleted, summary="Delete an execution (terminated first if running)")
def delete_execution(
    id: ExecutionId,
    services: ServicesDep,
    confirm: Annotated[str, Query(pattern=RUN_NAME, description="The execution id again, to confirm.")],
    outputs: Annotated[bool, Query(description="Also delete its outputs in the store.")] = False,
) -> Deleted:
    """Its outputs in the store stay unless `outputs=true`; `confirm` must repeat the id."""
    if confirm != id:
        raise ProblemsError("delete", [ProblemItem("confirm", f"{confirm!r} is not the execution id {id!r}",
                                                   "repeat the execution id in confirm")])
    removed = services.client.delete(id, outputs=outputs)
    return Deleted(id=id, outputsDeleted=removed)
