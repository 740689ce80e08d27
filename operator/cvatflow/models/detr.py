"""DETR on Hugging Face transformers (DetrForObjectDetection): hub R50/R101 variants and a small one for CPUs."""
from __future__ import annotations

import re
from typing import Any, ClassVar

from cvatflow.models.base import Adapter, export_wrapper, grow_rows

VARIANTS = ["detr_resnet50", "detr_resnet101", "detr_small"]
HUB = {"detr_resnet50": "facebook/detr-resnet-50", "detr_resnet101": "facebook/detr-resnet-101"}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


DEFAULT_QUERIES = {"detr_small": 20}  # the others: DETR's 100
QUERY_KEY = "model.query_position_embeddings.weight"
# DETR decodes from one feature map at stride 32 (ResNet C5); an object under half a cell of it is at the edge of
# what it sees: the DETR paper's AP_small is half its AP overall (Carion et al. 2020, table 1).
MIN_OBJECT_SIZE = 16.0


def _config(variant: str, num_classes: int, num_queries: int | None = None):
    """A DetrConfig built offline (random init), with the HF ResNet backbone instead of timm."""
    from transformers import DetrConfig, ResNetConfig

    labels = {i: f"class_{i}" for i in range(num_classes)}
    queries = num_queries or DEFAULT_QUERIES.get(variant, 100)
    if variant == "detr_small":
        backbone = ResNetConfig(embedding_size=32, hidden_sizes=[32, 64, 128, 256], depths=[1, 1, 2, 1],
                                layer_type="basic", out_features=["stage4"])
        return DetrConfig(backbone_config=backbone, num_queries=queries, d_model=128, encoder_layers=2,
                          decoder_layers=2, encoder_ffn_dim=512, decoder_ffn_dim=512, encoder_attention_heads=4,
                          decoder_attention_heads=4, dropout=0.0, auxiliary_loss=True, id2label=labels,
                          label2id={v: k for k, v in labels.items()})
    depths = {"detr_resnet50": [3, 4, 6, 3], "detr_resnet101": [3, 4, 23, 3]}[variant]
    backbone = ResNetConfig(depths=depths, layer_type="bottleneck", out_features=["stage4"])
    return DetrConfig(backbone_config=backbone, num_queries=queries, id2label=labels,
                      label2id={v: k for k, v in labels.items()})


# ResNet stages DETR trains: layer2-4 (torchvision names) = the HF ResNet's encoder.stages.1-3; the stem and layer1
# stay frozen (facebookresearch/detr models/backbone.py BackboneBase: `if not train_backbone or 'layer2' not in name
# and 'layer3' not in name and 'layer4' not in name: parameter.requires_grad_(False)`).
TRAINED_STAGES = (1, 2, 3)


def train_backbone_stages(model) -> int:
    """Make the backbone stages DETR trains trainable again; returns how many parameters that turned on.

    transformers' DetrConvEncoder (modeling_detr.py, 5.23.0) keeps parameters trainable whose names contain
    "stage.1".."stage.3", but the HF ResNet names them "encoder.stages.1...", so with `use_timm_backbone=False`
    every backbone parameter stays frozen and only the transformer learns. BatchNorm stays frozen
    (DetrFrozenBatchNorm2d, as in DETR).
    """
    turned = 0
    wanted = tuple(f"encoder.stages.{i}." for i in TRAINED_STAGES)
    for name, param in getattr(model, "module", model).model.backbone.named_parameters():
        if any(w in name for w in wanted) and not param.requires_grad:
            param.requires_grad_(True)
            turned += param.numel()
    return turned


def _resize_queries(model, count: int) -> int:
    """Give a DetrForObjectDetection `count` object queries, keeping the first learned ones; returns the old count."""
    import torch

    old = model.model.query_position_embeddings
    if old.num_embeddings == count:
        return count
    new = torch.nn.Embedding(count, old.embedding_dim).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight.normal_(0.0, model.config.init_std)  # DetrPreTrainedModel's init of nn.Embedding
        keep = min(count, old.num_embeddings)
        new.weight[:keep] = old.weight[:keep]
    model.model.query_position_embeddings = new
    model.config.num_queries = count
    return old.num_embeddings


def pad_batch(images: list, device):
    """uint8 images [3, h, w] -> one float batch [B, 3, H, W] in 0..1 (zero padding at the bottom and right) and
    the long mask [B, H, W] of real pixels; H, W are the largest height and width."""
    import torch

    height = max(img.shape[-2] for img in images)
    width = max(img.shape[-1] for img in images)
    batch = torch.zeros((len(images), 3, height, width), device=device)
    mask = torch.zeros((len(images), height, width), dtype=torch.long, device=device)
    for i, img in enumerate(images):
        h, w = img.shape[-2:]
        batch[i, :, :h, :w] = img.to(device, non_blocking=True).float().div_(255)
        mask[i, :h, :w] = 1
    return batch, mask


