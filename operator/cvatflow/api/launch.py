"""Start an execution: check everything that is quick now (422/404 in the answer), dump and submit in a job."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvatflow.api.jobs import Job
from cvatflow.api.lookup import template_by_name
from cvatflow.api.services import Services
from cvatflow.argo import run_name
from cvatflow.datasets.safety import check_tree
from cvatflow.errors import (
    ConflictError,
    CvatflowError,
    DatasetError,
    NotFoundError,
    Problem,
    ProblemsError,
)
from cvatflow.params import CvatTask
from cvatflow.templates.template import Template

# Labels cvatflow sets itself; a request may not forge them.
RESERVED_LABELS = ("cvatflow.io/", "app.kubernetes.io/managed-by", "workflows.argoproj.io/", "cvat-job-id",
                   "workspace-uid")


@dataclass(kw_only=True)
class Launch:
    """What to run: a template on a CVAT task or on a dataset, with the user's values and labels."""

    # what runs, and its name (None: <template>-<5 characters>)
    template: str
    name: str | None = None
    # on what: a CVAT task (exported first) or a dataset; the job and workspace are recorded on the run
    cvat_task: int | None = None
    cvat_job: int | None = None
    dataset: str | None = None
    workspace_uid: str = ""
    # with what: the user's values and labels, and the labels cvatflow sets itself (webhooks)
    parameters: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    trusted_labels: dict[str, str] = field(default_factory=dict)


def start(services: Services, launch: Launch) -> Job:
    """Validate `launch` now and queue the slow part; returns the job, whose `execution` is the run name."""
    client = services.client
    template = template_by_name(client, launch.template)  # a NotFoundError (404) for an unknown template
    problems = _request_problems(services, launch)
    if problems:
        raise ProblemsError("execution", problems)
    task = _task(services, launch)
    _precheck(services, template, launch, task)
    name = launch.name or run_name(template.name)
    _ensure_free(services, name, ask_backend=launch.name is not None)
    labels = {**launch.labels, **launch.trusted_labels}
    job = services.jobs.create("execution", job_id=name, execution=name, cvat_task=launch.cvat_task,
                               template=template.name, labels=labels)

    def work(job: Job) -> dict[str, Any]:
        # Client.execute validates, then writes, then submits, and removes what it wrote if a step fails.
        run = client.execute(template, cvat_task=task, dataset=launch.dataset, parameters=launch.parameters,
                             labels=labels, name=name, progress=services.jobs.progress(job, "exporting"),
                             stage=lambda stage: services.jobs.update(job, stage=stage))
        return {"run": run.name}

    services.jobs.update(job, stage="exporting" if launch.cvat_task else "preparing")
    services.jobs.start(job, work)
    return job


def _request_problems(services: Services, launch: Launch) -> list[Problem]:
    problems = []
    if launch.cvat_task is not None and launch.dataset is not None:
        problems.append(Problem("dataset", "give either a CVAT task or a dataset, not both",
                                "remove cvatTask or dataset"))
    for key in launch.labels:
        if key.startswith(RESERVED_LABELS):
            problems.append(Problem(f"labels.{key}", "this label is set by cvatflow", "use another label name"))
    if launch.dataset and "://" in launch.dataset:
        try:
            services.client.stored_key(launch.dataset)
        except CvatflowError as exc:
            problems.append(Problem("dataset", str(exc), "give a URI in the configured store"))
    if launch.dataset and "://" not in launch.dataset:
        # A path is read on the server: only under the folders the operator allowed, never anywhere.
        allowed = [Path(p).expanduser().resolve() for p in services.settings.dataset_dirs]
        allowed.append((services.settings.home / "datasets").resolve())
        try:
            path = Path(launch.dataset).expanduser()
            resolved = (path if path.is_absolute() else allowed[-1] / path).resolve()
            inside = any(resolved == root or root in resolved.parents for root in allowed)
            found = inside and resolved.exists()
        except (OSError, ValueError, RuntimeError):  # too long, a NUL byte, a symlink loop
            problems.append(Problem("dataset", "not a usable path", "give the path of an export on the server"))
            return problems
        if not inside:
            problems.append(Problem("dataset", "a dataset path must be inside the server's dataset folders",
                                    f"put the export under {allowed[-1]} or give a URI in the store"))
        elif not found:
            problems.append(Problem("dataset", f"no export at {launch.dataset!r} on the server",  # not its paths
                                    "check the path (as PUT /api/v1/datasets/uploads answered it)"))
        else:
            launch.dataset = str(resolved)
            if resolved.is_dir():  # links and special files: refused now (422), not in the background job
                try:
                    check_tree(resolved)
                except DatasetError as exc:
                    problems.append(Problem("dataset", str(exc), "copy the real files into the folder"))
    return problems


def _task(services: Services, launch: Launch) -> CvatTask | None:
    if launch.cvat_task is None:
        return None
    info = services.cvat().task(launch.cvat_task)  # a 404 now rather than a failed job later
    return CvatTask(id=launch.cvat_task, labels=[], name=str(_field(info, "name") or ""),
                    job_id=launch.cvat_job, workspace_uid=launch.workspace_uid)


def _field(info: Any, key: str) -> Any:
    return info.get(key) if isinstance(info, dict) else getattr(info, key, None)


def _precheck(services: Services, template: Template, launch: Launch, task: CvatTask | None) -> None:
    """Every bad value refused now (422), before any export: the client's check with stand-ins for the dump."""
    services.client.check(template, task, bool(launch.dataset), launch.parameters, launch.labels)


def _ensure_free(services: Services, name: str, ask_backend: bool) -> None:
    if services.jobs.get(name) is not None:
        raise ConflictError(f"execution {name!r} already exists; choose another name")
    if not ask_backend:
        return  # a generated name: 27^5 choices, not worth a round trip to the cluster
    try:
        services.client.run(name)
    except NotFoundError:
        return
    raise ConflictError(f"execution {name!r} already exists; choose another name")
