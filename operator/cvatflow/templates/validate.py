"""Validate Argo workflow objects: Argo's JSON schema first, then the rules of Argo's validator, then ours as warnings.

Errors are the rules Argo's own validator (`workflow/validate/validate.go`, v4.1) applies to each kind;
cvatflow's preferences (a DAG entrypoint for CVAT templates, Onepanel-style names, no parameters spliced into
shell strings, declared `workflow.parameters` in CVAT templates) are warnings whose message says they are ours.
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema_rs
from jsonschema import Draft202012Validator

from cvatflow.errors import Problem, ProblemsError, TemplateError, errors_only
from cvatflow.templates import trace
from cvatflow.templates.manifest import WORKFLOW_KINDS, annotated_parameters
from cvatflow.templates.parameter import (
    ARGO_NAME_PATTERN,
    CHOICE_TYPES,
    NAME_PATTERN,
    PARAMETER_TYPES,
    VISIBILITIES,
    Parameter,
    is_number,
)
from cvatflow.templates.render import PARAMETERS_ANNOTATION, render
from cvatflow.templates.shell import shell_warnings
from cvatflow.templates.template import CVAT_LABEL, Template
from cvatflow.templates.yamlsafe import MAX_DEPTH, kind_of, source_text

KINDS = WORKFLOW_KINDS
OURS = "cvatflow's preference, Argo accepts it"
TEMPLATE_TYPES = ("container", "script", "dag", "steps", "resource", "suspend", "data", "http",
                  "containerSet", "plugin")
LEAF_TYPES = ("container", "script", "resource", "data", "http", "containerSet", "plugin")
LOCATION_KEYS = ("s3", "gcs", "git", "http", "raw", "artifactory", "hdfs", "oss", "azure", "plugin")
# Kubernetes object names (DNS-1123 subdomain); Argo's names for templates, steps and tasks.
OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
GENERATE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*)?$")
STEP_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
MAX_NAME = {"CronWorkflow": 52}  # Argo appends `-<unix time>` to a CronWorkflow's name; others: 63
PLACEHOLDER = re.compile(r"{{[^{}]*}}")
PARAMETER_REF = re.compile(r"{{\s*(workflow|inputs)\.parameters\.([^}\s]+?)\s*}}")
ARTIFACT_REF = re.compile(r"{{\s*inputs\.artifacts\.([^}.\s]+)[^}]*}}")
TASK_REF = re.compile(r"{{\s*tasks\.([^.}\s]+)\.")
RETRY_POLICIES = ("Always", "OnError", "OnFailure", "OnTransientError", "")
POD_GC = ("", "OnPodCompletion", "OnPodSuccess", "OnWorkflowCompletion", "OnWorkflowSuccess")
CONCURRENCY = ("Allow", "Forbid", "Replace", "")
RESOURCE_ACTIONS = ("get", "create", "apply", "delete", "replace", "patch")
RESERVED_CONTAINERS = ("wait", "init", "supervisor")
CRON_FIELD = re.compile(r"^[-0-9A-Za-z*,/?LW#]+$")
CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


RELAXED = {
    "io.k8s.api.core.v1.Container": ("image",),
    "io.argoproj.workflow.v1alpha1.ScriptTemplate": ("image", "source"),
    "io.argoproj.workflow.v1alpha1.Gauge": ("realtime",),
    "io.argoproj.workflow.v1alpha1.CronWorkflowSpec": ("schedules",),
    **{f"io.argoproj.workflow.v1alpha1.{kind}": ("metadata",) for kind in KINDS},
}


@lru_cache(maxsize=8)
def schema_validator(strict: bool = True, kind: str = "WorkflowTemplate") -> Draft202012Validator:
    """Argo's schema for `kind`; strict mode forbids unknown fields, as `argo lint --strict` does."""
    raw = resources.files("cvatflow.templates").joinpath("schema/argo-workflows-schema.json").read_text()
    definitions = copy.deepcopy(json.loads(raw)["definitions"])
    # The schema types these as strings, but manifests use numbers (`limit: 3`, `cpu: 1`), as Kubernetes allows.
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["string", "integer"]}
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": ["string", "number"]}
    # Argo reads parameter values as AnyString: `value: 3` and `enum: [1, 2]` are accepted and become strings.
    any_string = {"type": ["string", "number", "boolean"]}
    parameter = definitions["io.argoproj.workflow.v1alpha1.Parameter"]["properties"]
    parameter["value"] = parameter["default"] = any_string
    parameter["enum"] = {"type": "array", "items": any_string}
    # `required` in the schema comes from Go struct tags, but Argo's decoder takes a missing field as empty and its
    # validator decides: an image may come from templateDefaults, `realtime` defaults to false, a nameless object
    # is the Kubernetes API's to refuse (a warning here), and a missing schedule gets the cron rule's message.
    for name, fields in RELAXED.items():
        definition = definitions[name]
        definition["required"] = [f for f in definition.get("required", []) if f not in fields]
    if strict:
        for definition in definitions.values():
            if definition.get("type") == "object" and "properties" in definition:
                definition.setdefault("additionalProperties", False)
    return Draft202012Validator({"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}",
                                 "definitions": definitions})


