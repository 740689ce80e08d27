"""Tiny untrained model states (Mask R-CNN, DETR) written as training writes them, for inference tests."""
from __future__ import annotations

from pathlib import Path

CLASSES = ["circle", "square", "triangle"]
VARIANTS = {"maskrcnn": "maskrcnn_mobilenet_v3", "detr": "detr_small"}


def tiny_state(family: str, folder: Path, classes: list[str] | None = None, image_size: int = 64,
               seed: int = 0) -> Path:
    """A model state folder (config.json + model.pt) of `family` with random weights; returns the folder."""
    import torch

    from cvatflow.models import get_adapter
    from cvatflow.training.state import model_config, write_model_state

    classes = classes or CLASSES
    adapter = get_adapter(family)
    settings = adapter.settings(VARIANTS[family], image_size)
    torch.manual_seed(seed)
    model = adapter.build(dict(settings), len(classes), pretrained=False)
    config = model_config(settings, classes, "bitmap" if adapter.masks else "rectangle")
    return write_model_state(Path(folder), config, model.state_dict())
