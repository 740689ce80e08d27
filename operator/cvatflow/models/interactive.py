"""Click-based interactive segmentation on torchvision: RGB plus positive/negative click maps in, one mask out.

The input adds two disk maps of the clicks to the image channels ("Deep Interactive Object Selection", Xu et al.
2016; RITM, Sofiiuk et al. 2022 use radius-5 disks). Training simulates the annotator: a first positive click in
the object's interior, then a random number of rounds in which the model's own mistakes get the next click
(models/interactive_clicks.py). The class-agnostic model has one output class, `obj`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from cvatflow.errors import TrainingError
from cvatflow.models.base import Adapter
from cvatflow.models.interactive_clicks import Click, click_maps, next_click

VARIANTS = ["click_lraspp_mobilenet_v3", "click_tiny"]
CLICK_RADIUS = 5.0  # pixels at model-input size (RITM's disk radius)
MAX_CLICKS = 20  # the NoC protocol's cap (Xu et al. 2016; RITM)
VAL_OBJECTS = 200  # objects clicked on per validation (each costs up to MAX_CLICKS forward passes)
TINY_VAL_OBJECTS = 8  # the CPU variant validates on fewer (a smoke test, not a measurement)
TRAIN_CLICK_ROUNDS = 3  # at most this many simulated correction rounds per training sample (RITM: 3)
_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, as torchvision's backbones expect
_STD = (0.229, 0.224, 0.225)


def _tiny_net():
    """A small encoder-decoder (~60k parameters) that trains from scratch on a CPU: stride 8, one skip at 1/2."""
    from torch import nn
    from torchvision.ops import Conv2dNormActivation as Block

    def norm(channels: int):
        return nn.GroupNorm(8, channels)  # batches of a few crops: BatchNorm statistics are noise

    class TinyClickNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = Block(5, 16, 3, 2, norm_layer=norm)
            self.down = nn.Sequential(Block(16, 32, 3, 2, norm_layer=norm), Block(32, 48, 3, 2, norm_layer=norm),
                                      Block(48, 48, 3, 1, dilation=2, norm_layer=norm))
            self.fuse = Block(48 + 16, 32, 3, 1, norm_layer=norm)
            self.head = nn.Conv2d(32, 1, 1)

        def forward(self, x):
            from torch.nn import functional as F

            skip = self.stem(x)
            deep = F.interpolate(self.down(skip), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            out = self.head(self.fuse(__import__("torch").cat([deep, skip], 1)))
            return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)

    return TinyClickNet()


def _lraspp(pretrained: bool):
    """torchvision's LR-ASPP MobileNetV3-Large with a 5-channel first convolution (RGB weights kept when
    pretrained; the click channels start at zero, so the pretrained model starts as it was)."""
    import torch
    from torch import nn
    from torchvision.models import MobileNet_V3_Large_Weights
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    model = lraspp_mobilenet_v3_large(weights=None, num_classes=1,
                                      weights_backbone=MobileNet_V3_Large_Weights.IMAGENET1K_V1 if pretrained else None)
    first = model.backbone["0"][0]
    wider = nn.Conv2d(5, first.out_channels, first.kernel_size, first.stride, first.padding, bias=False)
    with torch.no_grad():
        wider.weight.zero_()
        wider.weight[:, :3] = first.weight
    model.backbone["0"][0] = wider

    class Lraspp(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)["out"]

    return Lraspp(model)


def model_input(image, clicks: list[Click], radius: float = CLICK_RADIUS):
    """The network input for one image: float32 [5, H, W] = ImageNet-normalised RGB and the positive and negative
    click disk maps. `image` is uint8 [3, H, W] (torch) or [H, W, 3] (numpy); clicks (x, y, positive) in pixels."""
    import torch

    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)  # PIL arrays are read-only
    rgb = image.float().div(255)
    mean, std = torch.tensor(_MEAN).view(3, 1, 1), torch.tensor(_STD).view(3, 1, 1)
    maps = torch.from_numpy(click_maps(clicks, rgb.shape[-2], rgb.shape[-1], radius))
    return torch.cat([(rgb - mean) / std, maps], 0)


def segment(model, image, clicks: list[Click], device=None, radius: float = CLICK_RADIUS) -> np.ndarray:
    """Object probability float32 [H, W] in 0..1 for `clicks` on `image` (uint8 [3, H, W] torch or [H, W, 3]
    numpy); runs without gradients in the model's current mode."""
    import torch

    device = device or next(model.parameters()).device
    with torch.no_grad():
        logits = model(model_input(image, clicks, radius)[None].to(device))
    return torch.sigmoid(logits[0, 0].float()).cpu().numpy()


