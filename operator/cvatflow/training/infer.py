"""One inference path for predict, the CVAT function and the serverless handler: resize, run, map back."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cvatflow.training.state import ModelState


@dataclass
class Detections:
    """One image's detections in its own pixels: boxes float32 [N, 4] xyxy, scores float32 [N], labels int64 [N]
    (0-based class indices into ModelState.classes), masks bool [N, H, W] (Mask R-CNN) or None."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)


class Detector:
    """A model state loaded for inference on `device` (None: CUDA when there is one, else CPU)."""

    def __init__(self, state: ModelState, device: Any = None) -> None:
        from cvatflow.training.loop import pick_device

        self.state = state
        self.device = pick_device(device)
        self.adapter = state.adapter()
        self.model = state.build(self.device)

    def raw(self, images: list, threshold: float) -> list[tuple[dict[str, Any], tuple[float, float], tuple[int, int]]]:
        """Per image (uint8 tensor [3, H, W], RGB): (the adapter's prediction at model-input size, scale (sy, sx)
        from original to model input, original size (H, W)). Images are resized so the longest side is
        `state.image_size`, as in training."""
        import torch
        from torchvision.transforms.v2 import functional as F

        size = self.state.image_size
        tensors, metas = [], []
        for pixels in images:
            h, w = pixels.shape[-2:]
            scale = size / max(h, w)
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            tensors.append(F.resize(pixels, [nh, nw], antialias=True))
            metas.append(((nh / h, nw / w), (h, w)))
        with torch.inference_mode():
            predictions = self.adapter.predict(self.model, tensors, self.device, threshold)
        return [(pred, scale, orig) for pred, (scale, orig) in zip(predictions, metas)]

    def __call__(self, images: list, threshold: float) -> list[Detections]:
        """Detections with score >= `threshold` for each image (uint8 tensor [3, H, W]), in original pixels."""
        import torch

        out = []
        for pred, (sy, sx), (h, w) in self.raw(images, threshold):
            boxes = pred["boxes"].detach().float().cpu().numpy() / np.array([sx, sy, sx, sy], dtype=np.float32)
            masks = None
            if self.adapter.masks and "masks" in pred:
                m = pred["masks"]
                masks = np.zeros((0, h, w), dtype=bool) if len(m) == 0 else torch.nn.functional.interpolate(
                    m[:, None].float(), size=(h, w), mode="nearest")[:, 0].bool().cpu().numpy()
            out.append(Detections(boxes=boxes.astype(np.float32), scores=pred["scores"].detach().float().cpu().numpy(),
                                  labels=pred["labels"].detach().cpu().numpy().astype(np.int64), masks=masks))
        return out


def pil_to_tensor(image) -> Any:
    """A PIL image as a uint8 tensor [3, H, W], RGB (what the models take)."""
    import torch

    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()
