"""GET /api/v1/templates[/{name}]: the templates offered, and each one's parameter form."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from cvatflow.api.auth import require_token
from cvatflow.api.errors import ERROR_RESPONSES
from cvatflow.api.lookup import template_by_name
from cvatflow.api.models import TEMPLATE_NAME, FormField, TemplateDetail, TemplateList, TemplateSummary
from cvatflow.api.services import Services, get_services
from cvatflow.errors import Problem, ProblemsError
from cvatflow.params import node_pool_options
from cvatflow.templates.form import form
from cvatflow.templates.template import Template

router = APIRouter(prefix="/api/v1/templates", tags=["templates"], dependencies=[Depends(require_token)],
                   responses=ERROR_RESPONSES)


def parse_labels(items: list[str], where: str = "label") -> dict[str, str]:
    """`key=value` selectors (repeated or comma-separated), as kubectl's -l takes them."""
    labels, problems = {}, []
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                problems.append(Problem(where, f"{part!r} is not key=value", "write e.g. used-by=cvat"))
            else:
                labels[key.strip()] = value.strip()
    if problems:
        raise ProblemsError("query", problems)
    return labels


def summary(template: Template) -> TemplateSummary:
    return TemplateSummary(name=template.name, title=template.title, description=template.description,
                           labels=dict(template.labels), usedByCvat=template.used_by_cvat)


@router.get("", response_model=TemplateList, summary="List templates")
def list_templates(services: Annotated[Services, Depends(get_services)],
                   label: Annotated[list[str] | None, Query(description="key=value; e.g. used-by=cvat")] = None
                   ) -> TemplateList:
    templates = services.client.templates(parse_labels(label or []) or None)
    items = [summary(t) for t in sorted(templates, key=lambda t: t.name)]
    return TemplateList(count=len(items), items=items)


@router.get("/{name}", response_model=TemplateDetail, summary="A template with its parameter form")
def get_template(name: Annotated[str, Path(pattern=TEMPLATE_NAME)], services: Annotated[Services, Depends(get_services)]) -> TemplateDetail:
    template = template_by_name(services.client, name)
    fields = form(template, node_pools=node_pool_options(services.settings.node_pools))
    return TemplateDetail(**summary(template).model_dump(), parameters=[FormField(**f) for f in fields])
