"""GET /api/v1/cvat/tasks[/{id}]: the configured CVAT's tasks and their labels, for the training dialog."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from cvatflow.api.auth import require_token
from cvatflow.api.errors import ERROR_RESPONSES
from cvatflow.api.models import CvatTaskInfo, CvatTaskList
from cvatflow.api.services import Services, get_services

router = APIRouter(prefix="/api/v1/cvat", tags=["cvat"], dependencies=[Depends(require_token)],
                   responses=ERROR_RESPONSES)
ServicesDep = Annotated[Services, Depends(get_services)]


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def task_info(task: Any) -> CvatTaskInfo:
    labels = [str(_get(label, "name", label)) for label in (_get(task, "labels") or [])]
    project = _get(task, "project_id")
    return CvatTaskInfo(id=int(_get(task, "id")), name=str(_get(task, "name") or ""), labels=labels,
                        projectId=int(project) if project is not None else None,
                        status=str(_get(task, "status") or ""), size=_get(task, "size"))


@router.get("/tasks", response_model=CvatTaskList, summary="The CVAT tasks this server can train on")
def list_tasks(services: ServicesDep) -> CvatTaskList:
    items = [task_info(t) for t in services.cvat().list_tasks()]
    return CvatTaskList(count=len(items), items=items)


@router.get("/tasks/{id}", response_model=CvatTaskInfo, summary="One CVAT task with its labels")
def get_task(id: Annotated[int, Path(ge=1, le=2**31 - 1)], services: ServicesDep) -> CvatTaskInfo:
    return task_info(services.cvat().task(id))
