"""Fill the Go-template placeholders Onepanel's historic manifests carry (`{{.NodePoolLabel}}` and kin)."""
from __future__ import annotations

import re
from typing import Any

from cvatflow.errors import TemplateError

# Onepanel's migrations (core `db/go/db.go` ReplaceRuntimeVariablesInManifest) filled these at install time.
KNOWN = ("ArtifactRepositoryType", "DefaultNodePoolOption", "NodePoolLabel")
GO_PLACEHOLDER = re.compile(r"{{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*}}")
WHERE = {
    "ArtifactRepositoryType": "the artifact repository (`--artifact-repository FILE` or `artifactRepository` in "
                              "the cvatflow config)",
    "DefaultNodePoolOption": "the node pools (`nodePools.options` in the cvatflow config)",
    "NodePoolLabel": "the node pools (`nodePools.label` in the cvatflow config)",
}


def placeholder_values(repository: Any = None, node_pools: Any = None) -> dict[str, str]:
    """What each placeholder becomes, from an ArtifactRepository and NodePools (either may be None)."""
    values = {}
    if repository is not None:
        values["ArtifactRepositoryType"] = repository.kind  # "s3" or "gcs", the artifact's location key
    if node_pools is not None:
        values["NodePoolLabel"] = node_pools.label
        # With no pools configured, `default`: cvatflow resolves it to the first pool when a run starts.
        values["DefaultNodePoolOption"] = node_pools.pools[0].value if node_pools.pools else "default"
    return values


def fill(text: str, source: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """`text` with every `{{.Name}}` replaced by `values[Name]`, and one note per kind of placeholder filled.

    Raises TemplateError naming the placeholder (and where its value comes from) for one that is unknown
    or has no value. Text without placeholders is returned unchanged with no notes.
    """
    found = sorted(set(GO_PLACEHOLDER.findall(text)))
    if not any(name in KNOWN for name in found):
        return text, []  # `{{.ID}}` in a `docker --format` string is not Onepanel's; `load` names it if it breaks
    unknown = [name for name in found if name not in KNOWN]
    if unknown:
        raise TemplateError(f"{source}: unknown Go-template placeholder {{{{.{unknown[0]}}}}}; cvatflow fills "
                            f"only {', '.join('{{.' + k + '}}' for k in KNOWN)} (as Onepanel's install did): "
                            f"replace it with its value")
    missing = [name for name in found if not values.get(name)]
    if missing:
        raise TemplateError(f"{source}: placeholder {{{{.{missing[0]}}}}} has no value; configure "
                            f"{WHERE[missing[0]]}, or write the value into the manifest")
    notes = [f"{{{{.{name}}}}} filled with {values[name]!r} from {WHERE[name].split(' (')[0]}"
             + (" (none configured: the first pool is chosen when a run starts)" if values[name] == "default" else "")
             for name in found]
    return GO_PLACEHOLDER.sub(lambda m: values[m.group(1)], text), notes


def load(text: str, source: str, values: dict[str, str]) -> tuple[list[Any], list[str]]:
    """The documents of a manifest whose Onepanel placeholders are filled first (see `fill`), and the notes.

    A file that is not valid YAML because of a placeholder cvatflow does not know gets an error naming it.
    """
    from cvatflow.templates.yamlsafe import load_documents

    text, notes = fill(text, source, values)
    try:
        return load_documents(text, source), notes
    except TemplateError:
        unknown = [name for name in GO_PLACEHOLDER.findall(text) if name not in KNOWN]
        if unknown:
            raise TemplateError(f"{source}: unknown Go-template placeholder {{{{.{unknown[0]}}}}} (the file is not "
                                f"YAML until it is filled); replace it with its value") from None
        raise
