"""Fill a template's reserved parameters, validate every value, and place the run on a node pool."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from cvatflow.config import NodePool, NodePools
from cvatflow.errors import NotFoundError, ParameterError, Problem, ProblemsError
from cvatflow.nodepool import (
    NODE_POOL_RESOURCES,
    NODE_POOL_SELECTOR,
    NODE_POOL_TOLERATIONS,
    fit_problems,
    gpu_count,
    jobset_placement,
    patched_steps,
    pod_patch,
)
from cvatflow.numbers import whole_number
from cvatflow.one_value import FIELD_KEYS, Setting, annotation, reconcile
from cvatflow.output_path import task_output_path
from cvatflow.storage.keys import key_problem
from cvatflow.templates.parameter import (
    ANNOTATION_PATH,
    CHOICE_TYPES,
    DUMP_FORMAT,
    FINETUNE_CHECKPOINT,
    NODE_POOL,
    NUM_CLASSES,
    OUTPUT_PATH,
    Option,
    Parameter,
    is_number,
    wire_string,
)
from cvatflow.templates.steps import GPUS, NODE_POOL_PATCH, NODES, launched_program
from cvatflow.templates.template import Template

CHECKPOINT_MISSING = "Checkpoint path does not exist in object storage."
YAML_TYPES = ("editor.yaml",)
# Textareas whose content the training images parse as YAML, whatever type the template gave them.
YAML_NAMES = ("hyperparameters",)
# Fields the training image takes as flags (val-split goes to the dataset step, which accepts 0 to 99).
FLAG_FIELDS = ("epochs", "batch-size")
# Longer numbers are refused before float() is asked (a 45,000-digit "number" would pass as inf or 1e44999).
MAX_NUMBER_CHARS = 40


@dataclass
class CvatTask:
    """The CVAT task a run trains on: what auto-fill needs of it."""

    id: int | str
    labels: list[str] = field(default_factory=list)
    name: str = ""
    job_id: int | str | None = None
    workspace_uid: str = ""


@dataclass
class Filled:
    """A template's parameters, filled and checked, ready to submit; plus the labels the run carries."""

    template: Template
    values: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)
    node_pool: NodePool | None = None
    # Effective hyperparameters that the form or the YAML set, by YAML key, with their sources.
    settings: dict[str, Setting] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def arguments(self) -> list[dict[str, str]]:
        """Argo's `arguments.parameters`, in the template's order."""
        return [{"name": name, "value": value} for name, value in self.values.items()]


