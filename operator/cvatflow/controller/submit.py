"""Turn a TrainingRun into its one Argo Workflow: resolve the source, dump once, auto-fill, create."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from cvatflow.controller import resource as r
from cvatflow.controller.deps import Deps
from cvatflow.controller.mirror import outputs, workflow_status
from cvatflow.errors import CvatflowError, NotFoundError, Problem, ProblemsError
from cvatflow.params import CvatTask, Filled, autofill
from cvatflow.runs.kubernetes import workflow_object
from cvatflow.templates import jobset
from cvatflow.templates.parameter import ANNOTATION_PATH, DUMP_FORMAT, NODE_POOL, NUM_CLASSES, OUTPUT_PATH
from cvatflow.templates.template import Template

# Labels a WorkflowTemplate may carry its version in (ours, Onepanel's, the Kubernetes recommended one).
VERSION_LABELS = ("cvatflow.io/version", "onepanel.io/version", "app.kubernetes.io/version")
# Stands in for the dump while parameters are checked, so an invalid run never costs an export.
PENDING_DUMP = "annotations/pending/"


class Retry(Exception):
    """A step that may succeed later (CVAT or a Secret not reachable yet): status to record, then retry."""

    def __init__(self, message: str, status: dict[str, Any], delay: float = 30.0) -> None:
        super().__init__(message)
        self.status = status
        self.delay = delay


def invalid(problems: list[Problem], body: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status of a run refused before submission: phase Invalid, every problem spelled out."""
    status = body.get("status") or {}
    message = "; ".join(str(p) for p in problems if p.severity == "error")
    generation = (body.get("metadata") or {}).get("generation")
    return {
        **(extra or {}),
        "phase": r.INVALID,
        "message": message,
        "problems": [{"path": p.path, "message": p.message, "fix": p.fix} for p in problems if p.severity == "error"],
        "conditions": r.set_condition(status.get("conditions"), "Valid", False, "InvalidSpec", message, generation),
        "observedGeneration": generation,
    }


def submit(body: dict[str, Any], deps: Deps) -> dict[str, Any]:
    """The status after making sure the run's Workflow exists; an already submitted run returns {}.

    Idempotent: the Workflow's name is the run's, a second create finds the first (409), and a dump
    recorded in `status.annotationPath` is reused, so kopf may retry or resume this at any point.
    """
    metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = dict(body.get("status") or {})
    if status.get("workflowName"):
        return {}
    name, namespace = metadata["name"], metadata.get("namespace") or "default"
    existing = deps.cluster.workflow(namespace, r.workflow_name(name))
    if existing is not None and _owner_uid(existing) == metadata.get("uid"):
        # Created by an earlier attempt whose status patch was lost (a crash, a retry): adopt its state.
        return submitted(body, existing, status)
    template_name = (spec.get("template") or {}).get("name", "")
    try:
        template = deps.cluster.template(namespace, template_name)
    except NotFoundError as exc:
        return invalid([Problem("spec.template.name", str(exc))], body)
    problems = _version_problems(template, spec)
    source = spec.get("source") or {}
    task_spec = source.get("cvatTask")

    # First pass: every parameter problem, before anything is exported from CVAT.
    recorded = status.get("annotationPath")
    dataset_path = None if task_spec else _dataset_path(source.get("dataset", ""), deps, problems)
    values = _values(template, spec, problems)
    if not task_spec and template.has_parameter(NUM_CLASSES) and template.parameter(NUM_CLASSES).name not in values:
        problems.append(Problem(f"spec.parameters.{template.parameter(NUM_CLASSES).name}",
                                "a dataset source does not say how many classes it has",
                                "set it to the number of labels, without background"))
    try:
        _fill(template, values, spec, deps, name, task_spec, status.get("taskLabels") or ["label"],
              recorded or dataset_path or PENDING_DUMP)
    except ProblemsError as exc:
        problems += exc.problems
    except NotFoundError as exc:  # only a missing fine-tune checkpoint
        problems.append(Problem(template.parameter("cvat-finetune-checkpoint").name, str(exc),
                                "give the output prefix of an earlier run, or leave it empty"))
    nodes = jobset.nodes_asked(values)
    if nodes > 1 and not deps.cluster.jobset_served():  # before the dump: a refused run never costs an export
        problems.append(Problem("spec.parameters.nodes", jobset.missing_api_message(nodes),
                                "install JobSet, or set nodes to 1"))
    if problems:
        return invalid(problems, body)

    dumped: dict[str, Any] = {}
    if task_spec and not recorded:
        dumped = _dump(task_spec, spec, template, values, deps, namespace)
        status.update(dumped)
    annotation_path = status.get("annotationPath") or dataset_path
    filled = _fill(template, values, spec, deps, name, task_spec, status.get("taskLabels"), annotation_path)

    output_uri = _output_uri(filled, deps, name)
    workflow = workflow_object(filled, r.workflow_name(name), namespace, owner=r.owner_reference(body),
                               output_prefix=output_uri)
    account = deps.settings.extra.get("workflowServiceAccount")
    if account:  # the chart's service account, allowed what Argo's executor needs
        workflow["spec"]["serviceAccountName"] = str(account)
    existing = deps.cluster.create_workflow(workflow)
    owner = _owner_uid(existing)
    if owner not in (None, metadata.get("uid")):
        # A Workflow of the same name belongs to something else: a deleted run of this name whose
        # Workflow the garbage collector has not removed yet, or a stranger. Never adopt it.
        raise Retry(f"Workflow {r.workflow_name(name)} already exists and belongs to another object; "
                    f"waiting for it to be deleted", {**dumped, "phase": r.PENDING}, delay=10)
    return {**dumped, **submitted(body, existing, status)}


