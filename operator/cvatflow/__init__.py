"""cvatflow: train detection and segmentation models from CVAT tasks with Argo WorkflowTemplates."""
from cvatflow.errors import CvatflowError

__version__ = "0.1.0"

__all__ = ["CvatflowError", "__version__"]
