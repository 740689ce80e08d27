"""/onepanelio/: the endpoints the Onepanel CVAT fork's "Execute training Workflow" dialog calls, in its shapes."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Body, Path, Request

from cvatflow.api import launch
from cvatflow.api.auth import require_token_or_cookie
from cvatflow.api.lookup import template_by_name
from cvatflow.api.models import (
    TEMPLATE_NAME,
    OnepanelBaseModelRequest,
    OnepanelDumpFormat,
    OnepanelDumpFormats,
    OnepanelExecuteAnswer,
    OnepanelExecuteRequest,
    OnepanelKeys,
    OnepanelLabel,
    OnepanelNodePool,
    OnepanelNodePoolAnswer,
    OnepanelObjectCounts,
    OnepanelOutputPathRequest,
    OnepanelParameter,
    OnepanelPath,
    OnepanelTemplate,
    OnepanelTemplateList,
    Option,
)
from cvatflow.api.routing import ServicesDep, api_router
from cvatflow.api.services import Services
from cvatflow.api.templates import parse_labels
from cvatflow.argo import Phase
from cvatflow.errors import NotFoundError
from cvatflow.output_path import task_output_path
from cvatflow.params import node_pool_options
from cvatflow.templates.parameter import DUMP_FORMAT, OUTPUT_PATH, hint_html
from cvatflow.templates.render import to_yaml
from cvatflow.templates.template import Template

router = api_router("/onepanelio", "onepanel", auth=require_token_or_cookie)
Uid = Annotated[str, Path(pattern=TEMPLATE_NAME, description="The template's name (Onepanel's uid).")]
TaskId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The CVAT task id.")]
VERSION = "1"  # templates are not versioned here: the one version is the latest


def cvat_label(services: Services) -> dict[str, str]:
    """The label of templates offered to CVAT: `used-by=cvat`, or Onepanel's `key=used-by,value=cvat` override."""
    text = services.settings.cvat_templates_label or "used-by=cvat"
    parts = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
    if set(parts) == {"key", "value"}:
        return {parts["key"]: parts["value"]}
    return parse_labels([text])


def parameters(template: Template, services: Services) -> list[OnepanelParameter]:
    """Every parameter (the fork keeps all and shows the public ones); node pools filled from the config."""
    pools = node_pool_options(services.settings.node_pools)
    out = []
    for p in template.parameters:
        options, value = p.options, p.value
        if p.type == "select.nodepool" and pools:
            options = pools
            if value in ("", "default"):
                value = pools[0].value
        out.append(OnepanelParameter(
            name=p.name, value=value, type=p.type, display_name=p.display_name or None,
            hint=hint_html(p.hint) or None, options=[Option(name=o.name, value=o.value) for o in options],
            required=p.required, visibility=p.visibility))
    return out


def template_of(template: Template, services: Services, full: bool) -> OnepanelTemplate:
    return OnepanelTemplate(
        uid=template.name, name=template.title or template.name, version=VERSION, versions=VERSION,
        description=template.description, labels=[OnepanelLabel(key=k, value=v) for k, v in template.labels.items()],
        parameters=parameters(template, services) if full else [],
        manifest=to_yaml(template) if full else None)


@router.get("/workflow_templates", response_model=OnepanelTemplateList)
def list_workflow_templates(services: ServicesDep) -> OnepanelTemplateList:
    templates = sorted(services.client.templates(cvat_label(services)), key=lambda t: t.name)
    items = [template_of(t, services, full=False) for t in templates]
    return OnepanelTemplateList(count=len(items), workflow_templates=items)


@router.get("/workflow_templates/{uid}/versions", response_model=OnepanelTemplateList)
def list_workflow_template_versions(uid: Uid, services: ServicesDep) -> OnepanelTemplateList:
    return OnepanelTemplateList(count=1, workflow_templates=[template_of(template_by_name(services.client, uid), services,
                                                                         full=False)])


@router.get("/workflow_templates/{uid}/versions/{version}", response_model=OnepanelTemplate)
def get_workflow_template(uid: Uid, version: Annotated[str, Path(max_length=32)],
                          services: ServicesDep) -> OnepanelTemplate:
    """Version 0 (what the fork asks for) means the latest."""
    if version not in ("0", "latest", VERSION):
        raise NotFoundError(f"template {uid} has no version {version}; ask for version 0 (the latest)")
    return template_of(template_by_name(services.client, uid), services, full=True)