def simulate_clicks(model, image, gt: np.ndarray, rounds: int, device, radius: float = CLICK_RADIUS) -> list[Click]:
    """Clicks for one training sample: the first in the object's interior, then `rounds` times the model predicts
    and the next click goes to its largest error (stops early when the mask is perfect)."""
    clicks = [next_click(np.zeros_like(gt), gt)]
    for _ in range(rounds):
        pred = segment(model, image, clicks, device, radius) > 0.5
        click = next_click(pred, gt)
        if click is None:
            break
        clicks.append(click)
    return clicks


class InteractiveAdapter(Adapter):
    name = "interactive"
    framework = "torchvision"
    task_type = "interactive segmentation"
    masks = True
    VARIANTS = VARIANTS
    default_variant = "click_lraspp_mobilenet_v3"
    small_variant = "click_tiny"
    find_unused_parameters = False
    class_agnostic = True  # one output, `obj`: the task's label count (--num-classes) does not constrain it

    @property
    def trainer(self):
        """The harness's Trainer with click-simulated validation (NoC, mIoU@k) instead of COCO mAP."""
        from cvatflow.training.interactive import InteractiveTrainer

        return InteractiveTrainer

    def default_hyperparameters(self, variant: str) -> dict[str, Any]:
        if variant == "click_tiny":
            return {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "warmup_steps": 10, "epochs": 10,
                    "batch_size": 8, "image_size": 128, "grad_clip": 5.0}
        # the seed's Smart Tool config: 256x256 inputs, batch 16, 30 epochs
        return {"optimizer": "adamw", "lr": 5e-4, "backbone_lr": 1e-4, "weight_decay": 1e-4, "warmup_steps": 100,
                "epochs": 30, "batch_size": 16, "image_size": 256, "grad_clip": 5.0}

    def settings(self, variant: str, image_size: int) -> dict[str, Any]:
        return {**super().settings(variant, image_size), "click_radius": CLICK_RADIUS, "max_clicks": MAX_CLICKS,
                "train_click_rounds": TRAIN_CLICK_ROUNDS,
                "val_objects": TINY_VAL_OBJECTS if variant == "click_tiny" else VAL_OBJECTS, "inputs": "rgb+pos+neg disk maps"}

    def build(self, settings: dict[str, Any], num_classes: int, pretrained: bool):
        model = _tiny_net() if settings["variant"] == "click_tiny" else _lraspp(pretrained)
        model.click_settings = dict(settings)  # click radius and rounds, read by losses and evaluation
        return model

    def head_keys(self, state_dict: dict[str, Any]) -> list[str]:
        return []  # class-agnostic: one output whatever the task's classes

    def losses(self, model, images: list, targets: list[dict[str, Any]], device) -> dict[str, Any]:
        """Binary cross-entropy plus soft Dice on one object per image (picked at random), after simulated
        clicks. Images without objects add nothing."""
        import torch
        from torch.nn import functional as F

        inner = getattr(model, "module", model)
        settings = getattr(inner, "click_settings", {})
        radius = float(settings.get("click_radius", CLICK_RADIUS))
        rounds_max = int(settings.get("train_click_rounds", TRAIN_CLICK_ROUNDS))
        inputs, gts = [], []
        for image, target in zip(images, targets):
            if not len(target["masks"]):
                continue
            gt = target["masks"][int(torch.randint(len(target["masks"]), ()))].numpy().astype(bool)
            rounds = int(torch.randint(rounds_max + 1, ()))
            clicks = simulate_clicks(inner, image, gt, rounds, device, radius)
            inputs.append(model_input(image, clicks, radius))
            gts.append(torch.from_numpy(gt))
        if not inputs:
            zero = sum(p.sum() * 0 for p in inner.parameters())
            return {"bce": zero, "dice": zero, "sum": zero}
        h, w = max(x.shape[-2] for x in inputs), max(x.shape[-1] for x in inputs)
        batch = torch.stack([F.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2])) for x in inputs]).to(device)
        gt = torch.stack([F.pad(g.float(), (0, w - g.shape[-1], 0, h - g.shape[-2])) for g in gts]).to(device)
        logits = model(batch)[:, 0].float()
        bce = F.binary_cross_entropy_with_logits(logits, gt)
        prob = torch.sigmoid(logits)
        dice = 1 - ((2 * (prob * gt).sum((1, 2)) + 1) / (prob.sum((1, 2)) + gt.sum((1, 2)) + 1)).mean()
        return {"bce": bce, "dice": dice, "sum": bce + dice}

    def predict(self, model, images: list, device, threshold: float = 0.0) -> list[dict[str, Any]]:
        raise TrainingError("an interactive model answers clicks, not whole images: use "
                            "cvatflow.models.interactive.segment(model, image, clicks) or the interactor function")

    def export_module(self, model, image_size: int):
        """ONNX: input `image` float [1, 5, H, W] (normalised RGB, positive and negative click maps, as
        model_input builds it), output `mask` [1, 1, H, W] object probabilities."""
        import torch

        class Exported(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, image):
                return torch.sigmoid(self.inner(image))

        return Exported(model).eval(), torch.zeros(1, 5, image_size, image_size), ["mask"]
