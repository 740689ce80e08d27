"""Onepanel-style Argo WorkflowTemplates: model, hera builder, import, rendering, validation and catalog."""
from cvatflow.templates.catalog import builtin_templates, get_template
from cvatflow.templates.form import form
from cvatflow.templates.manifest import complete_artifacts, load_dict, load_file, load_text
from cvatflow.templates.parameter import Option, Parameter, hint_html, hint_text, reserved_name
from cvatflow.templates.render import render, to_yaml
from cvatflow.templates.template import Template
from cvatflow.templates.validate import check, validate

__all__ = [
    "Option", "Parameter", "Template", "builtin_templates", "check", "complete_artifacts", "form",
    "get_template", "hint_html", "hint_text", "load_dict", "load_file", "load_text", "render",
    "reserved_name", "to_yaml", "validate",
]