def hf_labels(targets: list[dict[str, Any]], height: int, width: int, device) -> list[dict[str, Any]]:
    """Targets (boxes xyxy in input pixels, 0-based labels) -> the transformers DETR-family label format:
    `class_labels` and `boxes` as cx, cy, w, h relative to the padded batch (as the processors' pad() makes them)."""
    import torch

    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    labels = []
    for t in targets:
        b = t["boxes"] / scale
        cxcywh = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0],
                              b[:, 3] - b[:, 1]], dim=1)
        labels.append({"class_labels": t["labels"].to(device), "boxes": cxcywh.to(device)})
    return labels


def per_image(images: list, boxes, scores, labels, threshold: float) -> list[dict[str, Any]]:
    """Split batched detections [B, N, ...] per image: keep scores >= threshold, clip boxes to each image."""
    results = []
    for i, img in enumerate(images):
        keep = scores[i] >= threshold
        h, w = img.shape[-2:]
        b = boxes[i][keep]
        b[:, 0::2] = b[:, 0::2].clamp(0, w)
        b[:, 1::2] = b[:, 1::2].clamp(0, h)
        results.append({"boxes": b, "scores": scores[i][keep], "labels": labels[i][keep]})
    return results


def main_losses(out) -> dict[str, Any]:
    """The final layer's loss terms of a transformers detection output (auxiliary, denoising and encoder terms,
    named `..._<n>`, left out of the report) and `sum`, the weighted total the model computed."""
    losses = {k: v for k, v in out.loss_dict.items() if k[-2:-1] != "_" or not k[-1].isdigit()}
    losses["sum"] = out.loss
    return losses


BOX_TERMS = ("loss_bbox", "loss_giou")  # divided by the object count in transformers' DETR-family losses


def renormalise_boxes(out, local: int, num_boxes: float, terms: dict[str, float]) -> dict[str, Any]:
    """`main_losses(out)` with every box term (`terms`: name -> weight in the total, final, auxiliary and
    denoising layers) divided by `num_boxes` (mean objects per micro-batch over all ranks) instead of this
    batch's `local` count.

    transformers divides box terms by the rank's own count (its cross-rank reduction needs Accelerate's state,
    and then divides twice); the DETR reference (facebookresearch/detr models/detr.py) all-reduces the count
    and divides by it over the world size. The total is recomputed from the weighted terms as transformers sums
    it (loss_for_object_detection.py), so the gradient follows the reference's.
    """
    factor = max(float(local), 1.0) / max(num_boxes, 1.0)
    loss_dict = dict(out.loss_dict)
    total = out.loss
    for key, value in out.loss_dict.items():
        base = re.sub(r"(_aux|_dn)?_\d+$", "", key)  # DETR's loss_bbox_0, RT-DETR's loss_bbox_aux_0/_dn_0
        if base in terms:
            loss_dict[key] = value * factor
            total = total + terms[base] * (loss_dict[key] - value)
    losses = {k: v for k, v in loss_dict.items() if k[-2:-1] != "_" or not k[-1].isdigit()}
    losses["sum"] = total
    return losses


def _normalize(images: list, device):
    """Pad a list of uint8 images into one normalised batch and the mask of real pixels."""
    import torch

    batch, mask = pad_batch(images, device)
    mean = torch.tensor(MEAN, device=device)[:, None, None]
    std = torch.tensor(STD, device=device)[:, None, None]
    return (batch - mean) / std * mask[:, None], mask


def _decode(logits, pred_boxes, height, width):
    """Scores, labels and absolute xyxy boxes of DETR outputs (the no-object class dropped)."""
    from transformers.image_transforms import center_to_corners_format

    scores, labels = logits.softmax(-1)[..., :-1].max(-1)
    boxes = center_to_corners_format(pred_boxes)
    scale = boxes.new_tensor([width, height, width, height]) if not hasattr(width, "shape") else \
        __import__("torch").stack([width, height, width, height]).to(boxes.dtype)
    return boxes * scale, scores, labels


