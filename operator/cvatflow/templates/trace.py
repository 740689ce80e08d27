"""Where a template's parameters go: each step's container after substitution, and the parameters used nowhere."""
from __future__ import annotations

import json
import re
from typing import Any

from cvatflow.errors import Problem
from cvatflow.templates.parameter import DUMP_FORMAT, NODE_POOL, Parameter, is_number
from cvatflow.templates.template import Template

REFERENCE = re.compile(r"{{\s*([^{}]+?)\s*}}")
# Parameters cvatflow itself consumes (the dump before the run, the node-pool patch), not the pods.
CONSUMED = (DUMP_FORMAT, NODE_POOL)
# The parts of a pod a value can reach: in the container, and in its template (artifacts, placement).
POD_FIELDS = ("command", "args", "env", "source", "image", "workingDir")
TEMPLATE_FIELDS = ("inputs", "outputs", "nodeSelector", "podSpecPatch")


def _substitute(value: Any, scope: dict[str, str]) -> Any:
    """Argo's `{{name}}` substitution through lists and mappings; unknown names are left as written."""
    if isinstance(value, str):
        return REFERENCE.sub(lambda m: scope.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, scope) for k, v in value.items()}
    return value


def step_pods(template: Template, values: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each container/script template's command, args, env, source, image, workingDir, artifacts and placement
    (and each resource template's manifest),
    with `{{workflow.parameters.*}}` substituted from `values` and, one call deep, the `inputs.parameters`
    that DAG tasks and steps pass in. A template called several times keeps its last call's values.
    """
    scope = {f"workflow.parameters.{k}": v for k, v in values.items()}
    calls: dict[str, dict[str, str]] = {}
    for tpl in template.spec.get("templates") or []:
        tasks = list((tpl.get("dag") or {}).get("tasks") or [])
        for group in tpl.get("steps") or []:
            tasks += group if isinstance(group, list) else [group]
        for task in tasks:
            if isinstance(task, dict) and task.get("template"):
                arguments = (task.get("arguments") or {}).get("parameters") or []
                calls[task["template"]] = {f"inputs.parameters.{p['name']}": _substitute(str(p.get("value", "")), scope)
                                           for p in arguments if isinstance(p, dict) and "name" in p}
    pods = {}
    for tpl in template.container_templates():
        local = dict(scope)
        for p in (tpl.get("inputs") or {}).get("parameters") or []:
            if isinstance(p, dict) and "value" in p:
                local[f"inputs.parameters.{p['name']}"] = _substitute(str(p["value"]), scope)
        local.update(calls.get(tpl.get("name"), {}))
        body = tpl.get("container") or tpl.get("script") or {}
        pod = {k: body[k] for k in POD_FIELDS if k in body} | {k: tpl[k] for k in TEMPLATE_FIELDS if k in tpl}
        pods[tpl["name"]] = _substitute(pod, local)
    for tpl in template.spec.get("templates") or []:
        # a resource step's object (the multi-node JobSet) carries parameters into the pods it creates
        if isinstance(tpl, dict) and isinstance((tpl.get("resource") or {}).get("manifest"), str):
            pods[tpl["name"]] = _substitute({"manifest": tpl["resource"]["manifest"]}, scope)
    return pods


def checks(spec: dict[str, Any], parameters: list[Parameter]) -> list[Problem]:
    """What `templates validate` asks of this module: unused parameters and bad min/max (warnings and errors)."""
    return unused_parameters(spec, parameters) + bound_problems(parameters)


def unused_parameters(spec: dict[str, Any], parameters: list[Parameter]) -> list[Problem]:
    """A warning for each parameter that no step refers to: a value the user sets there would change nothing."""
    text = json.dumps({k: v for k, v in spec.items() if k != "arguments"})
    if re.search(r"workflow\.parameters(?![.\[\w])", text):
        return []  # `{{workflow.parameters}}` passes them all
    problems = []
    for p in parameters:
        if p.role in CONSUMED:
            continue
        name = re.escape(p.name)
        if not re.search(rf"workflow\.parameters(\.{name}(?![\w-])|\[\s*['\"]{name}['\"]\s*\])", text):
            problems.append(Problem(f"parameters.{p.name}", "no step uses this parameter, so its value changes "
                                    "nothing (a cvatflow check; Argo accepts it)",
                                    f"pass {{{{workflow.parameters.{p.name}}}}} to the step that needs it, "
                                    f"or remove the parameter", severity="warning"))
    return problems


def bound_problems(parameters: list[Parameter]) -> list[Problem]:
    """`min`/`max` (cvatflow metadata) must be numbers, in order, and hold the parameter's own default."""
    from cvatflow.params import number_problems

    problems = []
    for p in parameters:
        for key in ("min", "max"):
            if getattr(p, key) != "" and not is_number(getattr(p, key)):
                problems.append(Problem(f"parameters.{p.name}.{key}", f"{key} {getattr(p, key)!r} is not a number",
                                        "give a number such as 1 or 0.5"))
        low, high = p.bounds
        if low is not None and high is not None and low > high:
            problems.append(Problem(f"parameters.{p.name}", f"min {p.min} is above max {p.max}", "swap them"))
        elif p.type == "input.number" and p.value and (low is not None or high is not None):
            problems += [Problem(f"parameters.{p.name}.value", f"the default: {x.message}", x.fix)
                         for x in number_problems(p, p.value)]
    return problems
