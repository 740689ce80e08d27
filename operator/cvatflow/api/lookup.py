"""Templates for the API come by name only (catalog, configured template folder, cluster), never from a path."""
from __future__ import annotations

import re
from typing import Any

from cvatflow.api.models import TEMPLATE_NAME
from cvatflow.errors import NotFoundError
from cvatflow.templates.template import Template


def template_by_name(client: Any, name: str) -> Template:
    """The template called `name`: for the local backend, one of the catalog or `<home>/templates/*.yaml` whose
    `metadata.name` is `name`; for a cluster, the WorkflowTemplate of that name. A NotFoundError (404) otherwise.

    The CLI's Client.template also reads a YAML file by path; a server must not (`x.yaml` would read a file
    of its working folder), so the local backend's list is searched instead.
    """
    if not isinstance(name, str) or not re.fullmatch(TEMPLATE_NAME, name):
        raise NotFoundError(f"no template named {str(name)[:100]!r}; templates are named like Kubernetes objects")
    from cvatflow.runs.local import LocalBackend

    backend = getattr(client, "backend", None)
    if isinstance(backend, LocalBackend):
        found = {t.name: t for t in backend.templates()}
        if name not in found:
            raise NotFoundError(f"no template named {name!r}; templates here are: {', '.join(sorted(found))}")
        return found[name]
    return client.template(name)