@router.post("/get_node_pool", response_model=OnepanelNodePoolAnswer)
def get_node_pool(services: ServicesDep) -> OnepanelNodePoolAnswer:
    pools = services.settings.node_pools
    return OnepanelNodePoolAnswer(node_pool=OnepanelNodePool(
        label=pools.label, options=[Option(name=o.name, value=o.value) for o in node_pool_options(pools)]))


@router.post("/get_available_dump_formats", response_model=OnepanelDumpFormats)
def get_available_dump_formats() -> OnepanelDumpFormats:
    from cvatflow.datasets.formats import DUMP_FORMATS

    return OnepanelDumpFormats(dump_formats=[OnepanelDumpFormat(name=name, tag=tag)
                                             for tag, name in DUMP_FORMATS.items()])


@router.post("/get_object_counts/{task}", response_model=OnepanelObjectCounts)
def get_object_counts(task: TaskId, services: ServicesDep) -> OnepanelObjectCounts:
    annotations = services.cvat().annotations(task)
    return OnepanelObjectCounts(shapes=list(annotations.get("shapes") or []),
                                tracks=list(annotations.get("tracks") or []))


@router.get("/get_annotation_path/{task}", response_model=OnepanelPath, operation_id="get_annotation_path_get")
@router.post("/get_annotation_path/{task}", response_model=OnepanelPath, operation_id="get_annotation_path")
def get_annotation_path(task: TaskId) -> OnepanelPath:
    """A preview of where the dump will go; the execution fills in the real one when it dumps."""
    return OnepanelPath(name=f"annotations/{task}/{datetime.now().strftime('%m%d%Y%H%M%S')}/")


@router.post("/get_output_path/{task}", response_model=OnepanelPath)
def get_output_path(task: TaskId, services: ServicesDep,
                    body: Annotated[OnepanelOutputPathRequest | None, Body()] = None) -> OnepanelPath:
    """The `cvat-output-path` a run of template `uid` on this task gets by default (the run adds its name)."""
    default = None
    if body and body.uid:
        template = services.client.template(body.uid)
        if template.has_parameter(OUTPUT_PATH):
            default = template.parameter(OUTPUT_PATH).value
    return OnepanelPath(name=task_output_path(task, None, default) + "/")


@router.post("/get_base_model", response_model=OnepanelKeys)
def get_base_model(services: ServicesDep,
                   body: Annotated[OnepanelBaseModelRequest | None, Body()] = None) -> OnepanelKeys:
    """Output prefixes of earlier successful runs of the template: what `cvat-finetune-checkpoint` takes."""
    root = services.settings.store.rstrip("/") + "/"
    keys = []
    for run in services.client.runs():
        if (body and body.uid and run.template != body.uid) or run.status().phase != Phase.SUCCEEDED:
            continue
        prefix = run.outputs().get("output", "")
        if prefix.startswith(root):
            keys.append(prefix[len(root):])
    return OnepanelKeys(keys=keys)


@router.post("/execute_workflow/{task}", response_model=OnepanelExecuteAnswer)
def execute_workflow(task: TaskId, body: OnepanelExecuteRequest, request: Request,
                     services: ServicesDep) -> OnepanelExecuteAnswer:
    """Like Onepanel: 200 with `url`, 404 `{message}` for a missing checkpoint; but the dump runs in the
    background (the request no longer waits for it) and every bad parameter is a 422 listing them all."""
    values: dict[str, Any] = {k: v for k, v in body.parameters.items() if v is not None}
    if body.dump_format and DUMP_FORMAT not in values:
        values[DUMP_FORMAT] = body.dump_format
    workspace = services.settings.workspace_uid
    job = launch.start(services, launch.Launch(template=body.workflow_template, cvat_task=task, parameters=values,
                                               workspace_uid=workspace))
    name = job.execution or job.id
    # The fork links "Open Workflow details" to `url` and the browser opens it with CVAT's cookies only:
    # the web UI's run page, which signs in with the `auth-token` cookie.
    url = str(request.url_for("ui_run_page", run_id=name))
    return OnepanelExecuteAnswer(url=url, uid=name, name=name)
