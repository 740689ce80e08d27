"""Validate a WorkflowTemplate: Argo's JSON schema in strict mode plus the semantic checks of Argo's validator."""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from cvatflow.errors import Problem, ProblemsError, errors_only
from cvatflow.templates import trace
from cvatflow.templates.parameter import (
    CHOICE_TYPES,
    NAME_PATTERN,
    PARAMETER_TYPES,
    VISIBILITIES,
    Parameter,
    is_number,
)
from cvatflow.templates.render import PARAMETERS_ANNOTATION, render
from cvatflow.templates.template import Template

TEMPLATE_TYPES = ("container", "script", "dag", "steps", "resource", "suspend", "data", "http",
                  "containerSet", "plugin")
LOCATION_KEYS = ("s3", "gcs", "git", "http", "raw", "artifactory", "hdfs", "oss", "azure", "plugin")
SHELLS = {"sh", "bash", "ash", "dash", "zsh", "ksh"}
# Kubernetes object names (DNS-1123 subdomain) and Argo template/task names.
OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
STEP_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
EXPRESSION = re.compile(r"{{\s*=?\s*([^{}]*?)\s*}}")
PARAMETER_REF = re.compile(r"{{\s*(workflow|inputs)\.parameters\.([^}\s]+?)\s*}}")
ARTIFACT_REF = re.compile(r"{{\s*inputs\.artifacts\.([^}.\s]+)[^}]*}}")
TASK_REF = re.compile(r"{{\s*(tasks|steps)\.([^.}\s]+)\.")


@lru_cache(maxsize=2)
def schema_validator(strict: bool = True) -> Draft202012Validator:
    """Argo's WorkflowTemplate schema; strict mode forbids unknown fields, as `argo lint --strict` does."""
    raw = resources.files("cvatflow.templates").joinpath("schema/argo-workflows-schema.json").read_text()
    definitions = copy.deepcopy(json.loads(raw)["definitions"])
    # The schema types these as strings, but manifests use numbers (`limit: 3`, `cpu: 1`), as Kubernetes allows.
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["string", "integer"]}
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": ["string", "number"]}
    if strict:
        for definition in definitions.values():
            if definition.get("type") == "object" and "properties" in definition:
                definition.setdefault("additionalProperties", False)
    return Draft202012Validator({
        "$ref": "#/definitions/io.argoproj.workflow.v1alpha1.WorkflowTemplate",
        "definitions": definitions,
    })


def validate(doc: dict[str, Any] | Template, strict: bool = True) -> list[Problem]:
    """Every problem of a WorkflowTemplate (dict or Template), errors and warnings, each with path and fix."""
    if isinstance(doc, Template):
        doc = render(doc)
    problems = list(_schema_problems(doc, strict))
    problems += _metadata_problems(doc)
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    parameters = _parameters(doc, problems)
    declared = [p.get("name") for p in ((spec.get("arguments") or {}).get("parameters") or []) if isinstance(p, dict)]
    problems += _duplicate_parameters(declared)
    problems += _parameter_problems(parameters)
    problems += _structure_problems(spec, {p.name for p in parameters})
    problems += trace.checks(spec, parameters)  # unused parameters, min/max (issue 19)
    return problems


def check(doc: dict[str, Any] | Template, source: str, strict: bool = True) -> list[Problem]:
    """Validate and raise ProblemsError when anything blocks; returns the warnings otherwise."""
    problems = validate(doc, strict=strict)
    if errors_only(problems):
        raise ProblemsError(source, problems)
    return problems


