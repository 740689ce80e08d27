"""Import Onepanel manifests and rendered WorkflowTemplates into Templates, completing artifact shorthand."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cvatflow.artifact_repository import ArtifactRepository
from cvatflow.errors import TemplateError
from cvatflow.templates import placeholders
from cvatflow.templates.parameter import Parameter, wire_string
from cvatflow.templates.render import (
    DESCRIPTION_ANNOTATION,
    PARAMETERS_ANNOTATION,
    TITLE_ANNOTATION,
)
from cvatflow.templates.steps import NODE_POOL_PATCH, node_pool_patch_parameter
from cvatflow.templates.template import Template
from cvatflow.templates.yamlsafe import kind_of, load_one, read_text

NODE_POOL_REF = "{{workflow.parameters.sys-node-pool}}"


WORKFLOW_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")


def read_yaml(text: str, source: str) -> Any:
    """Parse one YAML document safely (see `yamlsafe`), turning any problem into one line naming `source`."""
    return load_one(text, source)


def objects(documents: list[Any]) -> list[tuple[str, Any]]:
    """The objects of a file as `kubectl apply -f` sees them: each document, and each item of a `List`.

    Returns (label, object) pairs; the label names the document (`document 2`, `document 1 items[3]`) so
    messages can say which object they are about.
    """
    out: list[tuple[str, Any]] = []
    for i, doc in enumerate(documents, start=1):
        label = f"document {i}" if len(documents) > 1 else ""
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
            items = doc["items"] if isinstance(doc["items"], list) else []
            out.extend((f"{label} items[{j}]".strip(), item) for j, item in enumerate(items))
            if not isinstance(doc["items"], list):
                out.append((f"{label} items".strip(), doc["items"]))
        else:
            out.append((label, doc))
    return out


def object_name(doc: Any) -> str:
    """The name an object is known by: metadata.name, else generateName (with a `*`), else ""."""
    metadata = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(metadata, dict):
        return ""
    name, generate = metadata.get("name"), metadata.get("generateName")
    if isinstance(name, str) and name:
        return name
    return f"{generate}*" if isinstance(generate, str) and generate else ""


def load_file(path: str | Path, name: str | None = None, repository: ArtifactRepository | None = None,
              node_pools: Any = None) -> Template:
    """Import a manifest file (Onepanel spec body, or one Workflow/WorkflowTemplate/CronWorkflow object).

    Onepanel's `{{.NodePoolLabel}}`-style placeholders are filled from `repository` and `node_pools`.
    The template's name is `name`, else the object's metadata.name; only a nameless Onepanel body is named
    after the file. Raises TemplateError for anything that cannot be imported.
    """
    path = Path(path)
    text = read_text(path)
    return load_text(text, source=str(path), name=name, repository=repository, node_pools=node_pools,
                     default_name=path.stem)


def load_text(text: str, source: str = "<manifest>", name: str | None = None,
              repository: ArtifactRepository | None = None, node_pools: Any = None,
              default_name: str | None = None) -> Template:
    """Import manifest text (see `load_file`); a file with several objects is refused, naming them."""
    doc = read_object(text, source, repository, node_pools)
    nameless_body = not (isinstance(doc, dict) and "kind" in doc)  # an Onepanel spec body has no metadata
    return load_dict(doc, source=source, name=name or (default_name if nameless_body else None),
                     repository=repository)


def read_object(text: str, source: str, repository: ArtifactRepository | None = None,
                node_pools: Any = None) -> Any:
    """The one object of a manifest text, Onepanel placeholders filled; TemplateError when there are several."""
    documents, _notes = placeholders.load(text, source, placeholders.placeholder_values(repository, node_pools))
    found = objects(documents)
    if len(found) != 1:
        names = ", ".join(object_name(d) or label for label, d in found) or "none"
        raise TemplateError(f"{source}: holds {len(found)} objects ({names}); import them one file at a time")
    return found[0][1]


def load_dict(doc: Any, source: str = "<manifest>", name: str | None = None,
              repository: ArtifactRepository | None = None) -> Template:
    """A Template from a parsed manifest.

    Understood: a WorkflowTemplate or ClusterWorkflowTemplate (ours keep the form metadata in the
    `cvatflow.io/parameters` annotation), a Workflow with its own templates, a CronWorkflow (its
    workflowSpec), and Onepanel's manifest, a bare spec body whose parameters carry displayName, hint,
    type, options, required and visibility. Raises TemplateError for anything else.
    """
    if not isinstance(doc, dict):
        raise TemplateError(f"{source}: expected a mapping with `templates` (a WorkflowTemplate or an Onepanel "
                            f"manifest); got {kind_of(doc)}")
    kind = doc.get("kind")
    if kind in WORKFLOW_KINDS:
        template = _from_workflow_template(doc, source, name)
    elif "kind" in doc:
        raise TemplateError(f"{source}: kind {kind!r} is not a workflow; give a WorkflowTemplate, "
                            f"ClusterWorkflowTemplate, Workflow, CronWorkflow or an Onepanel manifest")
    else:
        template = _from_onepanel(doc, source, name)
    if repository is not None:
        complete_artifacts(template.spec, repository)
    return template


def _check_body(spec: Any, source: str) -> dict[str, Any]:
    if not isinstance(spec, dict) or not spec.get("templates"):
        raise TemplateError(f"{source}: the manifest has no `templates`; a workflow needs at least one "
                            f"template and an `entrypoint` naming it")
    if not isinstance(spec["templates"], list) or not all(isinstance(t, dict) for t in spec["templates"]):
        raise TemplateError(f"{source}: `templates` must be a list of templates (mappings)")
    return spec


def _parameter_list(spec: dict[str, Any], source: str) -> list[dict[str, Any]]:
    arguments = spec.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise TemplateError(f"{source}: `arguments` must be a mapping with `parameters`")
    items = arguments.get("parameters") or []
    if not isinstance(items, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str) and p["name"]
                                              for p in items):
        raise TemplateError(f"{source}: `arguments.parameters` must be a list of mappings, each with a `name`")
    for i, item in enumerate(items):
        where = f"{source}: arguments.parameters[{i}] ({item['name']})"
        for key in ("options", "enum"):
            if item.get(key) is not None and (not isinstance(item[key], list) or any(
                    isinstance(o, list) or (isinstance(o, dict) and not _scalars(o)) for o in item[key])):
                raise TemplateError(f"{where}: `{key}` must be a list of values or of {{name, value}} mappings")
        for key in ("value", "default", "displayName", "hint", "description", "type", "visibility"):
            if isinstance(item.get(key), (dict, list)):
                raise TemplateError(f"{where}: `{key}` must be a single value, not a list or mapping")
    return items


def _scalars(mapping: dict[str, Any]) -> bool:
    return not any(isinstance(v, (dict, list)) for v in mapping.values())


def _from_onepanel(doc: dict[str, Any], source: str, name: str | None) -> Template:
    spec = _check_body(doc, source)
    parameters = [Parameter.from_dict(p) for p in _parameter_list(spec, source)]
    template = Template(name=name or "imported", parameters=parameters, spec=_plain(spec))
    adopt_node_pool(template)
    return template


def adopt_node_pool(template: Template) -> bool:
    """Give pods placed by `sys-node-pool` the node pool's resources, as Onepanel injected them at submit time.

    Each container template whose nodeSelector uses `{{workflow.parameters.sys-node-pool}}` gets a podSpecPatch
    from the hidden `sys-node-pool-patch` parameter (params.autofill fills it from the node-pool config).
    """
    placed = [t for t in template.container_templates() if isinstance(t.get("nodeSelector"), dict)
              and any(NODE_POOL_REF in str(v) for v in t["nodeSelector"].values())
              and "podSpecPatch" not in t]
    for tpl in placed:
        tpl["podSpecPatch"] = "{{workflow.parameters.%s}}" % NODE_POOL_PATCH
    if placed and not template.has_parameter(NODE_POOL_PATCH):
        template.parameters.append(node_pool_patch_parameter())
    return bool(placed)


def _from_workflow_template(doc: dict[str, Any], source: str, name: str | None) -> Template:
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    spec = doc.get("spec")
    if doc.get("kind") == "CronWorkflow":
        spec = spec.get("workflowSpec") if isinstance(spec, dict) else None
    if isinstance(spec, dict) and isinstance(spec.get("workflowTemplateRef"), dict):
        ref = spec["workflowTemplateRef"].get("name")
        raise TemplateError(f"{source}: this {doc.get('kind')} runs WorkflowTemplate {ref!r} "
                            f"(workflowTemplateRef) and has no templates of its own; import that template instead")
    spec = _check_body(spec, source)
    annotations = {str(k): v if isinstance(v, str) else wire_string(v)
                   for k, v in (metadata.get("annotations") or {}).items()} \
        if isinstance(metadata.get("annotations"), dict) else {}
    argo = [Parameter.from_dict(p) for p in _parameter_list(spec, source)]
    parameters = annotated_parameters(annotations.pop(PARAMETERS_ANNOTATION, None), argo, source)
    labels = metadata.get("labels") if isinstance(metadata.get("labels"), dict) else {}
    namespace = metadata.get("namespace")
    own = object_name(doc).rstrip("*").rstrip("-")
    return Template(
        name=name or own or "imported",
        parameters=parameters,
        spec=_plain(spec),
        title=annotations.pop(TITLE_ANNOTATION, ""),
        description=annotations.pop(DESCRIPTION_ANNOTATION, ""),
        labels={str(k): wire_string(v) for k, v in labels.items()},
        annotations=annotations,
        namespace=namespace if isinstance(namespace, str) and namespace else None,
    )


def annotated_parameters(raw: Any, argo: list[Parameter], source: str) -> list[Parameter]:
    """The parameters with the form metadata of the `cvatflow.io/parameters` annotation (`raw`; None: none).

    Raises TemplateError when the annotation is not a JSON list of parameter mappings.
    """
    if raw is None:
        return argo
    try:
        items = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        items = None
    if not isinstance(items, list) or not all(isinstance(p, dict) for p in items):
        raise TemplateError(f"{source}: annotation {PARAMETERS_ANNOTATION} is not a JSON list of parameters; "
                            f"re-render the template with `cvatflow templates render`")
    return merge_parameters([Parameter.from_dict(p) for p in items], argo)


def merge_parameters(described: list[Parameter], argo: list[Parameter]) -> list[Parameter]:
    """Form metadata from the annotation, values from the spec (`kubectl edit` changes those).

    A parameter only in the spec is kept with what Argo knows of it; metadata for a parameter
    the spec no longer has is dropped.
    """
    by_name = {p.name: p for p in argo}
    merged = []
    for parameter in described:
        if parameter.name in by_name:
            parameter.value = by_name.pop(parameter.name).value
            merged.append(parameter)
    merged.extend(p for p in argo if p.name in by_name)
    return merged


def _plain(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec without arguments as plain data; `null` fields are dropped, as the Kubernetes API does
    (`kubectl get -o yaml` writes `creationTimestamp: null`)."""
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, (str, int, float, bool)):
            return value
        return str(value)  # YAML dates and the like, as Kubernetes would read them

    return clean({k: v for k, v in spec.items() if k != "arguments"})


def complete_artifacts(spec: dict[str, Any], repository: ArtifactRepository) -> int:
    """Complete Onepanel's shorthand (`s3: {key: ...}` with no bucket) from the artifact repository.

    Returns how many artifacts were completed. A shorthand `s3` location becomes the repository's
    kind, as Onepanel did when its default repository was GCS.
    """
    completed = 0
    for artifact in _artifacts(spec):
        for kind in ("s3", "gcs"):
            location = artifact.get(kind)
            if isinstance(location, dict) and "key" in location and not location.get("bucket"):
                del artifact[kind]
                artifact.update(repository.location(str(location["key"])))
                completed += 1
    return completed


def _artifacts(spec: dict[str, Any]):
    for tpl in spec.get("templates") or []:
        for side in ("inputs", "outputs"):
            io = tpl.get(side) if isinstance(tpl, dict) else None
            artifacts = io.get("artifacts") if isinstance(io, dict) else None
            for artifact in artifacts if isinstance(artifacts, list) else []:
                if isinstance(artifact, dict):
                    yield artifact