def run_labels(task: CvatTask | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Labels on a run: ours, plus the two Onepanel set (cvat-job-id was Onepanel's name for the task id)."""
    labels = {"app.kubernetes.io/managed-by": "cvatflow"}
    if task is not None:
        labels["cvatflow.io/cvat-task-id"] = str(task.id)
        labels["cvat-job-id"] = str(task.job_id if task.job_id is not None else task.id)
        if task.workspace_uid:
            labels["workspace-uid"] = task.workspace_uid
    labels.update(extra or {})
    return labels


def autofill(
    template: Template,
    values: dict[str, Any] | None = None,
    *,
    task: CvatTask | None = None,
    annotation_path: str | None = None,
    num_classes: int | None = None,
    output_path: str | None = None,
    node_pools: NodePools | None = None,
    checkpoint_exists: Callable[[str], bool] | None = None,
    labels: dict[str, str] | None = None,
) -> Filled:
    """Fill the reserved parameters and check every value; all problems are raised together.

    `values` are the user's (unknown names are refused); reserved ones are filled from the task, the
    dump (`annotation_path`) or the dataset (`num_classes`). `checkpoint_exists(prefix)` asks the object
    store; a missing fine-tune checkpoint alone is a NotFoundError with Onepanel's message.
    """
    problems: list[Problem] = []
    given = {str(k): wire_string(v) for k, v in (values or {}).items()}
    resolved: dict[str, str] = {}
    for name, value in given.items():
        if template.has_parameter(name):
            resolved[template.parameter(name).name] = value  # legacy alias -> the template's own name
        else:
            problems.append(Problem(name, f"template {template.name!r} has no parameter {name!r}",
                                    f"use one of: {', '.join(p.name for p in template.parameters)}"))

    def fill(role: str, value: str | None) -> None:
        if value is not None and template.has_parameter(role):
            resolved[template.parameter(role).name] = value

    fill(ANNOTATION_PATH, annotation_path)
    if num_classes is None and task is not None and task.labels:
        num_classes = len(task.labels)
    fill(NUM_CLASSES, str(num_classes) if num_classes is not None else None)
    if output_path is None and task is not None and template.has_parameter(OUTPUT_PATH):
        output = template.parameter(OUTPUT_PATH)
        output_path = task_output_path(task.id, resolved.get(output.name), output.value)
    fill(OUTPUT_PATH, output_path)

    final = {p.name: resolved.get(p.name, p.value) for p in template.parameters}
    pool = _place(template, final, node_pools or NodePools(), problems)
    settings = reconcile(template, resolved, final, problems) if _runs_cvatflow_train(template) else {}
    checkpoint_missing = False
    for p in template.parameters:
        value = final[p.name]
        if p.required and value.strip() == "":
            problems.append(Problem(p.name, f"{p.label} is required", f"give a value for {p.name}"))
            continue
        if value == "":
            continue
        if p.type == "input.number":
            found = number_problems(p, value)
            if not found and p.name in FLAG_FIELDS and settings:
                # the training image reads it as its hyperparameter: the schema's type and bounds hold too
                found = _hyperparameter_problem(p.name, f"{FIELD_KEYS[p.name]}: {value}")
                if not found:
                    final[p.name] = str(int(float(value)))  # "3.0" -> "3": the image's flag takes integers
            problems.extend(found)
        if p.type in CHOICE_TYPES and p.options and value not in p.option_values:
            problems.append(Problem(p.name, f"{value!r} is not an option of {p.label}",
                                    f"use one of: {', '.join(p.option_values)}"))
        if p.type in YAML_TYPES or p.name in YAML_NAMES:
            found = _yaml_problem(p.name, p.label, value)
            if not found and p.name in YAML_NAMES and _runs_cvatflow_train(template):
                found = _hyperparameter_problem(p.name, value)
            problems.extend(found)
        if p.role == DUMP_FORMAT:
            problems.extend(_dump_format_problem(p.name, value))
        if p.role in (OUTPUT_PATH, ANNOTATION_PATH) and (bad := key_problem(value)):
            problems.append(Problem(p.name, f"{p.label} {bad}", "give a key like outputs/task-3"))
        if p.role == FINETUNE_CHECKPOINT:
            if any(c in value for c in "'\"\\\n"):
                problems.append(Problem(p.name, "the checkpoint path contains quotes, backslashes or line breaks",
                                        "give an object-store prefix like outputs/task-3/maskrcnn-training-x7k2p"))
            elif checkpoint_exists is not None and not checkpoint_exists(value):
                checkpoint_missing = True
    problems.extend(manifest_problems(template, final))
    if checkpoint_missing and not problems:
        raise NotFoundError(CHECKPOINT_MISSING)
    if checkpoint_missing:
        problems.append(Problem(template.parameter(FINETUNE_CHECKPOINT).name, CHECKPOINT_MISSING,
                                "give the output prefix of an earlier run, or leave it empty"))
    if problems:
        raise ProblemsError(f"parameters of {template.name}", problems)
    return Filled(template=template, values=final, labels=run_labels(task, labels), node_pool=pool,
                  settings=settings, annotations=annotation(settings))


# Characters that would let a value leave its quoted field in a resource manifest's YAML.
MANIFEST_UNSAFE = re.compile(r"['\"\\\r\n]")


def manifest_problems(template: Template, final: dict[str, str]) -> list[Problem]:
    """Values Argo pastes into a resource step's manifest (the JobSet of a multi-node run) as YAML text: a quote,
    backslash or line break there could end the field and add others, so such values are refused. The node-pool
    JSON cvatflow writes itself is exempt."""
    used: set[str] = set()
    for step in template.spec.get("templates") or []:
        manifest = (step.get("resource") or {}).get("manifest") if isinstance(step, dict) else None
        if isinstance(manifest, str):
            used |= set(re.findall(r"{{\s*workflow\.parameters\.([^}\s]+)\s*}}", manifest))
    own = {NODE_POOL_SELECTOR, NODE_POOL_TOLERATIONS, NODE_POOL_RESOURCES}
    return [Problem(name, "the value goes into a Kubernetes manifest (multi-node runs) and contains quotes, "
                          "backslashes or line breaks", "give a value without them")
            for name in sorted(used - own) if MANIFEST_UNSAFE.search(final.get(name, ""))]


def number_problems(p: Parameter, value: str) -> list[Problem]:
    """An `input.number` value: a finite number of at most MAX_NUMBER_CHARS characters, within the parameter's
    `min`/`max` (its cvatflow metadata). Argo itself would pass any string; these limits are ours."""
    from cvatflow.training.hyperparameters import bound_rule, out_of_bounds

    if len(value) > MAX_NUMBER_CHARS:
        return [Problem(p.name, f"{p.label} is a number of {len(value)} characters; at most "
                        f"{MAX_NUMBER_CHARS} are accepted", "give a number like 10")]
    if not is_number(value) or not math.isfinite(float(value)):
        kind = "a finite number" if is_number(value) else "a number"
        return [Problem(p.name, f"{p.label} must be {kind}, not {value!r}", "give a number like 10")]
    low, high = p.bounds
    if out_of_bounds(float(value), low, high):
        return [Problem(p.name, f"{p.label} must be {bound_rule(low, high)}, not {value}",
                        f"give a value that is {bound_rule(low, high)}")]
    return []


def _place(template: Template, final: dict[str, str], pools: NodePools, problems: list[Problem]) -> NodePool | None:
    """Resolve `sys-node-pool` ("default" = the first pool), check the steps fit its nodes, write the pod patch."""
    if not template.has_parameter(NODE_POOL) or not pools.pools:
        _distribute(template, final, None, "", None, problems)
        return None
    name = template.parameter(NODE_POOL).name
    wanted = final[name]
    if wanted in ("", "default"):
        pool = pools.pools[0]
    else:
        pool = next((p for p in pools.pools if wanted in (p.value, p.name)), None)
        if pool is None:
            problems.append(Problem(name, f"node pool {wanted!r} is not configured",
                                    f"use one of: {', '.join(p.value for p in pools.pools)}"))
            return None
    final[name] = pool.value
    placed = template.has_parameter(NODE_POOL_PATCH) or template.has_parameter(NODE_POOL_RESOURCES)
    allocatable = pools.allocatable(pool) if placed else None
    gpus = _distribute(template, final, pool, pools.label, allocatable, problems)
    if template.has_parameter(NODE_POOL_PATCH):
        if allocatable is not None:
            problems.extend(fit_problems(template, pool, pools.label, allocatable, name, gpus))
        final[NODE_POOL_PATCH] = json.dumps(pod_patch(pool, pools.label, allocatable, gpus, _step_requests(template)),
                                            separators=(",", ":"))
    return pool


def _distribute(template: Template, final: dict[str, str], pool: NodePool | None, label: str,
                allocatable: dict[str, str] | None, problems: list[Problem]) -> int:
    """Resolve `gpus: auto` to the pool's GPU count (one process where it has none), make `nodes` a whole number,
    and fill the JobSet's placement parameters; returns the GPUs per pod (0 = none asked for)."""
    gpus = 0
    if template.has_parameter(GPUS):
        name = template.parameter(GPUS).name
        value = final[name].strip()
        if value == "auto":
            gpus = gpu_count(pool.resources, allocatable) if pool else 0
            final[name] = str(max(gpus, 1))
        elif (whole_number(value, 6) or 0) >= 1:
            gpus = int(value)
        else:
            problems.append(Problem(name, f"GPUs per node must be auto or a whole number of at least 1, not {value!r}",
                                    "give auto, 1, 2, 4 or 8"))
    if template.has_parameter(NODES):
        name = template.parameter(NODES).name
        value = final[name].strip()
        if is_number(value) and math.isfinite(float(value)) and float(value).is_integer():
            final[name] = str(int(float(value)))
        elif is_number(value):
            problems.append(Problem(name, f"Nodes must be a whole number, not {value}", "give a number like 2"))
    if template.has_parameter(NODE_POOL_RESOURCES):
        for key, value in jobset_placement(pool, label, allocatable, gpus, _step_requests(template)).items():
            if template.has_parameter(key):
                final[template.parameter(key).name] = json.dumps(value, separators=(",", ":"))
    return gpus


def _step_requests(template: Template) -> dict[str, str]:
    """The CPU and memory one process of the train step requests (its container's requests)."""
    for step in patched_steps(template):
        container = step.get("container") or step.get("script") or {}
        requests = (container.get("resources") or {}).get("requests") or {}
        return {k: str(v) for k, v in requests.items() if k in ("cpu", "memory")}
    return {}


def node_pool_options(pools: NodePools) -> list[Option]:
    return [Option(p.name, p.value) for p in pools.pools]


def _dump_format_problem(name: str, value: str) -> list[Problem]:
    from cvatflow.datasets.formats import DUMP_FORMATS

    if value in DUMP_FORMATS:
        return []
    return [Problem(name, f"unknown dump format {value!r}", f"use one of: {', '.join(DUMP_FORMATS)}")]


def _runs_cvatflow_train(template: Template) -> bool:
    return any(launched_program((t.get("container") or {}).get("command") or [])[:1] == ["cvatflow-train"]
               for t in template.container_templates())


def _hyperparameter_problem(name: str, value: str) -> list[Problem]:
    """Our training images refuse unknown keys and bad values; say so now, before a GPU is waited for."""
    from cvatflow.errors import TrainingError
    from cvatflow.training.hyperparameters import parse

    try:
        parse(value)
    except TrainingError as exc:
        return [Problem(name, str(exc).removeprefix("hyperparameters: "), "fix the key or value named")]
    return []


def _yaml_problem(name: str, label: str, value: str) -> list[Problem]:
    try:
        yaml.safe_load(value)
    except ValueError:  # an integer of more than 4,300 digits
        return [Problem(name, f"{label} has a number with too many digits", "give a value within the key's range")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        return [Problem(name, f"{label} is not valid YAML{where}: {getattr(exc, 'problem', exc)}",
                        "fix the YAML (key: value, one per line)")]
    except RecursionError:
        return [Problem(name, f"{label} is YAML nested too deeply to read", "write a flatter value")]
    return []


def parse_assignments(items: list[str], option: str = "-p") -> dict[str, str]:
    """`-p name=value` options (or another `option`'s) from the command line."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ParameterError(f"{option} {item!r}: write it as name=value (e.g. {option} epochs=5)")
        out[name.strip()] = value
    return out
