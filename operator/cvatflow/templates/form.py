"""The parameter form CVAT shows for a template: public parameters, in order, with type, options and default."""
from __future__ import annotations

from typing import Any

from cvatflow.templates.parameter import Option, hint_html, hint_text
from cvatflow.templates.template import Template


def form(template: Template, node_pools: list[Option] | None = None) -> list[dict[str, Any]]:
    """One entry per public parameter; `select.nodepool` takes its options from the node-pool config.

    With no node pools configured (a laptop, the local executor) a node-pool select offers the template's own
    value, so a required field can still be submitted: nothing places the pods then, whatever the value.
    """
    fields = []
    for p in template.public_parameters():
        options = p.options
        if p.type == "select.nodepool":
            if node_pools:
                options = node_pools
            elif not options and p.value:
                options = [Option(f"{p.value} (no node pools configured)", p.value)]
        fields.append({
            "name": p.name,
            "displayName": p.label,
            "type": p.type,
            "value": p.value,
            "required": p.required,
            "options": [{"name": o.name, "value": o.value} for o in options],
            "hint": hint_text(p.hint),
            "hintHtml": hint_html(p.hint),
            "min": p.min,  # bounds of an input.number ("" = none); auto-fill refuses values outside them
            "max": p.max,
        })
    return fields
