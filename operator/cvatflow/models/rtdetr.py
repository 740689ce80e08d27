"""RT-DETRv2 and D-FINE on Hugging Face transformers: hub variants (COCO checkpoints) and tiny ones for CPUs."""
from __future__ import annotations

import math
from typing import Any

from cvatflow.models.base import Adapter, export_wrapper, grow_rows
from cvatflow.models.detr import hf_labels, main_losses, pad_batch, per_image, renormalise_boxes
from cvatflow.models.rtdetr_variants import BY_NAME, SMALL, VARIANTS, offline_config

__all__ = ["VARIANTS", "RtDetrAdapter"]

QUERY_KEY = "model.weight_embedding.weight"  # only with learn_initial_query (off in every variant here)
# Terms transformers' RTDetrLoss/DFineLoss divide by the batch's box count (loss_ddf is a mean: not among them);
# their loss_dict holds them already weighted, so each counts once in the total.
BOX_COUNT_TERMS = dict.fromkeys(("loss_vfl", "loss_focal", "loss_bbox", "loss_giou", "loss_fgl"), 1.0)


def strides(variant: str) -> tuple[int, ...]:
    """Feature strides the encoder selects queries from (D-FINE-N: two levels, configs/dfine/dfine_hgnetv2_n_coco.yml;
    the others: 8, 16, 32 as in RT-DETR's and D-FINE's include/*.yml)."""
    return (16, 32) if variant == "dfine_n" else (8, 16, 32)


def query_candidates(variant: str, image_size: int) -> int:
    """Encoder positions top-k picks the queries from on a square `image_size` input (one per feature cell)."""
    return sum(math.ceil(image_size / s) ** 2 for s in strides(variant))


def _classes(family: str):
    """(model class, config class) of a family."""
    if family == "rtdetr_v2":
        from transformers import RTDetrV2Config, RTDetrV2ForObjectDetection

        return RTDetrV2ForObjectDetection, RTDetrV2Config
    from transformers import DFineConfig, DFineForObjectDetection

    return DFineForObjectDetection, DFineConfig


# Kept as transformers initialises them (they follow the reference repositories' _reset_parameters): the class
# heads' prior-probability bias, the zeroed last box layers, deformable attention's sampling grid, D-FINE's gates
# and localization-quality head.
_SPECIAL_INIT = ("class_embed", "bbox_embed", "enc_score_head", "Deformable", "Gate", "LQE")


def reference_init(model) -> int:
    """Re-initialise a model built from scratch as the reference repositories do; returns the modules reset.

    transformers draws every Linear and Conv2d from N(0, 0.01) and every BatchNorm weight from N(0, 0.01)
    (`PreTrainedModel._init_weights`, `RTDetrV2PreTrainedModel._init_weights`, 5.23.0). At the tiny variants' widths
    that shrinks the signal ~10x per layer: the encoder's output is ~1e-11, every query scores the same (so top-k
    order is arbitrary: torch and onnxruntime pick different queries) and training starts from a dead network.
    lyuwenyu/RT-DETR and Peterande/D-FINE keep PyTorch's defaults (kaiming-uniform Linear/Conv2d, BatchNorm weight 1,
    bias 0) and then set the heads (`RTDETRTransformerv2._reset_parameters`, `DFINETransformer._reset_parameters`);
    the heads keep transformers' values, which follow those. Only for random init: hub weights are left alone.
    """
    import torch

    kept = {id(p) for name, mod in model.named_modules()
            if any(k in name or k in type(mod).__name__ for k in _SPECIAL_INIT) for p in mod.parameters()}
    reset = 0
    for mod in model.modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.LayerNorm)) and \
                not any(id(p) in kept for p in mod.parameters(recurse=False)):
            mod.reset_parameters()
            reset += 1
    inner = _inner(model)
    with torch.no_grad():  # as RTDETRTransformerv2._reset_parameters: the encoder's box head starts at the anchors
        last = inner.enc_bbox_head.layers[-1]
        last.weight.zero_(), last.bias.zero_()
    return reset