@lru_cache(maxsize=8)
def _fast_validator(strict: bool, kind: str) -> Any:
    """The same schema compiled by jsonschema-rs: answers "valid?" ~500x faster; errors come from `jsonschema`."""
    return jsonschema_rs.validator_for(schema_validator(strict, kind).schema)


def validate(doc: dict[str, Any] | Template, strict: bool = True, cvat: bool | None = None) -> list[Problem]:
    """Every problem of one Argo object (Workflow, WorkflowTemplate, ClusterWorkflowTemplate, CronWorkflow).

    Args: a parsed manifest (dict) or a Template (rendered first); `strict` forbids fields Argo's schema does
    not know; `cvat` says the template is offered to CVAT (default: it carries the `used-by: cvat` label),
    which turns on the CVAT warnings. Returns errors and warnings, each with path and fix; never raises.
    """
    if isinstance(doc, Template):
        doc = render(doc)
    if not isinstance(doc, dict):
        return [Problem("(document)", f"is {kind_of(doc)}, not an Argo object",
                        "give a mapping with apiVersion, kind, metadata and spec")]
    if _deeper_than(doc, MAX_DEPTH):  # a dict from an API call has not been through the YAML reader's cap
        return [Problem("(document)", f"nests deeper than {MAX_DEPTH} levels", "a manifest never needs that")]
    kind = doc.get("kind") if isinstance(doc.get("kind"), str) else "WorkflowTemplate"
    if kind not in KINDS:
        return [Problem("kind", f"{doc.get('kind')!r} is not a kind cvatflow validates",
                        f"use one of: {', '.join(KINDS)}")]
    problems, doc = _schema_pass(doc, strict, kind)
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    if cvat is None:
        labels = metadata.get("labels") if isinstance(metadata.get("labels"), dict) else {}
        cvat = labels.get(CVAT_LABEL[0]) == CVAT_LABEL[1]
    problems += _metadata_problems(metadata, kind)
    spec = _dict(doc.get("spec"))
    where = "spec"
    if kind == "CronWorkflow":
        problems += _cron_problems(spec)
        spec, where = _dict(spec.get("workflowSpec")), "spec.workflowSpec"
    problems += _spec_problems(doc, spec, where, kind, cvat)
    return problems


def check(doc: dict[str, Any] | Template, source: str, strict: bool = True) -> list[Problem]:
    """Validate and raise ProblemsError when anything blocks; returns the warnings otherwise."""
    problems = validate(doc, strict=strict)
    if errors_only(problems):
        raise ProblemsError(source, problems)
    return problems


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether mappings and lists nest more than `limit` deep (iterative, stops at the first too-deep value)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in _list(value) if isinstance(v, dict)]


