"""Mask R-CNN on torchvision: R50-FPN (v1, v2) with heads for the task's classes, and small CPU variants."""
from __future__ import annotations

from typing import Any

from cvatflow.models.base import Adapter, export_wrapper

VARIANTS = ["maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet18_fpn", "maskrcnn_mobilenet_v3"]
SMALL = ("maskrcnn_resnet18_fpn", "maskrcnn_mobilenet_v3")


DEFAULT_DETECTIONS = 100  # torchvision's box_detections_per_img
# Half the smallest anchor side: a centred square object of that size has IoU 0.25 with the anchor, under the RPN's
# 0.3 background threshold (torchvision defaults: anchors 32-512 for R50-FPN; ours below for the small variants).
MIN_OBJECT_SIZE = {"maskrcnn_resnet18_fpn": 8.0}  # others: 16


def _small_model(variant: str, classes: int, image_size: int, detections: int = DEFAULT_DETECTIONS):
    """A light Mask R-CNN that learns from scratch: trainable BatchNorm, narrow FPN and heads, few proposals."""
    from torch import nn
    from torchvision.models import mobilenet_v3_large, resnet18
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    channels = 128
    if variant == "maskrcnn_resnet18_fpn":
        body = resnet18(weights=None)
        backbone = BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
                                   [64, 128, 256, 512], channels, extra_blocks=LastLevelMaxPool())
        sizes = ((16,), (32,), (64,), (128,), (256,))
    else:
        features = mobilenet_v3_large(weights=None).features
        stages = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)] + [len(features) - 1]
        body = nn.Sequential(*features)
        returned = {str(stages[-2]): "0", str(stages[-1]): "1"}
        in_channels = [features[stages[-2]].out_channels, features[stages[-1]].out_channels]
        backbone = BackboneWithFPN(body, returned, in_channels, channels, extra_blocks=LastLevelMaxPool())
        sizes = ((32, 64, 128, 256),) * 3
    ratios = ((0.5, 1.0, 2.0),) * len(sizes)
    # GroupNorm in the heads: BatchNorm statistics over a few RoIs of tiny batches are noise.
    box_head = FastRCNNConvFCHead((channels, 7, 7), [channels] * 2, [512], norm_layer=lambda c: nn.GroupNorm(16, c))
    mask_head = MaskRCNNHeads(channels, [channels] * 2, 1, norm_layer=lambda c: nn.GroupNorm(16, c))
    return MaskRCNN(
        backbone, num_classes=None, min_size=image_size, max_size=image_size,
        rpn_anchor_generator=AnchorGenerator(sizes, ratios),
        rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        # at least as many proposals as detections wanted, else a dense image loses objects before the box head
        rpn_pre_nms_top_n_test=max(300, 2 * detections), rpn_post_nms_top_n_test=max(100, detections),
        box_detections_per_img=detections,
        box_head=box_head, box_predictor=FastRCNNPredictor(512, classes), box_batch_size_per_image=128,
        mask_head=mask_head, mask_predictor=MaskRCNNPredictor(channels, channels, classes),
    )


class MaskRcnnAdapter(Adapter):
    name = "maskrcnn"
    framework = "torchvision"
    task_type = "instance segmentation"
    masks = True
    VARIANTS = VARIANTS
    default_variant = "maskrcnn_resnet50_fpn_v2"
    small_variant = "maskrcnn_resnet18_fpn"
    # every parameter is in the loss, also on an image without objects (torchvision's mask loss is then
    # `mask_logits.sum() * 0`, roi_heads.py)
    find_unused_parameters = False

    def default_hyperparameters(self, variant: str) -> dict[str, Any]:
        if variant in SMALL:
            # Measured on 80 synthetic 256px images, 2 CPU cores: 8 epochs (~3.5 min) reach mAP ~0.65.
            return {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4, "warmup_steps": 30, "epochs": 8,
                    "batch_size": 4, "image_size": 256, "grad_clip": 5.0, "val_every": 2.0}
        return {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4, "warmup_steps": 200,
                "epochs": 24, "batch_size": 4, "image_size": 800, "grad_clip": 10.0}

    def min_object_size(self, variant: str) -> float | None:
        return MIN_OBJECT_SIZE.get(variant, 16.0)

    def fit_capacity(self, settings: dict[str, Any], max_objects: int) -> list[str]:
        from cvatflow.datasets.stats import capacity

        current = int(settings.get("box_detections_per_img") or DEFAULT_DETECTIONS)
        settings["box_detections_per_img"] = capacity(max_objects, current)
        if settings["box_detections_per_img"] == current:
            return []
        return [(f"box_detections_per_img {current} -> {settings['box_detections_per_img']}: the data has up to "
                f"{max_objects} objects on one image")]

    def build(self, settings: dict[str, Any], num_classes: int, pretrained: bool):
        from torchvision.models.detection import mask_rcnn
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
        from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

        variant, size = settings["variant"], int(settings["image_size"])
        classes = num_classes + 1  # torchvision reserves index 0 for the background
        detections = int(settings.get("box_detections_per_img") or DEFAULT_DETECTIONS)
        if variant in SMALL:
            return _small_model(variant, classes, size, detections)
        builder = getattr(mask_rcnn, variant)
        if pretrained:
            # The COCO-trained model (downloaded on machines with network), then heads for our classes.
            model = builder(weights="DEFAULT", min_size=size, max_size=max(size, round(size * 1333 / 800)),
                            box_detections_per_img=detections)
            box = model.roi_heads.box_predictor.cls_score.in_features
            model.roi_heads.box_predictor = FastRCNNPredictor(box, classes)
            mask = model.roi_heads.mask_predictor.conv5_mask.in_channels
            model.roi_heads.mask_predictor = MaskRCNNPredictor(mask, 256, classes)
            return model
        return builder(weights=None, weights_backbone=None, num_classes=classes, min_size=size,
                       max_size=max(size, round(size * 1333 / 800)), box_detections_per_img=detections)

    def head_keys(self, state_dict: dict[str, Any]) -> list[str]:
        return [k for k in state_dict if k.startswith(("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits"))]

    def losses(self, model, images: list, targets: list[dict[str, Any]], device) -> dict[str, Any]:
        inputs = [img.to(device, non_blocking=True).float().div_(255) for img in images]
        wanted = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device) + 1,
                   "masks": t["masks"].to(device)} for t in targets]
        losses = model(inputs, wanted)
        losses["sum"] = sum(losses.values())
        return losses

    def predict(self, model, images: list, device, threshold: float = 0.0) -> list[dict[str, Any]]:
        inputs = [img.to(device, non_blocking=True).float().div_(255) for img in images]
        results = []
        for out in model(inputs):
            keep = out["scores"] >= threshold
            results.append({"boxes": out["boxes"][keep], "scores": out["scores"][keep],
                            "labels": out["labels"][keep] - 1, "masks": out["masks"][keep, 0] > 0.5})
        return results

    def export_module(self, model, image_size: int):
        def forward(inner, image):
            """One image in, detections out (torchvision detection models take a list of images)."""
            out = inner([image[0]])[0]
            return out["boxes"], out["scores"], out["labels"] - 1, out["masks"][:, 0]

        return export_wrapper(model, image_size, forward, ["boxes", "scores", "labels", "masks"])
