"""Multi-scale training: each step's batch resized to a size drawn around image_size (RT-DETR/D-FINE recipes)."""
from __future__ import annotations

import random
from typing import Any

# RT-DETR's list at 640: lyuwenyu/RT-DETR rtdetrv2_pytorch/configs/rtdetrv2/include/dataloader.yml, collate_fn
# BatchImageCollateFuncion `scales: [480, 512, 544, 576, 608, 640, 640, 640, 672, 704, 736, 768, 800]`: 0.75x to
# 1.25x in steps of 32 px (one stride-32 cell), the base size three times. D-FINE's is the same range
# (Peterande/D-FINE configs/dfine/include/dataloader.yml, 480..800).
STEP = 32
BASE_REPEAT = 3


def scales(image_size: int) -> list[int]:
    """Input sizes (px, multiples of 32 where image_size is one) drawn from for `image_size`: 0.75x..1.25x of it in
    32 px steps, `image_size` itself three times (RT-DETR's list for 640; 192..320 for 256). At least 32 px."""
    low = max(STEP, int(image_size * 0.75 / STEP) * STEP)
    high = max(low, int(image_size * 1.25 / STEP) * STEP)
    below = [s for s in range(low, image_size, STEP)]
    above = [s for s in range(high, image_size, -STEP)][::-1]
    return below + [image_size] * BASE_REPEAT + above


class MultiScale:
    """Which size step `step` trains at: drawn from `scales(image_size)` until `until` of the `total` steps, then
    `image_size` (the recipes stop multi-scale for the last epochs: RT-DETRv2-L 71 of 72, D-FINE-L 72 of 80).
    The draw depends only on (seed, step), so every rank of a DDP run picks the same size."""

    def __init__(self, image_size: int, total: int, until: float, seed: int):
        self.image_size, self.sizes = image_size, scales(image_size)
        self.last = int(total * until)  # steps [0, last) are multi-scale
        self.seed = seed

    def size(self, step: int) -> int:
        if step >= self.last:
            return self.image_size
        return random.Random(f"{self.seed}:multiscale:{step}").choice(self.sizes)


def rescale(batch: tuple[list, list[dict[str, Any]]], factor: float) -> tuple[list, list[dict[str, Any]]]:
    """A batch (uint8 images [3, h, w], targets with xyxy `boxes` in input pixels and optional `masks` [N, h, w])
    with every image resized by `factor` (bilinear, antialiased; masks nearest) and boxes scaled to match.
    RT-DETR interpolates the stacked square batch; cvatflow's images keep their aspect ratio, so each is resized."""
    from torchvision.transforms.v2 import functional as F

    if factor == 1.0:
        return batch
    images, targets = batch
    out_images, out_targets = [], []
    for image, target in zip(images, targets):
        h, w = image.shape[-2:]
        size = [max(1, round(h * factor)), max(1, round(w * factor))]
        out_images.append(F.resize(image, size, antialias=True))
        target = dict(target, boxes=target["boxes"] * factor)
        if "masks" in target:
            target["masks"] = F.resize(target["masks"], size, interpolation=F.InterpolationMode.NEAREST) \
                if len(target["masks"]) else target["masks"].new_zeros((0, *size))
        out_targets.append(target)
    return out_images, out_targets