class DetrAdapter(Adapter):
    name = "detr"
    framework = "transformers"  # an object detector (the Adapter's task_type), no masks
    VARIANTS = VARIANTS
    default_variant = "detr_resnet50"
    small_variant = "detr_small"
    find_unused_parameters = False  # every parameter is in the loss, with or without objects
    global_box_norm = True

    # DETR's recipe (facebookresearch/detr main.py: AdamW, lr 1e-4, backbone 1e-5, weight decay 1e-4, clip 0.1,
    # 800 px), with fewer epochs than its 500; the small variant trains from scratch on a CPU, so it learns faster.
    RECIPE: ClassVar[dict[str, Any]] = {
        "optimizer": "adamw", "lr": 1e-4, "backbone_lr": 1e-5, "weight_decay": 1e-4, "warmup_steps": 100,
        "epochs": 50, "batch_size": 4, "image_size": 800, "grad_clip": 0.1}
    SMALL_RECIPE: ClassVar[dict[str, Any]] = {
        "optimizer": "adamw", "lr": 5e-4, "weight_decay": 1e-4, "warmup_steps": 30, "epochs": 40,
        "batch_size": 8, "image_size": 256, "grad_clip": 0.5}

    def default_hyperparameters(self, variant: str) -> dict[str, Any]:
        return dict(self.SMALL_RECIPE if variant == self.small_variant else self.RECIPE)

    def settings(self, variant: str, image_size: int) -> dict[str, Any]:
        return {"model": self.name, "variant": variant, "image_size": image_size}

    def min_object_size(self, variant: str) -> float | None:
        return MIN_OBJECT_SIZE

    def fit_capacity(self, settings: dict[str, Any], max_objects: int) -> list[str]:
        from cvatflow.datasets.stats import capacity

        current = int(settings.get("num_queries") or settings.get("detr_config", {}).get("num_queries")
                      or DEFAULT_QUERIES.get(settings["variant"], 100))
        settings["num_queries"] = capacity(max_objects, current)
        if settings["num_queries"] == current:
            return []
        # the Hungarian matcher pairs each object with one query: objects beyond the queries are never learned
        return [(f"num_queries {current} -> {settings['num_queries']}: the data has up to {max_objects} objects on "
                f"one image and DETR needs a query per object")]

    def adapt_weights(self, weights: dict[str, Any], model) -> list[str]:
        return grow_rows(weights, model, QUERY_KEY, "object queries")

    def build(self, settings: dict[str, Any], num_classes: int, pretrained: bool):
        from transformers import DetrConfig, DetrForObjectDetection

        labels = {i: f"class_{i}" for i in range(num_classes)}
        label_kwargs = {"id2label": labels, "label2id": {v: k for k, v in labels.items()}}
        variant = settings["variant"]
        if pretrained and variant in HUB:
            # The COCO-trained model from the hub (machines with network), new class head for our classes.
            model = DetrForObjectDetection.from_pretrained(HUB[variant], ignore_mismatched_sizes=True,
                                                           use_timm_backbone=False, **label_kwargs)
            if settings.get("num_queries"):
                old = _resize_queries(model, int(settings["num_queries"]))
                if old != model.config.num_queries:
                    print(f"{HUB[variant]} has {old} object queries, this model {model.config.num_queries}: "
                          f"{min(old, model.config.num_queries)} query embeddings kept, the rest re-initialised",
                          flush=True)
        elif settings.get("detr_config"):
            queries = {"num_queries": int(settings["num_queries"])} if settings.get("num_queries") else {}
            config = DetrConfig.from_dict({**settings["detr_config"], **label_kwargs, **queries})
            model = DetrForObjectDetection(config)
        else:
            model = DetrForObjectDetection(_config(variant, num_classes, settings.get("num_queries")))
        train_backbone_stages(model)
        config = model.config.to_dict()
        config.pop("id2label", None), config.pop("label2id", None)
        settings["detr_config"] = config  # rebuild offline from config.json alone
        return model

    def head_keys(self, state_dict: dict[str, Any]) -> list[str]:
        return [k for k in state_dict if k.startswith("class_labels_classifier.")]

    def losses(self, model, images: list, targets: list[dict[str, Any]], device,
               num_boxes: float | None = None) -> dict[str, Any]:
        """Loss terms of one batch; `num_boxes` (mean objects per micro-batch over all ranks) renormalises the
        box and GIoU terms the way the DETR reference does under DDP."""
        pixels, mask = _normalize(images, device)
        labels = hf_labels(targets, pixels.shape[-2], pixels.shape[-1], device)
        out = model(pixel_values=pixels, pixel_mask=mask, labels=labels)
        if num_boxes is None:
            return main_losses(out)
        config = getattr(model, "module", model).config
        weights = {"loss_bbox": config.bbox_loss_coefficient, "loss_giou": config.giou_loss_coefficient}
        return renormalise_boxes(out, sum(len(t["boxes"]) for t in targets), num_boxes, weights)

    def predict(self, model, images: list, device, threshold: float = 0.0) -> list[dict[str, Any]]:
        pixels, mask = _normalize(images, device)
        height, width = pixels.shape[-2:]
        out = model(pixel_values=pixels, pixel_mask=mask)
        boxes, scores, labels = _decode(out.logits.float(), out.pred_boxes.float(), height, width)
        return per_image(images, boxes, scores, labels, threshold)

    def export_module(self, model, image_size: int):
        return export_wrapper(model, image_size, _export_forward, ["boxes", "scores", "labels"])


def _export_forward(inner, image):
    """One float image [1, 3, H, W] in 0..1 in; boxes (xyxy pixels), scores, labels of every query out."""
    mean = image.new_tensor(MEAN)[None, :, None, None]
    std = image.new_tensor(STD)[None, :, None, None]
    out = inner(pixel_values=(image - mean) / std)
    boxes, scores, labels = _decode(out.logits, out.pred_boxes, image.shape[2], image.shape[3])
    return boxes[0], scores[0], labels[0]
