"""cvatflow: train detection and segmentation models from CVAT tasks with Argo WorkflowTemplates."""
from cvatflow.errors import CvatflowError
from cvatflow.params import CvatTask
from cvatflow.runs import Client, Run, RunStatus
from cvatflow.templates import Parameter, Template, get_template

__version__ = "0.1.0"

__all__ = [
    "Client",
    "CvatTask",
    "CvatflowError",
    "Parameter",
    "Run",
    "RunStatus",
    "Template",
    "__version__",
    "get_template",
]
