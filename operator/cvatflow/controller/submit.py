"""Turn a TrainingRun into its one Argo Workflow: resolve the source, dump once, auto-fill, create."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from cvatflow.controller import resource as r
from cvatflow.controller.deps import Deps
from cvatflow.controller.mirror import outputs, workflow_status
from cvatflow.cvat import shown_url
from cvatflow.errors import (
    CvatflowError,
    NotFoundError,
    Problem,
    ProblemsError,
    Retry,
)
from cvatflow.params import CvatTask
from cvatflow.submission import PENDING_DUMP, Pipeline, Request
from cvatflow.templates import jobset
from cvatflow.templates.parameter import (
    ANNOTATION_PATH,
    DUMP_FORMAT,
    NODE_POOL,
    NUM_CLASSES,
    OUTPUT_PATH,
    reserved_name,
)
from cvatflow.templates.template import Template

# Labels a WorkflowTemplate may carry its version in (ours, Onepanel's, the Kubernetes recommended one).
VERSION_LABELS = ("cvatflow.io/version", "onepanel.io/version", "app.kubernetes.io/version")


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
    if spec.get("shutdown") in ("Stop", "Terminate"):
        # Created already stopped (a copy of a stopped run's YAML): no export, no Workflow to stop at once.
        return {"phase": r.FAILED, "message": f"spec.shutdown is {spec['shutdown']}: stopped before anything was "
                                              f"dumped or submitted; remove spec.shutdown in a new TrainingRun to "
                                              f"train", "observedGeneration": metadata.get("generation")}
    template_name = (spec.get("template") or {}).get("name", "")
    try:
        template = deps.cluster.template(namespace, template_name)
    except NotFoundError as exc:
        return invalid([Problem("spec.template.name", str(exc))], body)
    problems = _version_problems(template, spec) + _name_problems(name)
    source = spec.get("source") or {}
    task_spec = source.get("cvatTask")
    if task_spec:
        problems += _server_problems(task_spec, deps, namespace)

    # First pass: every parameter problem, before anything is exported from CVAT.
    pipeline = pipeline_for(deps)
    recorded = status.get("annotationPath")
    dataset_path = None if task_spec else _dataset_path(source.get("dataset", ""), pipeline, problems)
    values = _values(template, spec, problems)
    if not task_spec and template.has_parameter(NUM_CLASSES) and template.parameter(NUM_CLASSES).name not in values:
        _count_classes(template.parameter(NUM_CLASSES).name, dataset_path, deps.count_classes or pipeline.count_classes,
                       values, problems)
    request = _request(template, values, spec, name, task_spec, status.get("taskLabels"),
                       recorded or dataset_path)
    try:
        pipeline.check(replace(request, annotation_path=request.annotation_path or PENDING_DUMP))
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
        dumped = _dump(task_spec, pipeline, request, deps, namespace)
        request.annotation_path, request.task_labels = dumped["annotationPath"], dumped["taskLabels"]
        status.update(dumped)
    filled = pipeline.fill(request, pipeline.data(request))
    workflow = pipeline.manifest(filled, r.workflow_name(name), namespace, owner=r.owner_reference(body))
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


def _name_problems(name: str) -> list[Problem]:
    """Kubernetes takes a TrainingRun name of up to 253 characters, but its Workflow carries the name in a label
    (at most 63), and Argo names the pods after it: a longer one would be dumped, then refused at every create."""
    if len(name) <= 63:
        return []
    return [Problem("metadata.name", f"is {len(name)} characters; the run's Workflow carries it in a label, "
                                     f"which holds at most 63", "name the TrainingRun with at most 63 characters")]


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
                twice = [k for k in values if reserved_name(k) == role and values[k] != str(spec[field])]
                if twice:  # one setting, two values: nodePool used to win without a word
                    problems.append(Problem(f"spec.{field}", f"is {spec[field]!r} but spec.parameters.{twice[0]} "
                                                             f"is {values[twice[0]]!r}", "set it in one place only"))
                values[template.parameter(role).name] = str(spec[field])
            else:
                problems.append(Problem(f"spec.{field}", f"template {template.name!r} has no {role} parameter",
                                        f"remove spec.{field}"))
    # Whatever the name (the template's own, cvat- or a legacy sys- alias): the operator's value would replace the
    # user's without a word (a task's class count comes from its labels).
    filled = (ANNOTATION_PATH, OUTPUT_PATH, NUM_CLASSES) if (spec.get("source") or {}).get("cvatTask") else \
        (ANNOTATION_PATH, OUTPUT_PATH)
    for given in spec.get("parameters") or {}:
        role = reserved_name(str(given))
        if role in filled and template.has_parameter(role):
            problems.append(Problem(f"spec.parameters.{given}", "is filled by the operator",
                                    "remove it: the class count comes from the task's labels" if role == NUM_CLASSES
                                    else "use spec.source / spec.outputPrefix instead"))
    return values


def _server_problems(task_spec: dict[str, Any], deps: Deps, namespace: str) -> list[Problem]:
    """A token goes only where its owner said: the operator's own to its configured CVAT, a Secret's to the
    configured CVAT or to the server its `url` key names. Else anyone who may create a TrainingRun could have the
    operator read a token (or any Secret's key) and send it to a server of theirs as a bearer token."""
    url = task_spec.get("url") or ""
    if not url or _server(url) == _server(deps.settings.cvat_url or ""):
        return []
    secret = task_spec.get("credentialsSecret") or {}
    where = "spec.source.cvatTask.url"
    if not secret.get("name"):
        if not deps.settings.cvat_token:
            return []
        return [Problem(where, f"{shown_url(url)} is not the operator's CVAT server "
                               f"({shown_url(deps.settings.cvat_url or 'none is configured')}); the operator's own "
                               f"token is sent only there",
                        "name a Secret holding a token for that server in spec.source.cvatTask.credentialsSecret, "
                        "or remove url")]
    fix = (f"add the server to the Secret: kubectl create secret generic {secret['name']} "
           f"--from-literal={secret.get('key') or 'token'}=... --from-literal=url={shown_url(url)}")
    try:
        allowed = deps.cluster.secret_value(namespace, secret["name"], "url")
    except NotFoundError:
        return [Problem(where, f"Secret {secret['name']!r} does not say its token is for {shown_url(url)}, "
                               f"which is not the operator's CVAT server (its key `url` names the server)", fix)]
    if _server(allowed) != _server(url):
        return [Problem(where, f"Secret {secret['name']!r} holds a token for {shown_url(allowed)}, not for "
                               f"{shown_url(url)}", fix)]
    return []


def _server(url: str) -> tuple[str, str, str]:
    """A CVAT URL as (scheme, host[:port], path) without case in the first two or a trailing slash."""
    parts = urlsplit(url.strip())
    return parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/")


def pipeline_for(deps: Deps) -> Pipeline:
    """The submission pipeline with the operator's collaborators (its store check, the cluster's nodes, its dump)."""
    return Pipeline(deps.settings, exists=deps.checkpoint_exists,
                    node_allocatable=getattr(deps.cluster, "node_allocatable", None), dump=deps.dump)


def _request(template: Template, values: dict[str, str], spec: dict[str, Any], name: str,
             task_spec: dict[str, Any] | None, labels: list[str] | None, annotation_path: str | None) -> Request:
    """A TrainingRun's spec as the pipeline's Request; its one label names the run (no user labels)."""
    task = CvatTask(id=task_spec["id"], labels=list(labels or [])) if task_spec else None
    return Request(template, task=task, parameters=values, labels={r.RUN_LABEL: name},
                   output_path=spec.get("outputPrefix") or None, annotation_path=annotation_path,
                   task_labels=list(labels) if labels else None,
                   cvat_url=(task_spec or {}).get("url") or None)


def _count_classes(name: str, dataset_path: str | None, count: Callable[[str], int | None],
                   values: dict[str, str], problems: list[Problem]) -> None:
    """Fill `name` with the categories of the COCO dataset at `dataset_path`, as the Client does; say what to set
    when the dataset is not COCO or the store cannot be read."""
    if dataset_path is None:
        return  # the source itself is already a problem
    counted = count(dataset_path)
    if counted:
        values[name] = str(counted)
        return
    problems.append(Problem(f"spec.parameters.{name}",
                            f"a dataset source does not say how many classes it has, and no COCO categories were "
                            f"found under {dataset_path} in the store",
                            "set it to the number of labels, without background"))


def _dataset_path(dataset: str, pipeline: Pipeline, problems: list[Problem]) -> str | None:
    """A dataset source as the store-relative prefix `cvat-annotation-path` takes (ends with /)."""
    if not dataset:
        problems.append(Problem("spec.source", "name a cvatTask or a dataset", "set spec.source.dataset"))
        return None
    try:  # the operator may not list the store: what is there is the pod's to find
        return pipeline.dataset_key(dataset, check_exists=False)
    except CvatflowError as exc:
        problems.append(Problem("spec.source.dataset", str(exc),
                                "upload the dataset there, or give a path relative to the store"))
        return None


def _dump(task_spec: dict[str, Any], pipeline: Pipeline, request: Request, deps: Deps,
          namespace: str) -> dict[str, Any]:
    """Export the task into the store once; what it returns is recorded so a resumed run reuses it."""
    try:
        secret = task_spec.get("credentialsSecret") or {}
        if secret.get("name"):
            request.cvat_token = deps.cluster.secret_value(namespace, secret["name"], secret.get("key") or "token")
        data = pipeline.dump(request)
    except (CvatflowError, OSError) as exc:  # CVAT or the store unreachable, or a Secret not there yet
        raise Retry(f"dumping CVAT task {task_spec['id']}: {exc}", {"phase": r.PENDING, "message": str(exc)},
                    delay=60) from None
    return {"annotationPath": data.annotation_path, "taskLabels": list(data.labels or []), "dumpedAt": r.now()}


def _owner_uid(workflow: dict[str, Any]) -> str | None:
    refs = [ref for ref in ((workflow.get("metadata") or {}).get("ownerReferences") or []) if ref.get("kind") == r.KIND]
    return refs[0].get("uid") if refs else None
