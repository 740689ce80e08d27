"""Model adapters (DETR, RT-DETRv2 and D-FINE on transformers, Mask R-CNN on torchvision) and their registry."""
from __future__ import annotations

from cvatflow.errors import TrainingError

ADAPTERS = {"detr": "cvatflow.models.detr:DetrAdapter", "maskrcnn": "cvatflow.models.maskrcnn:MaskRcnnAdapter",
            "rtdetr": "cvatflow.models.rtdetr:RtDetrAdapter",
            "interactive": "cvatflow.models.interactive:InteractiveAdapter"}


def get_adapter(name: str):
    """The adapter of a model family by name (`detr`, `maskrcnn`, `rtdetr`)."""
    import importlib

    if name not in ADAPTERS:
        raise TrainingError(f"model {name!r} is not known (choose one of {', '.join(ADAPTERS)})")
    module, cls = ADAPTERS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def variants(name: str) -> list[str]:
    """The variant names a template can offer as options for `name` (imports no torch)."""
    import importlib

    module = importlib.import_module(ADAPTERS[name].split(":")[0])
    return list(module.VARIANTS)
