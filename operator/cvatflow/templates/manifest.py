"""Import Onepanel manifests and rendered WorkflowTemplates into Templates, completing artifact shorthand."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from cvatflow.artifact_repository import ArtifactRepository
from cvatflow.errors import TemplateError
from cvatflow.templates.parameter import Parameter
from cvatflow.templates.render import (
    DESCRIPTION_ANNOTATION,
    PARAMETERS_ANNOTATION,
    TITLE_ANNOTATION,
)
from cvatflow.templates.steps import NODE_POOL_PATCH, node_pool_patch_parameter
from cvatflow.templates.template import Template

NODE_POOL_REF = "{{workflow.parameters.sys-node-pool}}"


def read_yaml(text: str, source: str) -> Any:
    """Parse YAML, turning a syntax error into one line that names the file and the place."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise TemplateError(f"{source}: not valid YAML{where}: {problem}; fix the syntax and try again") from None
    except RecursionError:  # nesting deeper than the parser's stack: no real manifest is
        raise TemplateError(f"{source}: YAML nested too deeply to read; a manifest nests a few levels") from None


def load_file(path: str | Path, name: str | None = None,
              repository: ArtifactRepository | None = None) -> Template:
    """Import a manifest file (Onepanel spec body or WorkflowTemplate)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TemplateError(f"{path}: no such file; give the path of a manifest YAML") from None
    except IsADirectoryError:
        raise TemplateError(f"{path}: is a folder; give the path of a manifest YAML") from None
    except UnicodeDecodeError:
        raise TemplateError(f"{path}: not UTF-8 text; save the manifest as UTF-8 YAML") from None
    return load_text(text, source=str(path), name=name or path.stem, repository=repository)


def load_text(text: str, source: str = "<manifest>", name: str | None = None,
              repository: ArtifactRepository | None = None) -> Template:
    return load_dict(read_yaml(text, source), source=source, name=name, repository=repository)


def load_dict(doc: Any, source: str = "<manifest>", name: str | None = None,
              repository: ArtifactRepository | None = None) -> Template:
    """A Template from a parsed manifest.

    Two shapes are understood: a WorkflowTemplate (ours keep the form metadata in the
    `cvatflow.io/parameters` annotation) and Onepanel's manifest, a bare spec body whose
    parameters carry displayName, hint, type, options, required and visibility.
    """
    if not isinstance(doc, dict):
        raise TemplateError(f"{source}: expected a mapping with `templates` (a WorkflowTemplate or an Onepanel "
                            f"manifest); got {type(doc).__name__}")
    if doc.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate", "Workflow"):
        template = _from_workflow_template(doc, source, name)
    else:
        template = _from_onepanel(doc, source, name)
    if repository is not None:
        complete_artifacts(template.spec, repository)
    return template


def _check_body(spec: Any, source: str) -> dict[str, Any]:
    if not isinstance(spec, dict) or not spec.get("templates"):
        raise TemplateError(f"{source}: the manifest has no `templates`; a workflow needs at least one "
                            f"template and an `entrypoint` naming it")
    if not isinstance(spec["templates"], list):
        raise TemplateError(f"{source}: `templates` must be a list of templates")
    return spec


def _parameter_list(spec: dict[str, Any], source: str) -> list[dict[str, Any]]:
    arguments = spec.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise TemplateError(f"{source}: `arguments` must be a mapping with `parameters`")
    items = arguments.get("parameters") or []
    if not isinstance(items, list) or not all(isinstance(p, dict) and p.get("name") for p in items):
        raise TemplateError(f"{source}: `arguments.parameters` must be a list of mappings, each with a `name`")
    return items


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
    placed = [t for t in template.container_templates()
              if any(NODE_POOL_REF in str(v) for v in (t.get("nodeSelector") or {}).values())
              and "podSpecPatch" not in t]
    for tpl in placed:
        tpl["podSpecPatch"] = "{{workflow.parameters.%s}}" % NODE_POOL_PATCH
    if placed and not template.has_parameter(NODE_POOL_PATCH):
        template.parameters.append(node_pool_patch_parameter())
    return bool(placed)


def _from_workflow_template(doc: dict[str, Any], source: str, name: str | None) -> Template:
    metadata = doc.get("metadata") or {}
    spec = _check_body(doc.get("spec"), source)
    annotations = dict(metadata.get("annotations") or {})
    argo = [Parameter.from_dict(p) for p in _parameter_list(spec, source)]
    raw = annotations.pop(PARAMETERS_ANNOTATION, None)
    if raw is not None:
        try:
            described = [Parameter.from_dict(p) for p in json.loads(raw)]
        except (ValueError, TypeError, AttributeError):
            raise TemplateError(f"{source}: annotation {PARAMETERS_ANNOTATION} is not a JSON list of parameters; "
                                f"re-render the template with `cvatflow templates render`") from None
        parameters = _merge(described, argo)
    else:
        parameters = argo
    return Template(
        name=name or metadata.get("name") or "imported",
        parameters=parameters,
        spec=_plain(spec),
        title=annotations.pop(TITLE_ANNOTATION, ""),
        description=annotations.pop(DESCRIPTION_ANNOTATION, ""),
        labels=dict(metadata.get("labels") or {}),
        annotations=annotations,
        namespace=metadata.get("namespace"),
    )


def _merge(described: list[Parameter], argo: list[Parameter]) -> list[Parameter]:
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
            for artifact in ((tpl.get(side) or {}).get("artifacts") or []):
                if isinstance(artifact, dict):
                    yield artifact