def submitted(body: dict[str, Any], workflow: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The status of a run whose Workflow exists: what was submitted, and the Workflow's state."""
    generation = (body.get("metadata") or {}).get("generation")
    metadata, spec = workflow.get("metadata") or {}, workflow.get("spec") or {}
    parameters = {p.get("name"): p.get("value") for p in (spec.get("arguments") or {}).get("parameters") or []}
    mirrored = workflow_status(workflow)
    output_uri = (metadata.get("annotations") or {}).get("cvatflow.io/output-prefix")
    return {
        **mirrored,
        "workflowName": metadata["name"],
        "template": (spec.get("workflowTemplateRef") or {}).get("name"),
        "annotationPath": parameters.get(ANNOTATION_PATH) or status.get("annotationPath"),
        "outputs": outputs(output_uri) if output_uri else None,
        "submittedAt": status.get("submittedAt") or r.now(),
        "message": mirrored.get("message") or f"Workflow {metadata['name']} submitted",
        "problems": [],
        "conditions": r.set_condition(
            r.set_condition(status.get("conditions"), "Valid", True, "ParametersValid", "", generation),
            "Submitted", True, "WorkflowCreated", f"Workflow {metadata['name']} created", generation),
        "observedGeneration": generation,
    }


def _version_problems(template: Template, spec: dict[str, Any]) -> list[Problem]:
    wanted = (spec.get("template") or {}).get("version")
    if not wanted:
        return []
    found = next((template.labels[k] for k in VERSION_LABELS if k in template.labels), None)
    if found == str(wanted):
        return []
    where = f"is version {found!r}" if found else "carries no version label"
    return [Problem("spec.template.version", f"WorkflowTemplate {template.name!r} {where}, not {wanted!r}",
                    "apply that version of the template, or remove spec.template.version")]


def _values(template: Template, spec: dict[str, Any], problems: list[Problem]) -> dict[str, str]:
    """The user's parameters plus the spec fields that map onto reserved ones (nodePool, dumpFormat)."""
    values = {str(k): str(v) for k, v in (spec.get("parameters") or {}).items()}
    for field, role in (("nodePool", NODE_POOL), ("dumpFormat", DUMP_FORMAT)):
        if spec.get(field):
            if template.has_parameter(role):
                values[template.parameter(role).name] = str(spec[field])
            else:
                problems.append(Problem(f"spec.{field}", f"template {template.name!r} has no {role} parameter",
                                        f"remove spec.{field}"))
    for role in (ANNOTATION_PATH, OUTPUT_PATH):
        if template.has_parameter(role) and template.parameter(role).name in values:
            problems.append(Problem(f"spec.parameters.{template.parameter(role).name}",
                                    "is filled by the operator", "use spec.source / spec.outputPrefix instead"))
    return values


def _fill(template: Template, values: dict[str, str], spec: dict[str, Any], deps: Deps, name: str,
          task_spec: dict[str, Any] | None, labels: list[str] | None, annotation_path: str) -> Filled:
    task = CvatTask(id=task_spec["id"], labels=list(labels or [])) if task_spec else None
    # A pool's allocatable comes from the cluster's nodes where the chart lets the operator read them.
    pools = replace(deps.settings.node_pools, lookup=getattr(deps.cluster, "node_allocatable", None))
    return autofill(template, values, task=task, annotation_path=annotation_path,
                    output_path=spec.get("outputPrefix") or None, node_pools=pools,
                    checkpoint_exists=deps.checkpoint_exists, labels={r.RUN_LABEL: name})


def _dataset_path(dataset: str, deps: Deps, problems: list[Problem]) -> str | None:
    """A dataset source as the store-relative prefix `cvat-annotation-path` takes (ends with /)."""
    if not dataset:
        problems.append(Problem("spec.source", "name a cvatTask or a dataset", "set spec.source.dataset"))
        return None
    if "://" in dataset:
        store = deps.settings.store.rstrip("/") + "/"
        if not dataset.startswith(store):
            problems.append(Problem("spec.source.dataset", f"{dataset} is not in the configured store {store}",
                                    "upload the dataset there, or give a path relative to the store"))
            return None
        dataset = dataset[len(store):]
    return dataset.strip("/") + "/"


def _dump(task_spec: dict[str, Any], spec: dict[str, Any], template: Template, values: dict[str, str],
          deps: Deps, namespace: str) -> dict[str, Any]:
    """Export the task into the store once; what it returns is recorded so a resumed run reuses it."""
    settings = deps.settings
    url = task_spec.get("url") or settings.cvat_url
    dump_format = spec.get("dumpFormat") or "cvat_coco"
    if template.has_parameter(DUMP_FORMAT):  # spec.dumpFormat is already among the values
        parameter = template.parameter(DUMP_FORMAT)
        dump_format = values.get(parameter.name) or parameter.value or dump_format
    try:
        secret = task_spec.get("credentialsSecret") or {}
        token = (deps.cluster.secret_value(namespace, secret["name"], secret.get("key") or "token")
                 if secret.get("name") else settings.cvat_token)
        annotation_path, labels = deps.dump(url, int(task_spec["id"]), dump_format, settings.store,
                                            token=token or None, repository=settings.artifact_repository)
    except CvatflowError as exc:
        raise Retry(f"dumping CVAT task {task_spec['id']}: {exc}", {"phase": r.PENDING, "message": str(exc)},
                    delay=60) from None
    except OSError as exc:  # CVAT or the store unreachable
        raise Retry(f"dumping CVAT task {task_spec['id']}: {exc}", {"phase": r.PENDING, "message": str(exc)},
                    delay=60) from None
    return {"annotationPath": annotation_path, "taskLabels": list(labels), "dumpedAt": r.now()}


def _output_uri(filled: Filled, deps: Deps, name: str) -> str:
    """Where Argo uploads /mnt/output: `<store>/<cvat-output-path>/<workflow name>/`."""
    template = filled.template
    prefix = filled.values.get(template.parameter(OUTPUT_PATH).name, "outputs") \
        if template.has_parameter(OUTPUT_PATH) else "outputs"
    return f"{deps.settings.store.rstrip('/')}/{prefix.strip('/')}/{r.workflow_name(name)}/"


def _owner_uid(workflow: dict[str, Any]) -> str | None:
    refs = [ref for ref in ((workflow.get("metadata") or {}).get("ownerReferences") or []) if ref.get("kind") == r.KIND]
    return refs[0].get("uid") if refs else None