def _path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_problems(doc: dict[str, Any], strict: bool) -> Iterator[Problem]:
    for error in sorted(schema_validator(strict).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        message = error.message
        fix = "see Argo's field reference for this object"
        if error.validator == "additionalProperties":
            fix = "remove the field or fix its spelling; form metadata belongs in the cvatflow.io/parameters annotation"
        elif error.validator == "required":
            fix = "add the missing field"
        elif error.validator == "type":
            fix = f"use a value of type {error.validator_value}"
        yield Problem(_path(error.absolute_path) or "(document)", message, fix)


def _metadata_problems(doc: dict[str, Any]) -> Iterator[Problem]:
    metadata = doc.get("metadata") or {}
    name = metadata.get("name") or ""
    if not name:
        yield Problem("metadata.name", "the template has no name", "set metadata.name (lower-case letters, digits, -)")
    elif len(name) > 253 or not OBJECT_NAME.match(name):
        yield Problem("metadata.name", f"{name!r} is not a valid Kubernetes name",
                      "use lower-case letters, digits and '-', starting and ending with a letter or digit")


def _parameters(doc: dict[str, Any], problems: list[Problem]) -> list[Parameter]:
    """The template's parameters with their form metadata, read the way `templates.manifest` reads them."""
    from cvatflow.templates.manifest import _merge  # the import side owns the merge rule

    spec = doc.get("spec") or {}
    argo = [Parameter.from_dict(p) for p in ((spec.get("arguments") or {}).get("parameters") or [])
            if isinstance(p, dict)]
    raw = ((doc.get("metadata") or {}).get("annotations") or {}).get(PARAMETERS_ANNOTATION)
    if raw is None:
        return argo
    try:
        described = [Parameter.from_dict(p) for p in json.loads(raw)]
    except (ValueError, TypeError, AttributeError):
        problems.append(Problem(f"metadata.annotations.{PARAMETERS_ANNOTATION}", "is not a JSON list of parameters",
                                "re-render the template with `cvatflow templates render`"))
        return argo
    return _merge(described, argo)


def _duplicate_parameters(names: list[str]) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            yield Problem(f"spec.arguments.parameters[{i}]", f"parameter {name!r} is declared twice",
                          "remove or rename one of them")
        seen.add(name)


def _parameter_problems(parameters: list[Parameter]) -> Iterator[Problem]:
    for i, p in enumerate(parameters):
        where = f"spec.arguments.parameters[{i}]"
        if not NAME_PATTERN.match(p.name):
            yield Problem(where, f"parameter name {p.name!r} is not well-formed",
                          "use lower-case letters, digits and '-' (e.g. batch-size)")
        if p.type not in PARAMETER_TYPES:
            yield Problem(where, f"parameter {p.name!r} has unknown type {p.type!r}",
                          f"use one of: {', '.join(PARAMETER_TYPES)}")
        if p.visibility not in VISIBILITIES:
            yield Problem(where, f"parameter {p.name!r} has unknown visibility {p.visibility!r}",
                          f"use one of: {', '.join(VISIBILITIES)}")
        if p.type in CHOICE_TYPES and not p.options:
            yield Problem(where, f"parameter {p.name!r} of type {p.type} has no options", "add options [{name, value}]")
        if p.options and p.value and p.value not in p.option_values:
            yield Problem(where, f"parameter {p.name!r} has value {p.value!r}, which is not among its options",
                          f"use one of: {', '.join(p.option_values)}")
        if p.type == "input.number" and p.value and not is_number(p.value):
            yield Problem(where, f"parameter {p.name!r} is a number but its value is {p.value!r}",
                          "give a number such as 10 or 0.5")


def _structure_problems(spec: dict[str, Any], workflow_parameters: set[str]) -> Iterator[Problem]:
    templates = [t for t in (spec.get("templates") or []) if isinstance(t, dict)]
    names: dict[str, dict[str, Any]] = {}
    for i, tpl in enumerate(templates):
        name = tpl.get("name", "")
        where = f"spec.templates[{i}]"
        if name in names:
            yield Problem(where, f"template name {name!r} is used twice", "give each template a unique name")
        elif not STEP_NAME.match(str(name)) or len(str(name)) > 128:
            yield Problem(where, f"template name {name!r} is not well-formed", "use letters, digits and '-'")
        names[name] = tpl
        kinds = [k for k in TEMPLATE_TYPES if k in tpl]
        if len(kinds) > 1:
            yield Problem(where, f"template {name!r} has several types ({', '.join(kinds)})",
                          "a template is exactly one of container, script, dag, steps, ...")
        yield from _reference_problems(tpl, where, workflow_parameters)
        yield from _artifact_problems(tpl, where)
        yield from _shell_warnings(tpl, where)

    entrypoint = spec.get("entrypoint")
    if not entrypoint:
        yield Problem("spec.entrypoint", "no entrypoint", "set spec.entrypoint to the name of the DAG template to run")
    elif entrypoint not in names:
        yield Problem("spec.entrypoint", f"entrypoint {entrypoint!r} is not a template",
                      f"name one of: {', '.join(names) or 'no templates defined'}")
    elif "dag" not in names[entrypoint]:
        yield Problem("spec.entrypoint", f"entrypoint {entrypoint!r} is not a DAG",
                      "make the entrypoint a `dag` template whose tasks call the steps")

    for i, tpl in enumerate(templates):
        if "dag" in tpl:
            yield from _dag_problems(tpl, f"spec.templates[{i}]", names)
    yield from _volume_problems(spec, templates)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def _reference_problems(tpl: dict[str, Any], where: str, workflow_parameters: set[str]) -> Iterator[Problem]:
    inputs = tpl.get("inputs") or {}
    input_parameters = {p.get("name") for p in inputs.get("parameters") or [] if isinstance(p, dict)}
    input_artifacts = {a.get("name") for a in inputs.get("artifacts") or [] if isinstance(a, dict)}
    for path, text in _strings(tpl, where):
        for scope, name in PARAMETER_REF.findall(text):
            if scope == "workflow" and name not in workflow_parameters:
                yield Problem(path, f"{{{{workflow.parameters.{name}}}}} refers to a parameter that is not declared",
                              f"add {name!r} to spec.arguments.parameters or fix the name")
            elif scope == "inputs" and name not in input_parameters:
                yield Problem(path, f"{{{{inputs.parameters.{name}}}}} refers to an input this template lacks",
                              f"add {name!r} to the template's inputs.parameters or fix the name")
        for name in ARTIFACT_REF.findall(text):
            if name not in input_artifacts:
                yield Problem(path, f"{{{{inputs.artifacts.{name}}}}} refers to an input artifact this template lacks",
                              f"add {name!r} to the template's inputs.artifacts or fix the name")


def _artifact_problems(tpl: dict[str, Any], where: str) -> Iterator[Problem]:
    for side in ("inputs", "outputs"):
        seen: set[str] = set()
        for j, artifact in enumerate((tpl.get(side) or {}).get("artifacts") or []):
            if not isinstance(artifact, dict):
                continue
            path = f"{where}.{side}.artifacts[{j}]"
            locations = [k for k in LOCATION_KEYS if k in artifact]
            if len(locations) > 1:
                yield Problem(path, f"artifact {artifact.get('name')!r} has {len(locations)} locations "
                                    f"({', '.join(locations)})", "keep exactly one location per artifact")
            if artifact.get("name") in seen:
                yield Problem(path, f"artifact {artifact.get('name')!r} is declared twice", "rename one of them")
            seen.add(artifact.get("name"))


def _shell_warnings(tpl: dict[str, Any], where: str) -> Iterator[Problem]:
    """A parameter spliced into a `sh -c` string can run anything its value says (command injection)."""
    for key in ("container", "script"):
        body = tpl.get(key)
        if isinstance(body, dict):
            yield from _shell_warning(body, f"{where}.{key}")
    for i, sidecar in enumerate(tpl.get("sidecars") or []):
        if isinstance(sidecar, dict):
            yield from _shell_warning(sidecar, f"{where}.sidecars[{i}]")


def _shell_warning(body: dict[str, Any], where: str) -> Iterator[Problem]:
    words = [w for w in (body.get("command") or []) + (body.get("args") or []) if isinstance(w, str)]
    if "source" in body and isinstance(body["source"], str):
        words.append(body["source"])
    if not words or words[0].rsplit("/", 1)[-1] not in SHELLS:
        return
    for text in words[1:]:
        if re.search(r"{{\s*(workflow|inputs)\.parameters\.", text):
            yield Problem(where, "a parameter value is spliced into a shell script (command injection: a value "
                                 "like `x; rm -rf /` runs)",
                          "pass parameters as separate `args` items or as `env` variables and call the program "
                          "directly", severity="warning")
            return


def _dag_problems(tpl: dict[str, Any], where: str, templates: dict[str, dict[str, Any]]) -> Iterator[Problem]:
    tasks = [t for t in (tpl["dag"].get("tasks") or []) if isinstance(t, dict)]
    task_names: list[str] = [t.get("name", "") for t in tasks]
    graph: dict[str, set[str]] = {}
    for j, task in enumerate(tasks):
        path = f"{where}.dag.tasks[{j}]"
        name = task.get("name", "")
        if task_names.count(name) > 1:
            yield Problem(path, f"task name {name!r} is used twice in DAG {tpl.get('name')!r}", "rename one task")
        if not STEP_NAME.match(name):
            yield Problem(path, f"task name {name!r} is not well-formed", "use letters, digits and '-'")
        target = task.get("template")
        if target is not None and target not in templates:
            yield Problem(path, f"task {name!r} calls template {target!r}, which does not exist",
                          f"name one of: {', '.join(templates)}")
        if "depends" in task and "dependencies" in task:
            yield Problem(path, f"task {name!r} uses both `depends` and `dependencies`", "keep one of them")
        deps = set(task.get("dependencies") or [])
        if isinstance(task.get("depends"), str):
            # `depends` is a boolean expression over task names and their results (A.Succeeded || B).
            deps |= {re.split(r"\.", word)[0] for word in re.findall(r"[A-Za-z0-9][-A-Za-z0-9.]*", task["depends"])}
        for dep in sorted(deps):
            if dep not in task_names:
                yield Problem(path, f"task {name!r} depends on {dep!r}, which is not a task of this DAG",
                              f"name one of: {', '.join(n for n in task_names if n != name)}")
        for text_path, text in _strings(task, path):
            for _scope, ref in TASK_REF.findall(text):
                if ref not in task_names:
                    yield Problem(text_path, f"reference to task {ref!r}, which is not a task of this DAG",
                                  "fix the task name")
        graph[name] = {d for d in deps if d in task_names}
    cycle = _find_cycle(graph)
    if cycle:
        yield Problem(f"{where}.dag", f"tasks depend on each other in a cycle: {' -> '.join(cycle)}",
                      "remove one of these dependencies")


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def _volume_problems(spec: dict[str, Any], templates: list[dict[str, Any]]) -> Iterator[Problem]:
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    volumes |= {(c.get("metadata") or {}).get("name") for c in spec.get("volumeClaimTemplates") or []
                if isinstance(c, dict)}
    for i, tpl in enumerate(templates):
        volumes_here = volumes | {v.get("name") for v in tpl.get("volumes") or [] if isinstance(v, dict)}
        for key in ("container", "script"):
            for j, mount in enumerate((tpl.get(key) or {}).get("volumeMounts") or []):
                if isinstance(mount, dict) and mount.get("name") not in volumes_here:
                    yield Problem(f"spec.templates[{i}].{key}.volumeMounts[{j}]",
                                  f"mounts volume {mount.get('name')!r}, which is not declared",
                                  "add it to spec.volumes or spec.volumeClaimTemplates")