def _items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The mappings of a list with their indexes in it (items of another type are the schema's to report)."""
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_pass(doc: dict[str, Any], strict: bool, kind: str) -> tuple[list[Problem], dict[str, Any]]:
    """Schema errors, and the document without the values they name (so the semantic pass never sees a
    field of the wrong type: each such field is reported once, here)."""
    try:
        if _fast_validator(strict, kind).is_valid(doc):
            return [], doc
    except ValueError:
        pass  # a value JSON cannot hold (bytes): the full pass below reports it
    problems = []
    bad: list[list[Any]] = []
    errors = sorted(schema_validator(strict, kind).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        fix = "see Argo's field reference for this object"
        if error.validator == "additionalProperties":
            fix = "remove the field or fix its spelling; form metadata belongs in the cvatflow.io/parameters annotation"
        elif error.validator == "required":
            fix = "add the missing field"
        elif error.validator == "type":
            fix = f"use a value of type {error.validator_value}"
        problems.append(Problem(_path(error.absolute_path) or "(document)", _short(error.message), fix))
        if error.validator != "required" and error.validator != "additionalProperties":
            bad.append(list(error.absolute_path))
    if not bad:
        return problems, doc
    pruned = copy.deepcopy(doc)
    for path in sorted(bad, key=len, reverse=True):
        _remove(pruned, path)
    return problems, pruned


def _short(message: str, width: int = 200) -> str:
    """A schema message whose echoed value may be a whole subtree, cut to a readable line."""
    return message if len(message) <= width else message[:width] + "…"


def _remove(doc: Any, path: list[Any]) -> None:
    if not path:
        doc.clear() if isinstance(doc, dict) else None
        return
    parent = doc
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        parent[last] = None  # keep the indexes of the other items, so their paths stay right


def _metadata_problems(metadata: dict[str, Any], kind: str) -> Iterator[Problem]:
    name, generate = _str(metadata.get("name")), _str(metadata.get("generateName"))
    limit = MAX_NAME.get(kind, 63)
    if not name and not generate:
        # Argo's validator does not ask for one (`argo lint` passes), but the Kubernetes API refuses to create it.
        yield Problem("metadata.name", f"the {kind} has neither metadata.name nor metadata.generateName; "
                      "Kubernetes will refuse to create it",
                      "set metadata.name (lower-case letters, digits, '-')", severity="warning")
    elif not name and kind != "Workflow":
        # Kubernetes accepts generateName on any kind (`kubectl create`); only `kubectl apply`, which finds the
        # object by name, refuses it. Workflows are submitted by create (`argo submit`), so no warning for them.
        yield Problem("metadata.generateName",
                      f"the {kind} has metadata.generateName {generate!r} but no metadata.name: `kubectl create` "
                      "accepts that (Kubernetes adds a random suffix), `kubectl apply` needs metadata.name "
                      "(cvatflow's check, Kubernetes accepts it)",
                      "create it with `kubectl create -f`, or set metadata.name to use `kubectl apply`",
                      severity="warning")
    if name and (len(name) > 253 or not OBJECT_NAME.match(name)):
        yield Problem("metadata.name", f"{name!r} is not a valid Kubernetes name",
                      "use lower-case letters, digits and '-', starting and ending with a letter or digit")
    elif len(name) > limit:
        yield Problem("metadata.name", f"{kind} name {name!r} is {len(name)} characters, over Argo's {limit}",
                      f"shorten it to {limit} characters")
    if generate and not name and (len(generate) > 253 or not GENERATE_NAME.match(generate)):
        yield Problem("metadata.generateName", f"{generate!r} is not a valid Kubernetes name prefix",
                      "use lower-case letters, digits and '-', starting with a letter or digit")


def _cron_problems(spec: dict[str, Any]) -> Iterator[Problem]:
    schedules = [s for s in _list(spec.get("schedules")) if isinstance(s, str)]
    if isinstance(spec.get("schedule"), str) and spec["schedule"]:
        schedules.append(spec["schedule"])
    if not schedules:
        yield Problem("spec.schedules", "a CronWorkflow needs at least one schedule", "add e.g. `schedules: ['0 * * * *']`")
    for i, schedule in enumerate(schedules):
        if not _cron_ok(schedule):
            yield Problem(f"spec.schedules[{i}]", f"cron schedule {schedule!r} is malformed",
                          "use five fields (minute hour day month weekday) or a descriptor such as @hourly")
    timezone = _str(spec.get("timezone"))
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ValueError, OSError, KeyError):
            yield Problem("spec.timezone", f"invalid timezone {timezone!r}", "use an IANA name such as Europe/Berlin")
    policy = spec.get("concurrencyPolicy", "")
    if isinstance(policy, str) and policy not in CONCURRENCY:
        yield Problem("spec.concurrencyPolicy", f"{policy!r} is not a valid concurrencyPolicy",
                      "use Allow, Forbid or Replace")
    deadline = spec.get("startingDeadlineSeconds")
    if isinstance(deadline, int) and not isinstance(deadline, bool) and deadline < 0:
        yield Problem("spec.startingDeadlineSeconds", "startingDeadlineSeconds must be positive", "use 0 or more")


def _cron_ok(schedule: str) -> bool:
    """Whether `schedule` parses as robfig/cron's ParseStandard would (5 fields, or a descriptor)."""
    text = schedule.strip()
    if text.startswith(("CRON_TZ=", "TZ=")):
        zone, _, text = text.partition(" ")
        try:
            ZoneInfo(zone.split("=", 1)[1])
        except (ValueError, OSError, KeyError):
            return False
    if text.startswith("@every "):
        return bool(re.fullmatch(r"@every (\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", text))
    if text.startswith("@"):
        return text in CRON_DESCRIPTORS
    fields = text.split()
    return len(fields) == 5 and all(CRON_FIELD.match(f) for f in fields)


def _spec_problems(doc: dict[str, Any], spec: dict[str, Any], where: str, kind: str,
                   cvat: bool) -> Iterator[Problem]:
    template_kind = kind in ("WorkflowTemplate", "ClusterWorkflowTemplate")
    ref = spec.get("workflowTemplateRef")
    templates = _dicts(spec.get("templates"))
    parameters, unreadable = _parameters(doc, spec)
    yield from unreadable
    declared = [p for p in _list(_dict(spec.get("arguments")).get("parameters"))]
    yield from _name_list_problems(declared, f"{where}.arguments.parameters", "parameter", ARGO_NAME_PATTERN)
    yield from _name_list_problems(_list(_dict(spec.get("arguments")).get("artifacts")),
                                   f"{where}.arguments.artifacts", "artifact", ARGO_NAME_PATTERN)
    yield from _argument_values(declared, f"{where}.arguments.parameters")
    yield from _form_problems(parameters, f"{where}.arguments.parameters", cvat)
    if isinstance(ref, dict):
        if templates:
            yield Problem(f"{where}.templates", "a Workflow with a workflowTemplateRef cannot have its own templates",
                          "remove spec.templates or the workflowTemplateRef")
        if not _str(ref.get("name")):
            yield Problem(f"{where}.workflowTemplateRef.name", "names no WorkflowTemplate", "set the template's name")
        return  # the referenced template's own checks apply when it is validated itself
    yield from trace.checks(spec, parameters)  # unused parameters, min/max (issue 19)
    names = yield from _template_problems(spec.get("templates"), where)
    entrypoint = _str(spec.get("entrypoint"))
    if not entrypoint and not template_kind:
        yield Problem(f"{where}.entrypoint", "spec.entrypoint is required",
                      "set spec.entrypoint to the name of the template to run")
    elif entrypoint and not PLACEHOLDER.search(entrypoint) and entrypoint not in names:
        yield Problem(f"{where}.entrypoint", f"entrypoint {entrypoint!r} is not a template",
                      f"name one of: {', '.join(names) or 'no templates defined'}")
    elif entrypoint and cvat and "dag" not in names.get(entrypoint, {"dag": 1}):
        yield Problem(f"{where}.entrypoint", f"entrypoint {entrypoint!r} is not a DAG ({OURS}): CVAT templates "
                      "run as a DAG so that runs show their steps", "make the entrypoint a `dag` template whose "
                      "tasks call the steps", severity="warning")
    on_exit = _str(spec.get("onExit"))
    if on_exit and not PLACEHOLDER.search(on_exit) and on_exit not in names:
        yield Problem(f"{where}.onExit", f"onExit template {on_exit!r} is undefined", "name one of the templates")
    strategy = _dict(spec.get("podGC")).get("strategy", "")
    if isinstance(strategy, str) and strategy not in POD_GC:
        yield Problem(f"{where}.podGC.strategy", f"unknown strategy {strategy!r}", f"use one of: {', '.join(POD_GC[1:])}")
    # Undeclared {{workflow.parameters.x}}: Argo refuses it in a Workflow; a (Cluster)WorkflowTemplate may get
    # the value from the Workflow that uses it, but CVAT's form can only fill declared parameters.
    workflow_parameters = {p.name for p in parameters} | ({"json"} if parameters else set())  # Argo's own
    undeclared = "error" if not template_kind else ("warning" if cvat else None)
    defaults = _dict(spec.get("templateDefaults"))
    default_image = {key: bool(_str(_dict(defaults.get(key)).get("image"))) for key in ("container", "script")}
    for i, tpl in _items(spec.get("templates")):
        path = f"{where}.templates[{i}]"
        yield from _reference_problems(tpl, path, workflow_parameters, undeclared)
        yield from _io_problems(tpl, path)
        yield from _leaf_problems(tpl, path, default_image)
        yield from shell_warnings(tpl, path)
        if "dag" in tpl:
            yield from _dag_problems(tpl, path, names)
        if "steps" in tpl:
            yield from _steps_problems(tpl, path, names)
    yield from _volume_warnings(spec, where)


def _parameters(doc: dict[str, Any], spec: dict[str, Any]) -> tuple[list[Parameter], list[Problem]]:
    """The parameters with their form metadata, read the way import reads them, and a problem if unreadable."""
    argo = [Parameter.from_dict(p) for p in _dicts(_dict(spec.get("arguments")).get("parameters"))]
    raw = _dict(_dict(doc.get("metadata")).get("annotations")).get(PARAMETERS_ANNOTATION)
    try:
        return annotated_parameters(raw, argo, "metadata.annotations"), []
    except TemplateError:
        return argo, [Problem(f"metadata.annotations.{PARAMETERS_ANNOTATION}", "is not a JSON list of parameters",
                              "re-render the template with `cvatflow templates render`")]


def _name_list_problems(items: list[Any], where: str, what: str, pattern: re.Pattern) -> Iterator[Problem]:
    """Argo's validateWorkflowFieldNames: each item named, well-formed and unique."""
    seen: set[str] = set()
    for i, item in enumerate(_list(items)):
        if not isinstance(item, dict):
            continue
        name = item.get("name")
        if not isinstance(name, str):
            continue  # a missing or wrong-typed name is the schema's error
        if not name:
            yield Problem(f"{where}[{i}].name", f"{what} name is required", f"name the {what}")
        elif not pattern.match(name) or (pattern is STEP_NAME and len(name) > 128):
            rule = ("letters, digits, '_' and '-'" if pattern is ARGO_NAME_PATTERN
                    else "letters, digits and '-', starting with a letter or digit, at most 128 characters")
            yield Problem(f"{where}[{i}]", f"{what} name {name!r} is not well-formed", f"use {rule}")
        elif name in seen:
            yield Problem(f"{where}[{i}]", f"{what} name {name!r} is declared twice", "rename one of them")
        seen.add(name)


def _argument_values(items: list[Any], where: str) -> Iterator[Problem]:
    """Argo's validateArgumentsValues for templates (values may be left for the submitter to give)."""
    for i, item in _items(items):
        enum = item.get("enum")
        name = _str(item.get("name"))
        if isinstance(enum, list) and not enum:
            yield Problem(f"{where}[{i}].enum", f"parameter {name!r} has an empty enum", "list at least one value")
        value_from = _dict(item.get("valueFrom"))
        if value_from and not ({"configMapKeyRef", "event", "supplied"} & set(value_from)) or \
                {"path", "jsonPath", "parameter", "expression"} & set(value_from):
            yield Problem(f"{where}[{i}].valueFrom", f"parameter {name!r}: valueFrom only allows default, "
                          "configMapKeyRef and supplied here", "use one of those")


def _form_problems(parameters: list[Parameter], where: str, cvat: bool) -> Iterator[Problem]:
    """The form metadata CVAT shows (Onepanel's fields) and Argo's enum rule, which `options` render to."""
    for i, p in enumerate(parameters):
        path = f"{where}[{i}]"
        if cvat and ARGO_NAME_PATTERN.match(p.name) and not NAME_PATTERN.match(p.name):
            yield Problem(path, f"parameter name {p.name!r} is not in Onepanel style ({OURS})",
                          "lower-case letters, digits and '-' (e.g. batch-size) read best in CVAT's form",
                          severity="warning")
        if p.type not in PARAMETER_TYPES:
            yield Problem(path, f"parameter {p.name!r} has unknown type {p.type!r}",
                          f"use one of: {', '.join(PARAMETER_TYPES)}")
        if p.visibility not in VISIBILITIES:
            yield Problem(path, f"parameter {p.name!r} has unknown visibility {p.visibility!r}",
                          f"use one of: {', '.join(VISIBILITIES)}")
        if p.type in CHOICE_TYPES and not p.options:
            yield Problem(path, f"parameter {p.name!r} of type {p.type} has no options", "add options [{name, value}]")
        if p.options and p.value and p.value not in p.option_values:
            yield Problem(path, f"parameter {p.name!r} has value {p.value!r}, which is not among its options",
                          f"use one of: {', '.join(p.option_values)}")
        if p.type == "input.number" and p.value and not is_number(p.value):
            yield Problem(path, f"parameter {p.name!r} is a number but its value is {p.value!r}",
                          "give a number such as 10 or 0.5")


def _template_problems(templates: Any, where: str):
    """Names and types of the templates; returns {name: template} (a generator's return value)."""
    names: dict[str, dict[str, Any]] = {}
    yield from _name_list_problems(templates, f"{where}.templates", "template", STEP_NAME)
    for i, tpl in _items(templates):
        name = _str(tpl.get("name"))
        names.setdefault(name, tpl)
        kinds = [k for k in TEMPLATE_TYPES if tpl.get(k) is not None]
        path = f"{where}.templates[{i}]"
        if not kinds:
            yield Problem(path, f"template {name!r} has no type",
                          f"give it exactly one of: {', '.join(TEMPLATE_TYPES)}")
        elif len(kinds) > 1:
            yield Problem(path, f"template {name!r} has several types ({', '.join(kinds)})",
                          "a template is exactly one of container, script, dag, steps, ...")
        policy = _dict(tpl.get("retryStrategy")).get("retryPolicy", "")
        if isinstance(policy, str) and policy not in RETRY_POLICIES:
            yield Problem(f"{path}.retryStrategy.retryPolicy", f"{policy!r} is not a valid RetryPolicy",
                          f"use one of: {', '.join(RETRY_POLICIES[:-1])}")
    return names


def _strings(value: Any, path: str, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """Every string in `value` with its path, without descending into keys named in `skip`."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            stack.extend((v, f"{where}.{k}") for k, v in item.items() if k not in skip)
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))


def _reference_problems(tpl: dict[str, Any], where: str, workflow_parameters: set[str],
                        undeclared: str | None) -> Iterator[Problem]:
    inputs = _dict(tpl.get("inputs"))
    input_parameters = {p.get("name") for p in _dicts(inputs.get("parameters"))}
    input_artifacts = {a.get("name") for a in _dicts(inputs.get("artifacts"))}
    # An inline template has inputs of its own; it is not checked against this one's.
    for path, text in _strings(tpl, where, skip=("inline",)):
        if "{{" not in text:
            continue
        for scope, name in PARAMETER_REF.findall(text):
            if scope == "workflow" and undeclared and name not in workflow_parameters:
                ours = f" ({OURS} in a WorkflowTemplate; CVAT's form can only fill declared parameters)" \
                    if undeclared == "warning" else ""
                yield Problem(path, f"{{{{workflow.parameters.{name}}}}} refers to a parameter that is not "
                                    f"declared{ours}", f"add {name!r} to spec.arguments.parameters or fix the name",
                              severity=undeclared)
            elif scope == "inputs" and name not in input_parameters:
                yield Problem(path, f"{{{{inputs.parameters.{name}}}}} refers to an input this template lacks",
                              f"add {name!r} to the template's inputs.parameters or fix the name")
        for name in ARTIFACT_REF.findall(text):
            if name not in input_artifacts:
                yield Problem(path, f"{{{{inputs.artifacts.{name}}}}} refers to an input artifact this template lacks",
                              f"add {name!r} to the template's inputs.artifacts or fix the name")


def _io_problems(tpl: dict[str, Any], where: str) -> Iterator[Problem]:
    leaf = any(tpl.get(k) is not None for k in LEAF_TYPES)
    for side in ("inputs", "outputs"):
        io = _dict(tpl.get(side))
        yield from _name_list_problems(_list(io.get("parameters")), f"{where}.{side}.parameters", "parameter",
                                       ARGO_NAME_PATTERN)
        yield from _name_list_problems(_list(io.get("artifacts")), f"{where}.{side}.artifacts", "artifact",
                                       ARGO_NAME_PATTERN)
        for j, artifact in _items(io.get("artifacts")):
            path = f"{where}.{side}.artifacts[{j}]"
            locations = [k for k in LOCATION_KEYS if artifact.get(k) is not None]
            if len(locations) > 1:
                yield Problem(path, f"artifact {artifact.get('name')!r} has {len(locations)} locations "
                                    f"({', '.join(locations)}); Argo uses only one ({OURS})",
                              "keep exactly one location per artifact", severity="warning")
            if side == "inputs" and artifact.get("from"):
                yield Problem(f"{path}.from", "`from` is not valid in inputs", "use it in arguments instead")
            if side == "inputs" and artifact.get("path") and not leaf:
                yield Problem(f"{path}.path", "an artifact path is only valid in container/script templates",
                              "remove the path")
            if isinstance(artifact.get("git"), dict) and not _str(artifact["git"].get("repo")):
                yield Problem(f"{path}.git.repo", "git.repo is required", "give the repository URL")
    for j, parameter in _items(_dict(tpl.get("outputs")).get("parameters")):
        yield from _output_parameter(parameter, f"{where}.outputs.parameters[{j}]", tpl)


# What an output parameter's valueFrom must name, by template type (Argo's validateOutputs).
VALUE_FROM_TYPES = ("path", "jqFilter", "jsonPath", "parameter", "expression", "supplied")


def _output_parameter(parameter: dict[str, Any], path: str, tpl: dict[str, Any]) -> Iterator[Problem]:
    name = parameter.get("name")
    value_from = parameter.get("valueFrom")
    if value_from is not None and parameter.get("value") is not None:
        yield Problem(path, f"output parameter {name!r} has both value and valueFrom", "keep one of them")
        return
    if parameter.get("value") is not None:
        return
    if not isinstance(value_from, dict):
        yield Problem(path, f"output parameter {name!r} has neither value nor valueFrom", "add valueFrom (e.g. path)")
        return
    given = [k for k in VALUE_FROM_TYPES if value_from.get(k) not in (None, "")]
    if len(given) != 1:
        yield Problem(f"{path}.valueFrom", f"output parameter {name!r}: valueFrom names {len(given)} sources "
                      f"({', '.join(given) or 'none'})", f"give exactly one of: {', '.join(VALUE_FROM_TYPES)}")
        return
    needs = {"container": ("path",), "script": ("path",), "containerSet": ("path",),
             "resource": ("jqFilter", "jsonPath"), "dag": ("parameter", "expression"),
             "steps": ("parameter", "expression")}
    for kind, allowed in needs.items():
        if tpl.get(kind) is not None and given[0] not in allowed:
            yield Problem(f"{path}.valueFrom", f"output parameter {name!r} of a {kind} template needs valueFrom "
                          f"{' or '.join(allowed)}", f"use valueFrom.{allowed[0]}")
            return


def _leaf_problems(tpl: dict[str, Any], where: str, default_image: dict[str, bool]) -> Iterator[Problem]:
    name = _str(tpl.get("name"))
    leaf = any(tpl.get(k) is not None for k in LEAF_TYPES) or tpl.get("suspend") is not None
    if not leaf and tpl.get("activeDeadlineSeconds") is not None:
        yield Problem(f"{where}.activeDeadlineSeconds", "activeDeadlineSeconds is only valid for leaf templates",
                      "set it on the templates this one calls")
    if tpl.get("parallelism") is not None and tpl.get("steps") is None and tpl.get("dag") is None:
        yield Problem(f"{where}.parallelism", "parallelism is only valid for steps and dag templates",
                      "remove it or set it on the calling steps/dag template")
    for key in ("container", "script"):
        body = tpl.get(key)
        if isinstance(body, dict) and not _str(body.get("image")) and not default_image[key]:
            yield Problem(f"{where}.{key}.image", f"template {name!r}: {key}.image may not be empty",
                          f"give the image to run (or templateDefaults.{key}.image)")
    container = _dict(tpl.get("container"))
    mounted: dict[str, str] = {}
    for i, mount in _items(container.get("volumeMounts")):
        at = mount.get("mountPath")
        if isinstance(at, str) and at in mounted:
            yield Problem(f"{where}.container.volumeMounts[{i}].mountPath", f"{at!r} is already mounted "
                          f"({mounted[at]})", "mount each path once")
        elif isinstance(at, str):
            mounted[at] = f"volume {mount.get('name')!r}"
    if container:
        for i, artifact in _items(_dict(tpl.get("inputs")).get("artifacts")):
            at = artifact.get("path")
            if isinstance(at, str) and at in mounted:
                yield Problem(f"{where}.inputs.artifacts[{i}].path", f"{at!r} is already mounted ({mounted[at]})",
                              "load the artifact to another path")
            elif isinstance(at, str):
                mounted[at] = f"input artifact {artifact.get('name')!r}"
    for i, sidecar in _items(tpl.get("sidecars")):
        if sidecar.get("name") in RESERVED_CONTAINERS:
            yield Problem(f"{where}.sidecars[{i}]", f"{sidecar['name']!r} is a reserved Argo container name",
                          "rename the sidecar")
    resource = tpl.get("resource")
    if isinstance(resource, dict):
        action = resource.get("action")
        if isinstance(action, str) and not PLACEHOLDER.search(action) and action not in RESOURCE_ACTIONS:
            yield Problem(f"{where}.resource.action", f"resource action {action!r} is not one Argo knows",
                          f"use one of: {', '.join(RESOURCE_ACTIONS)}")
        manifest, manifest_from = resource.get("manifest"), resource.get("manifestFrom")
        if action not in ("delete", "get") and not manifest and manifest_from is None:
            yield Problem(f"{where}.resource", "give resource.manifest or resource.manifestFrom",
                          "add the manifest of the object to act on")
        elif action not in ("delete", "get") and manifest and manifest_from is not None:
            yield Problem(f"{where}.resource", "give only one of resource.manifest and resource.manifestFrom",
                          "keep one of them")
        if isinstance(manifest, str) and manifest.strip() and not _manifest_parses(manifest):
            yield Problem(f"{where}.resource.manifest", "the manifest is not valid YAML (with each {{...}} replaced "
                          "by a placeholder, as Argo's validator reads it)", "fix the YAML of the manifest")
        for key in ("successCondition", "failureCondition"):
            yield from condition_problems(resource.get(key), f"{where}.resource.{key}")


def condition_problems(condition: Any, path: str) -> Iterator[Problem]:
    """A resource step's success/failure condition in the Kubernetes label-selector grammar, which Argo's executor
    parses with labels.Parse at run time (`argo lint` does not): an unparsable one fails the step every time.

    A condition with {{...}} is parsed with each placeholder as a plain word; if it still fails, the substituted
    value might fix it, so that is a warning.
    """
    from cvatflow.templates.selector import SelectorError, parse

    if not isinstance(condition, str) or not condition:
        return
    text, placeholders = PLACEHOLDER.subn("placeholder", condition)
    try:
        parse(text)
    except SelectorError as exc:
        yield Problem(path, f"{condition!r} is no Kubernetes label selector, which Argo parses it as: {exc}",
                      "use `<json path> <op> <value>` joined by commas (ops =, ==, !=, in, notin, >, <; "
                      "`!key` or `key` alone), e.g. `status.terminalState = Completed`; JSON paths with "
                      "#(...) filters cannot be written in it",
                      severity="warning" if placeholders else "error")


def _manifest_parses(manifest: str) -> bool:
    import yaml

    try:
        list(yaml.safe_load_all(PLACEHOLDER.sub("placeholder", manifest)))
    except yaml.YAMLError:
        return False
    return True


def _dag_problems(tpl: dict[str, Any], where: str, templates: dict[str, dict[str, Any]]) -> Iterator[Problem]:
    dag = _dict(tpl.get("dag"))
    tasks = _dicts(dag.get("tasks"))
    name = _str(tpl.get("name"))
    if not tasks:
        yield Problem(f"{where}.dag.tasks", f"DAG {name!r} must have at least one task", "add a task")
        return
    yield from _name_list_problems(tasks, f"{where}.dag.tasks", "task", STEP_NAME)
    task_names = [_str(t.get("name")) for t in tasks]
    using_depends = any(_str(t.get("depends")) for t in tasks)
    graph: dict[str, set[str]] = {}
    for j, task in _items(dag.get("tasks")):
        path = f"{where}.dag.tasks[{j}]"
        tname = _str(task.get("name"))
        yield from _call_problems(task, path, templates)
        deps = {d for d in _list(task.get("dependencies")) if isinstance(d, str)}
        if deps and using_depends:
            yield Problem(path, f"DAG {name!r} uses both `depends` and `dependencies`",
                          "use `depends` in every task (or `dependencies` in every task)")
        if using_depends and task.get("continueOn") is not None:
            yield Problem(path, f"task {tname!r}: `continueOn` cannot be used with `depends`",
                          "use `depends: 'a.Failed || a.Succeeded'` instead")
        if (using_depends or deps) and tname[:1].isdigit():
            yield Problem(path, f"task name {tname!r} cannot begin with a digit when the DAG uses dependencies",
                          "rename the task")
        depends = _str(task.get("depends"))
        if depends:
            # `depends` is a boolean expression over task names and their results (A.Succeeded || B).
            deps |= {word.split(".")[0] for word in re.findall(r"[A-Za-z0-9_][-A-Za-z0-9_.]*", depends)}
        for dep in sorted(deps):
            if dep not in task_names:
                yield Problem(path, f"task {tname!r} depends on {dep!r}, which is not a task of this DAG",
                              f"name one of: {', '.join(n for n in task_names if n != tname)}")
        for text_path, text in _strings(task, path, skip=("inline",)):
            for ref in TASK_REF.findall(text):
                if ref not in task_names and "{{" not in ref:
                    yield Problem(text_path, f"reference to task {ref!r}, which is not a task of this DAG",
                                  "fix the task name")
        graph[tname] = {d for d in deps if d in task_names}
    for target in _str(dag.get("target")).replace(",", " ").split():
        if target not in task_names and not PLACEHOLDER.search(target):
            yield Problem(f"{where}.dag.target", f"target {target!r} is not a task of this DAG", "fix the name")
    cycle = _find_cycle(graph)
    if cycle:
        yield Problem(f"{where}.dag", f"tasks depend on each other in a cycle: {' -> '.join(cycle)}",
                      "remove one of these dependencies")


def _steps_problems(tpl: dict[str, Any], where: str, templates: dict[str, dict[str, Any]]) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, group in enumerate(_list(tpl.get("steps"))):
        for j, step in _items(group):
            path = f"{where}.steps[{i}][{j}]"
            name = step.get("name")
            if not isinstance(name, str):
                continue
            if not name:
                yield Problem(path, "step name is required", "name the step")
            elif name in seen:
                yield Problem(path, f"step name {name!r} is not unique", "rename one of the steps")
            elif not STEP_NAME.match(PLACEHOLDER.sub("x", name)) or len(name) > 128:
                yield Problem(path, f"step name {name!r} is not well-formed",
                              "use letters, digits and '-', starting with a letter or digit")
            seen.add(name)
            yield from _call_problems(step, path, templates)


def _call_problems(call: dict[str, Any], path: str, templates: dict[str, dict[str, Any]]) -> Iterator[Problem]:
    """A step or task names a template of this spec, a templateRef, or an inline template (one of them)."""
    target, ref = call.get("template"), call.get("templateRef")
    if isinstance(target, str) and target and isinstance(ref, dict):
        yield Problem(path, "template name cannot be given with templateRef", "keep one of them")
    elif isinstance(target, str) and target and not PLACEHOLDER.search(target) and target not in templates:
        yield Problem(path, f"{call.get('name')!r} calls template {target!r}, which does not exist",
                      f"name one of: {', '.join(templates)}")
    if isinstance(ref, dict):
        for key in ("name", "template"):
            if not _str(ref.get(key)):
                yield Problem(f"{path}.templateRef.{key}", f"templateRef.{key} is required", f"give the {key}")
    arguments = _dict(call.get("arguments"))
    where = f"{path}.arguments.parameters"
    yield from _name_list_problems(arguments.get("parameters"), where, "parameter", ARGO_NAME_PATTERN)
    yield from _name_list_problems(arguments.get("artifacts"), f"{path}.arguments.artifacts", "artifact",
                                   ARGO_NAME_PATTERN)
    yield from _argument_values(arguments.get("parameters"), where)
    for i, parameter in _items(arguments.get("parameters")):
        if parameter.get("value") is None and parameter.get("valueFrom") is None:
            yield Problem(f"{where}[{i}]", f"argument {parameter.get('name')!r} needs a value or valueFrom",
                          "give the value the called template gets")
        enum = parameter.get("enum")
        if isinstance(enum, list) and enum and parameter.get("value") is not None and \
                source_text(parameter, "value") not in [source_text(enum, k) for k in range(len(enum))]:
            yield Problem(f"{where}[{i}]", f"argument {parameter.get('name')!r}: value is not in its enum",
                          "use one of the enum values")
    for i, artifact in _items(arguments.get("artifacts")):
        has_location = any(artifact.get(k) is not None for k in LOCATION_KEYS)
        if not artifact.get("from") and not artifact.get("fromExpression") and not has_location:
            yield Problem(f"{path}.arguments.artifacts[{i}]", f"argument artifact {artifact.get('name')!r} needs "
                          "from, an artifact location, or a key", "say where the artifact comes from")
        if artifact.get("from") and artifact.get("fromExpression"):
            yield Problem(f"{path}.arguments.artifacts[{i}]", f"argument artifact {artifact.get('name')!r} has "
                          "both `from` and `fromExpression`", "keep one of them")
    sequence = _dict(call.get("withSequence"))
    if sequence.get("count") is not None and sequence.get("end") is not None:
        yield Problem(f"{path}.withSequence", "only one of count or end can be given in withSequence",
                      "keep one of them")
    loops = [k for k in ("withItems", "withParam", "withSequence") if call.get(k) is not None]
    if len(loops) > 1:
        yield Problem(path, f"only one of withItems, withParam, withSequence can be given ({', '.join(loops)})",
                      "keep one of them")


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One dependency cycle (its names, first repeated at the end), or [] (iterative: DAGs can be long)."""
    state: dict[str, int] = {}
    for root in sorted(graph):
        if root in state:
            continue
        stack: list[tuple[str, list[str]]] = [(root, sorted(graph.get(root, ())))]
        path = [root]
        state[root] = 1
        while stack:
            node, pending = stack[-1]
            if not pending:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            dep = pending.pop(0)
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                state[dep] = 1
                path.append(dep)
                stack.append((dep, sorted(graph.get(dep, ()))))
    return []


def _volume_warnings(spec: dict[str, Any], where: str) -> Iterator[Problem]:
    """A mount of a volume the workflow does not declare: Kubernetes refuses the pod when the step starts."""
    volumes = {v.get("name") for v in _dicts(spec.get("volumes"))}
    volumes |= {_dict(c.get("metadata")).get("name") for c in _dicts(spec.get("volumeClaimTemplates"))}
    for i, tpl in _items(spec.get("templates")):
        volumes_here = volumes | {v.get("name") for v in _dicts(tpl.get("volumes"))}
        for key in ("container", "script"):
            for j, mount in _items(_dict(tpl.get(key)).get("volumeMounts")):
                mounted = mount.get("name")
                if isinstance(mounted, str) and mounted not in volumes_here and not PLACEHOLDER.search(mounted):
                    yield Problem(f"{where}.templates[{i}].{key}.volumeMounts[{j}]",
                                  f"mounts volume {mounted!r}, which is not declared here (Kubernetes refuses the "
                                  f"pod unless a Workflow or a default supplies it)",
                                  "add it to spec.volumes or spec.volumeClaimTemplates", severity="warning")
