"""The Template: a named WorkflowTemplate spec whose parameters carry Onepanel form metadata."""
from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cvatflow.errors import NotFoundError
from cvatflow.templates.parameter import Parameter, reserved_name

CVAT_LABEL = ("used-by", "cvat")


@dataclass
class Template:
    """A training pipeline: parameters (in form order) plus the Argo spec body they feed.

    `spec` is a WorkflowTemplate spec without `arguments` (entrypoint, templates, volumeClaimTemplates...);
    the arguments are rendered from `parameters`, which is the one source of truth for them.
    """

    name: str
    parameters: list[Parameter]
    spec: dict[str, Any]
    title: str = ""
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    namespace: str | None = None

    def __post_init__(self) -> None:
        self.spec = {k: v for k, v in self.spec.items() if k != "arguments"}

    def parameter(self, name: str) -> Parameter:
        """The parameter called `name` (a legacy `sys-` alias finds its `cvat-` parameter and back)."""
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        wanted = reserved_name(name)
        for parameter in self.parameters:
            if wanted and parameter.role == wanted:
                return parameter
        raise NotFoundError(f"template {self.name!r} has no parameter {name!r}; "
                            f"its parameters are: {', '.join(p.name for p in self.parameters) or 'none'}")

    def has_parameter(self, name: str) -> bool:
        try:
            self.parameter(name)
        except NotFoundError:
            return False
        return True

    def public_parameters(self) -> list[Parameter]:
        """The parameters the CVAT dialog shows, in order."""
        return [p for p in self.parameters if p.is_public]

    @property
    def used_by_cvat(self) -> bool:
        return self.labels.get(CVAT_LABEL[0]) == CVAT_LABEL[1]

    def matches(self, labels: dict[str, str] | None) -> bool:
        """Whether every given label is on this template."""
        return all(self.labels.get(k) == v for k, v in (labels or {}).items())

    def container_templates(self) -> Iterator[dict[str, Any]]:
        """The spec's templates that run a pod (container or script)."""
        for tpl in self.spec.get("templates") or []:
            if isinstance(tpl, dict) and ("container" in tpl or "script" in tpl):
                yield tpl

    def copy(self) -> Template:
        return copy.deepcopy(self)