def _decode(logits, pred_boxes, height: int, width: int):
    """Boxes (xyxy, input pixels), scores and labels of the top `queries` (query, class) pairs by sigmoid score,
    as RT-DETR's post-processor does (focal-loss heads: one query may name several classes).

    logits [B, Q, C], pred_boxes [B, Q, 4] (cx, cy, w, h relative) -> boxes [B, Q, 4], scores [B, Q], labels [B, Q].
    """
    import torch
    from transformers.image_transforms import center_to_corners_format

    queries, classes = logits.shape[1], logits.shape[2]
    scores, index = logits.sigmoid().flatten(1).topk(queries, dim=1)
    labels = index % classes
    query = torch.div(index, classes, rounding_mode="floor")
    boxes = center_to_corners_format(pred_boxes).gather(1, query.unsqueeze(-1).expand(-1, -1, 4))
    scale = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    return boxes * scale, scores, labels


class RtDetrAdapter(Adapter):
    name = "rtdetr"
    framework = "transformers"  # an object detector (the Adapter's task_type), no masks
    VARIANTS = VARIANTS
    default_variant = "rtdetr_v2_r18vd"  # the smallest hub model that beats DETR-R50 (48.1 vs 42.0 AP) at 217 FPS
    small_variant = "rtdetr_v2_tiny"
    global_box_norm = True
    # Anchors and position embeddings are computed from the feature map sizes, which tracing freezes: the ONNX
    # model takes [1, 3, image_size, image_size] (pad a resized image at the bottom/right, as training does).
    export_fixed_size = True

    def default_hyperparameters(self, variant: str) -> dict[str, Any]:
        if variant in SMALL:
            # Ours: DETR-small's schedule at twice its lr, at 128 px: the synthetic shapes are 15-40% of the
            # image (19-51 px at 128, above half a stride-8 cell), and a quarter of the pixels should give up to
            # ~4x the steps in the same time (an estimate: the mAP it reaches in bench/time_to_map.py was not
            # measured on a quiet machine). No EMA: a few hundred steps are shorter than its ramp.
            return {"optimizer": "adamw", "lr": 1e-3, "backbone_lr": 1e-3, "weight_decay": 1e-4,
                    "warmup_steps": 30, "epochs": 30, "batch_size": 8, "image_size": 128, "grad_clip": 1.0}
        info = BY_NAME[variant]
        if info.family == "rtdetr_v2":
            # lyuwenyu/RT-DETR rtdetrv2_pytorch configs/rtdetrv2/include/optimizer.yml: AdamW lr 1e-4, backbone
            # 1e-5 (r18vd/r34vd configs drop that group: backbone at lr), weight_decay 1e-4, clip_max_norm 0.1,
            # LinearWarmup 2000 steps, 72 epochs (r18vd/r34vd: 120); include/dataloader.yml: Resize 640,
            # total_batch_size 16 on 4 GPUs (4 per GPU); include/rtdetrv2_r50vd.yml: use_ema, ModelEMA decay 0.9999,
            # warmups 2000. rtdetrv2_r34vd_120e_coco.yml: backbone lr 5e-5. Multi-scale: include/dataloader.yml
            # collate_fn scales 480..800 (step 32, 640 three times), stop_epoch 71 of 72; r34vd: stop_epoch 117 of
            # 120; r18vd_120e_coco.yml turns it off (`scales: ~`).
            backbone_lr = {"rtdetr_v2_r18vd": 1e-4, "rtdetr_v2_r34vd": 5e-5}.get(variant, 1e-5)
            until = {"rtdetr_v2_r34vd": 117 / 120}.get(variant, 71 / 72)
            return {"optimizer": "adamw", "lr": 1e-4, "backbone_lr": backbone_lr,
                    "weight_decay": 1e-4, "warmup_steps": 2000, "epochs": info.epochs, "batch_size": 4,
                    "image_size": 640, "grad_clip": 0.1, "ema_decay": 0.9999, "ema_warmup_steps": 2000,
                    "multi_scale": variant != "rtdetr_v2_r18vd", "multi_scale_until": round(until, 4)}
        # Peterande/D-FINE configs/dfine/dfine_hgnetv2_{s,m,l,x}_coco.yml: AdamW lr 2.5e-4, weight_decay 1.25e-4,
        # backbone lr S 1.25e-4, M 2.5e-5, L 1.25e-5, X 2.5e-6; epochs S/M 130, L/X 80; include/optimizer.yml:
        # clip_max_norm 0.1, LinearWarmup 500; include/dataloader.yml: 640 px, total_batch_size 32 on 4 GPUs
        # (8 per GPU); include/optimizer.yml: use_ema, ModelEMA decay 0.9999, warmups 1000. Multi-scale:
        # include/dataloader.yml collate_fn scales 480..800, stop_epoch 120 of 130 (dfine_hgnetv2_s_coco.yml),
        # 72 of 80 (dfine_hgnetv2_l_coco.yml); M and X were not read here: M takes S's, X takes L's. N's config was
        # not readable here: it takes S's settings.
        backbone_lr = {"dfine_n": 1.25e-4, "dfine_s": 1.25e-4, "dfine_m": 2.5e-5, "dfine_l": 1.25e-5,
                       "dfine_x": 2.5e-6}[variant]
        until = 72 / 80 if variant in ("dfine_l", "dfine_x") else 120 / 130
        return {"optimizer": "adamw", "lr": 2.5e-4, "backbone_lr": backbone_lr, "weight_decay": 1.25e-4,
                "warmup_steps": 500, "epochs": info.epochs or 130, "batch_size": 8, "image_size": 640,
                "grad_clip": 0.1, "ema_decay": 0.9999, "ema_warmup_steps": 1000, "multi_scale": True,
                "multi_scale_until": round(until, 4)}

    def min_object_size(self, variant: str) -> float | None:
        # Half a cell of the finest feature map the queries are selected from, the rule the DETR adapter uses
        # (there: stride 32); RT-DETR-R50's published AP_small is 34.8 against 53.1 overall (RT-DETR README).
        return strides(variant)[0] / 2

    def fit_capacity(self, settings: dict[str, Any], max_objects: int) -> list[str]:
        from cvatflow.datasets.stats import capacity

        current = int(settings.get("num_queries") or settings.get("hf_config", {}).get("num_queries")
                      or offline_config(settings["variant"], 1).num_queries)
        wanted = capacity(max_objects, current)
        # top-k selects the queries among the encoder's cells: more than there are fails at the first batch
        ceiling = query_candidates(settings["variant"], int(settings["image_size"]))
        settings["num_queries"] = min(wanted, max(current, ceiling))
        lines = []
        if settings["num_queries"] != current:
            # each object is matched to one query (Hungarian matching): objects beyond the queries are never learned
            lines.append(f"num_queries {current} -> {settings['num_queries']}: the data has up to {max_objects} "
                         f"objects on one image and RT-DETR/D-FINE give one detection per query")
        if wanted > settings["num_queries"]:
            lines.append(f"warning: up to {max_objects} objects on one image, but at image_size "
                         f"{settings['image_size']} the encoder has {ceiling} cells to pick queries from; raise "
                         f"image_size to detect them all")
        return lines

    def adapt_weights(self, weights: dict[str, Any], model) -> list[str]:
        # The queries are picked from the encoder's cells, so no weight depends on their number; only a learned
        # initial query embedding (learn_initial_query) does, grown as the DETR adapter grows its queries.
        return grow_rows(weights, model, QUERY_KEY, "learned initial queries")

    def build(self, settings: dict[str, Any], num_classes: int, pretrained: bool):
        variant = settings["variant"]
        info = BY_NAME[variant]
        model_cls, config_cls = _classes(info.family)
        labels = {i: f"class_{i}" for i in range(num_classes)}
        label_kwargs = {"id2label": labels, "label2id": {v: k for k, v in labels.items()}}
        queries = {"num_queries": int(settings["num_queries"])} if settings.get("num_queries") else {}
        if pretrained and info.hub:
            # The COCO-trained model from the hub (machines with network), new class heads for our classes.
            # Not exercised by the tests (no network there); the offline branches below are.
            model = model_cls.from_pretrained(info.hub, ignore_mismatched_sizes=True, **label_kwargs, **queries)
        elif settings.get("hf_config"):
            model = model_cls(config_cls.from_dict({**settings["hf_config"], **label_kwargs, **queries}))
        else:
            config = offline_config(variant, num_classes)
            config.num_queries = queries.get("num_queries", config.num_queries)
            model = model_cls(config)
        if not (pretrained and info.hub):
            reference_init(model)  # checkpoints overwrite it; from scratch it decides whether training starts
        config = model.config.to_dict()
        config.pop("id2label", None), config.pop("label2id", None)
        settings["hf_config"] = config  # rebuild offline from config.json alone
        return model

    def settings(self, variant: str, image_size: int) -> dict[str, Any]:
        return {"model": self.name, "variant": variant, "image_size": image_size}

    def head_keys(self, state_dict: dict[str, Any]) -> list[str]:
        # Class-sized: the decoder's per-layer class heads, the encoder's query-selection head, and the denoising
        # label embedding (num_labels + 1 rows).
        return [k for k in state_dict if "class_embed" in k or "enc_score_head" in k]

    def param_groups(self, model, lr: float, backbone_lr: float) -> list[dict[str, Any]]:
        """Backbone at `backbone_lr`; norm weights without weight decay (both recipes' optimizer `params`)."""
        groups: dict[tuple[bool, bool], list] = {}
        for name, param in model.named_parameters():
            if param.requires_grad:
                key = ("backbone" in name, param.ndim == 1 and ("norm" in name or "bn" in name))
                groups.setdefault(key, []).append(param)
        return [{"params": params, "lr": backbone_lr if backbone else lr, **({"weight_decay": 0.0} if no_decay
                                                                          else {})}
                for (backbone, no_decay), params in sorted(groups.items())]

    def losses(self, model, images: list, targets: list[dict[str, Any]], device,
               num_boxes: float | None = None) -> dict[str, Any]:
        pixels, _ = pad_batch(images, device)  # RT-DETR and D-FINE take 0..1 pixels, no mean/std
        labels = hf_labels(targets, pixels.shape[-2], pixels.shape[-1], device)
        out = model(pixel_values=pixels, labels=labels)
        # transformers' RT-DETR/D-FINE criteria divide by this rank's box count, with no all_reduce; under DDP
        # `num_boxes` (the all-ranks mean) replaces it, as lyuwenyu/RT-DETR's and D-FINE's criteria do.
        losses = main_losses(out) if num_boxes is None else renormalise_boxes(
            out, sum(len(t["class_labels"]) for t in labels), num_boxes, BOX_COUNT_TERMS)
        if model.training and not any(len(t["class_labels"]) for t in labels):
            # A batch without objects skips the denoising queries, so the label embedding gets no gradient. One
            # process does not mind; DDP (without find_unused_parameters) waits for that gradient forever. A zero
            # term keeps the graph the same as in every other batch and changes no value.
            embed = _inner(model).denoising_class_embed
            if embed is not None:
                losses["sum"] = losses["sum"] + 0.0 * sum(p.sum() for p in embed.parameters())
        return losses

    def predict(self, model, images: list, device, threshold: float = 0.0) -> list[dict[str, Any]]:
        pixels, _ = pad_batch(images, device)
        out = model(pixel_values=pixels)
        boxes, scores, labels = _decode(out.logits.float(), out.pred_boxes.float(), pixels.shape[-2],
                                        pixels.shape[-1])
        return per_image(images, boxes, scores, labels, threshold)

    def export_module(self, model, image_size: int):
        def forward(inner, image):
            """One float image [1, 3, S, S] in 0..1 in; boxes (xyxy pixels), scores, labels of the top queries out."""
            out = inner(pixel_values=image)
            boxes, scores, labels = _decode(out.logits, out.pred_boxes, image_size, image_size)
            return boxes[0], scores[0], labels[0]

        return export_wrapper(model, image_size, forward, ["boxes", "scores", "labels"])


def _inner(model):
    """The base model (RTDetrV2Model / DFineModel) under the detection head, also through a DDP wrapper."""
    model = getattr(model, "module", model)
    return model.model
