"""cvatflow: train detection and segmentation models from CVAT tasks with Argo WorkflowTemplates.

The public API is the names in `__all__`, imported on first use (PEP 562): a training pod that imports
`cvatflow.training` pays for neither the cluster stack (hera, kubernetes) nor the server stack (FastAPI).
Everything else may change between versions.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "Client": "cvatflow.runs.client",
    "CvatTask": "cvatflow.params",
    "CvatflowError": "cvatflow.errors",
    "Parameter": "cvatflow.templates.parameter",
    "Phase": "cvatflow.argo",
    "Run": "cvatflow.runs.run",
    "RunStatus": "cvatflow.runs.run",
    "Template": "cvatflow.templates.template",
    "get_template": "cvatflow.templates.catalog",
}

__all__ = [
    "Client",
    "CvatTask",
    "CvatflowError",
    "Parameter",
    "Phase",
    "Run",
    "RunStatus",
    "Template",
    "__version__",
    "get_template",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on first use
    from cvatflow.argo import Phase
    from cvatflow.errors import CvatflowError
    from cvatflow.params import CvatTask
    from cvatflow.runs.client import Client
    from cvatflow.runs.run import Run, RunStatus
    from cvatflow.templates.catalog import get_template
    from cvatflow.templates.parameter import Parameter
    from cvatflow.templates.template import Template


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cvatflow' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
