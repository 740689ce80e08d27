"""What every model adapter provides to the training harness: build, train step, predict, export, weights."""
from __future__ import annotations

from typing import Any

WEIGHTS_FILE = "model.pt"


def grow_rows(weights: dict[str, Any], model, key: str, what: str) -> list[str]:
    """Fit the checkpoint's per-query embedding `weights[key]` [n, d] to `model`'s [m, d] in place: the first
    min(n, m) rows kept, the others as the model initialised them. Returns the log line (naming the rows `what`),
    or no line when nothing was to do."""
    own, theirs = model.state_dict().get(key), weights.get(key)
    if own is None or theirs is None or own.shape == theirs.shape:
        return []
    grown = own.detach().clone().cpu()
    keep = min(len(own), len(theirs))
    grown[:keep] = theirs[:keep]
    weights[key] = grown
    return [(f"the checkpoint has {len(theirs)} {what}, this model {len(own)}: {keep} kept, "
             f"{len(own) - keep} re-initialised")]


class Adapter:
    """A model family behind one interface; class indices are 0-based task classes (no background)."""

    name = ""
    framework = ""
    task_type = "object detection"  # or "instance segmentation"
    masks = False  # whether the model predicts instance masks
    VARIANTS: list[str] = []
    default_variant = ""
    small_variant = ""  # trains usefully on a CPU, from scratch
    export_fixed_size = False  # True: the ONNX model takes [1, 3, image_size, image_size] only
    # DDP: True when some trainable parameter can be left out of the loss (e.g. on a batch without objects),
    # False when every one always gets a gradient (faster), None to probe with one backward before wrapping
    find_unused_parameters: bool | None = None
    # True: `losses` takes `num_boxes`, the mean objects per micro-batch over all ranks, and divides its box loss
    # terms by it instead of by the batch's own count (the DETR family's reference normalisation)
    global_box_norm = False

    def default_hyperparameters(self, variant: str) -> dict[str, Any]:
        """Per-variant defaults laid over the harness defaults."""
        return {}

    def check_variant(self, variant: str) -> str:
        from cvatflow.errors import TrainingError

        variant = variant or self.default_variant
        if variant not in self.VARIANTS:
            raise TrainingError(f"--model {variant}: not a {self.name} variant (choose one of "
                                f"{', '.join(self.VARIANTS)})")
        return variant

    def build(self, settings: dict[str, Any], num_classes: int, pretrained: bool):
        """A torch model for `num_classes` task classes; `settings` holds what rebuilding it needs."""
        raise NotImplementedError

    def settings(self, variant: str, image_size: int) -> dict[str, Any]:
        """The architecture settings written to config.json, enough to rebuild the model offline."""
        return {"model": self.name, "variant": variant, "image_size": image_size}

    def min_object_size(self, variant: str) -> float | None:
        """Objects smaller than this (sqrt of box area, in model-input pixels) are below what the variant reliably
        detects (anchor size or feature stride); None when unknown. Used to warn, never to drop objects."""
        return None

    def fit_capacity(self, settings: dict[str, Any], max_objects: int) -> list[str]:
        """Raise the detections per image the model can give (in `settings`) above `max_objects`, the most
        objects on one image of the data; never lowers it. Returns log lines saying what changed."""
        return []

    def adapt_weights(self, weights: dict[str, Any], model) -> list[str]:
        """Make checkpoint `weights` fit `model` where `fit_capacity` grew it (in place); returns log lines."""
        return []

    def head_keys(self, state_dict: dict[str, Any]) -> list[str]:
        """Weights that depend on the number of classes (re-initialised in transfer learning)."""
        raise NotImplementedError

    def param_groups(self, model, lr: float, backbone_lr: float) -> list[dict[str, Any]]:
        backbone, rest = [], []
        for name, param in model.named_parameters():
            if param.requires_grad:
                (backbone if "backbone" in name else rest).append(param)
        return [{"params": rest, "lr": lr}, {"params": backbone, "lr": backbone_lr}]

    def losses(self, model, images: list, targets: list[dict[str, Any]], device) -> dict[str, Any]:
        """The loss terms of one batch (train mode); the harness backpropagates `sum`. `model` may be wrapped in
        DistributedDataParallel (call it; reach attributes through `getattr(model, "module", model)`)."""
        raise NotImplementedError

    def predict(self, model, images: list, device, threshold: float = 0.0) -> list[dict[str, Any]]:
        """Per image: boxes (xyxy, input pixels), scores, labels (0-based), and masks (bool HxW) when any."""
        raise NotImplementedError

    def export_module(self, model, image_size: int):
        """(module, example input, output names) for ONNX: one float image [1, 3, H, W] in 0..1 in."""
        raise NotImplementedError


def export_wrapper(model, image_size: int, forward, outputs: list[str]):
    """(module, example input, output names) for ONNX export: a module whose input is one float image
    [1, 3, image_size, image_size] in 0..1 and whose outputs are `forward(model, image)` (a tuple, named `outputs`)."""
    import torch

    class Exported(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, image):
            return forward(self.inner, image)

    return Exported(model).eval(), torch.rand(1, 3, image_size, image_size), outputs
