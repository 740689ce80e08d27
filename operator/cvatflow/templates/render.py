"""Render a Template as a kubectl-applyable Argo WorkflowTemplate, keeping the form metadata in an annotation."""
from __future__ import annotations

import json
from typing import Any

import yaml

from cvatflow import argo
from cvatflow.templates.parameter import hint_text
from cvatflow.templates.template import Template
from cvatflow.templates.yamlsafe import needs_quotes

API_VERSION = argo.API_VERSION
PARAMETERS_ANNOTATION = "cvatflow.io/parameters"
TITLE_ANNOTATION = "workflows.argoproj.io/title"
DESCRIPTION_ANNOTATION = "workflows.argoproj.io/description"
# Spec keys first in this order (the rest keep theirs), so rendered files read like hand-written ones.
SPEC_ORDER = ("entrypoint", "arguments", "templates", "volumeClaimTemplates")


def parameters_annotation(template: Template) -> str:
    """The full, ordered Onepanel metadata of the parameters as JSON, one parameter a line (readable in YAML)."""
    lines = [json.dumps(p.to_onepanel(), ensure_ascii=False) for p in template.parameters]
    return "[\n" + ",\n".join(lines) + "\n]\n"


def render(template: Template) -> dict[str, Any]:
    """The WorkflowTemplate as a plain dict (what `kubectl apply` and the Kubernetes API take)."""
    annotations = dict(template.annotations)
    if template.title:
        annotations[TITLE_ANNOTATION] = template.title
    if template.description:
        annotations[DESCRIPTION_ANNOTATION] = hint_text(template.description)
    annotations[PARAMETERS_ANNOTATION] = parameters_annotation(template)
    metadata: dict[str, Any] = {"name": template.name}
    if template.namespace:
        metadata["namespace"] = template.namespace
    if template.labels:
        metadata["labels"] = dict(template.labels)
    metadata["annotations"] = annotations

    spec = dict(template.spec)
    if template.parameters:
        spec["arguments"] = {"parameters": [p.to_argo() for p in template.parameters]}
    ordered = {k: spec[k] for k in SPEC_ORDER if k in spec}
    ordered.update({k: v for k, v in spec.items() if k not in ordered})
    return {"apiVersion": API_VERSION, "kind": "WorkflowTemplate", "metadata": metadata, "spec": ordered}


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as `|` blocks so hyperparameter textareas stay readable."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not value.startswith((" ", "\t")) else None
    if style is None and needs_quotes(value):
        style = "'"  # `1e3`, `y`: strings that go-yaml or YAML 1.2 readers would otherwise take for numbers/booleans
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def to_yaml(template: Template | dict[str, Any]) -> str:
    """The WorkflowTemplate as YAML (deterministic, so checked-in files only change when templates do)."""
    doc = render(template) if isinstance(template, Template) else template
    return yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=120)
