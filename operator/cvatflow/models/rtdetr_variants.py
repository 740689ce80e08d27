"""RT-DETRv2 and D-FINE variants: hub checkpoints, published COCO figures, and configs built offline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Sources of the published figures below (COCO val2017 AP, T4 TensorRT fp16 speed, parameters, epochs):
RTDETR_V2_README = "lyuwenyu/RT-DETR rtdetrv2_pytorch/README.md (Model Zoo) and configs/rtdetrv2/*.yml"
DFINE_README = "Peterande/D-FINE README.md (Model Zoo, COCO) and configs/dfine/dfine_hgnetv2_*_coco.yml"


@dataclass(frozen=True)
class Variant:
    """One model of the family; `hub` is None for the small variants built for CPUs."""

    name: str
    family: str  # "rtdetr_v2" or "dfine"
    title: str
    hub: str | None
    coco_ap: float | None  # published COCO val2017 AP (0-100)
    epochs: int | None  # epochs of the published COCO schedule
    params_m: float | None  # published parameter count, millions
    speed: str  # published T4 speed (RT-DETRv2: FPS; D-FINE: latency)
    source: str


# Hub ids: `PekingU/rtdetr_r50vd`-style names for v1 and `ustc-community/dfine-xlarge-coco` appear in transformers
# 5.23.0's configs; the other ids follow those repositories' naming and could not be fetched here to check.
# Columns: name | title | hub id (- for none) | COCO AP | epochs | params (M) | T4 speed; "-" is unknown/none.
_TABLE = """
rtdetr_v2_r18vd  | RT-DETRv2-S (ResNet-18vd)           | PekingU/rtdetr_v2_r18vd          | 48.1 | 120 | 20  | 217 FPS
rtdetr_v2_r34vd  | RT-DETRv2-M* (ResNet-34vd)          | PekingU/rtdetr_v2_r34vd          | 49.9 | 120 | 31  | 161 FPS
rtdetr_v2_r50vd  | RT-DETRv2-L (ResNet-50vd)           | PekingU/rtdetr_v2_r50vd          | 53.4 | 72  | 42  | 108 FPS
rtdetr_v2_r101vd | RT-DETRv2-X (ResNet-101vd)          | PekingU/rtdetr_v2_r101vd         | 54.3 | 72  | 76  | 74 FPS
dfine_n          | D-FINE-N (HGNetV2-B0)               | ustc-community/dfine-nano-coco   | 42.8 | -   | 4   | 2.12 ms
dfine_s          | D-FINE-S (HGNetV2-B0)               | ustc-community/dfine-small-coco  | 48.5 | 130 | 10  | 3.49 ms
dfine_m          | D-FINE-M (HGNetV2-B2)               | ustc-community/dfine-medium-coco | 52.3 | 130 | 19  | 5.62 ms
dfine_l          | D-FINE-L (HGNetV2-B4)               | ustc-community/dfine-large-coco  | 54.0 | 80  | 31  | 8.07 ms
dfine_x          | D-FINE-X (HGNetV2-B5)               | ustc-community/dfine-xlarge-coco | 55.8 | 80  | 62  | 12.89 ms
rtdetr_v2_tiny   | RT-DETRv2 tiny (CPU, from scratch)  | -                                | -    | -   | 1.7 | -
dfine_tiny       | D-FINE tiny (CPU, from scratch)     | -                                | -    | -   | 0.7 | -
"""


def _row(line: str) -> Variant:
    """One line of _TABLE as a Variant (the family from the name; the source: the family's README, or ours)."""
    name, title, hub, ap, epochs, params, speed = (None if c == "-" else c for c in
                                                   (c.strip() for c in line.split("|")))
    family = "dfine" if name.startswith("dfine") else "rtdetr_v2"
    source = "cvatflow" if hub is None else (DFINE_README if family == "dfine" else RTDETR_V2_README)
    return Variant(name, family, title, hub, float(ap) if ap else None, int(epochs) if epochs else None,
                   float(params), speed or "", source)


VARIANTS_TABLE = [_row(line) for line in _TABLE.strip().splitlines()]
BY_NAME = {v.name: v for v in VARIANTS_TABLE}
VARIANTS = [v.name for v in VARIANTS_TABLE]
SMALL = ("rtdetr_v2_tiny", "dfine_tiny")


def _labels(num_classes: int) -> dict[str, Any]:
    labels = {i: f"class_{i}" for i in range(num_classes)}
    return {"id2label": labels, "label2id": {v: k for k, v in labels.items()}}


def _rtdetr_v2(name: str, num_classes: int):
    """RTDetrV2Config of a variant, as transformers' conversion script (convert_rt_detr_v2_weights_to_hf.py) sets it."""
    from transformers import RTDetrResNetConfig, RTDetrV2Config

    kwargs: dict[str, Any] = {}
    backbone: dict[str, Any] = {"out_indices": [2, 3, 4]}
    if name in ("rtdetr_v2_r18vd", "rtdetr_v2_r34vd"):
        backbone.update(hidden_sizes=[64, 128, 256, 512], layer_type="basic",
                        depths=[2, 2, 2, 2] if name == "rtdetr_v2_r18vd" else [3, 4, 6, 3])
        kwargs.update(encoder_in_channels=[128, 256, 512], hidden_expansion=0.5,
                      decoder_layers=3 if name == "rtdetr_v2_r18vd" else 4,
                      freeze_backbone_batch_norms=False)  # recipe: PResNet freeze_norm False for r18vd/r34vd
    elif name == "rtdetr_v2_r101vd":
        backbone.update(depths=[3, 4, 23, 3])
        kwargs.update(encoder_ffn_dim=2048, encoder_hidden_dim=384, decoder_in_channels=[384] * 3)
    elif name == "rtdetr_v2_tiny":
        # Ours: a narrow ResNet and 64-wide encoder/decoder that learn the synthetic shapes from scratch on a CPU.
        # BatchNorm trains (freezing random statistics would fix them at noise).
        backbone.update(embedding_size=32, hidden_sizes=[32, 64, 128, 256], depths=[1, 1, 1, 1], layer_type="basic")
        kwargs.update(encoder_in_channels=[64, 128, 256], encoder_hidden_dim=64, d_model=64,
                      decoder_in_channels=[64] * 3, encoder_ffn_dim=128, decoder_ffn_dim=128,
                      encoder_attention_heads=4, decoder_attention_heads=4, decoder_layers=3, num_queries=50,
                      num_denoising=50, hidden_expansion=0.5, freeze_backbone_batch_norms=False)
    return RTDetrV2Config(backbone_config=RTDetrResNetConfig(**backbone), **kwargs, **_labels(num_classes))


# HGNetV2 stages as transformers' D-FINE conversion script and HGNetV2 B0/B2/B4/B5 define them:
# stem channels, then per stage in/mid/out channels, blocks and layers per block.
_HGNET = {
    "B0": ([3, 16, 16], [16, 64, 256, 512], [16, 32, 64, 128], [64, 256, 512, 1024], [1, 1, 2, 1], 3, True),
    "B2": ([3, 24, 32], [32, 96, 384, 768], [32, 64, 128, 256], [96, 384, 768, 1536], [1, 1, 3, 1], 4, True),
    "B4": ([3, 32, 48], [48, 128, 512, 1024], [48, 96, 192, 384], [128, 512, 1024, 2048], [1, 1, 3, 1], 6, False),
    "B5": ([3, 32, 64], [64, 128, 512, 1024], [64, 128, 256, 512], [128, 512, 1024, 2048], [1, 2, 5, 2], 6, False),
    # Ours: a B0 cut to a third of its width, for CPUs.
    "tiny": ([3, 16, 16], [16, 64, 128, 256], [16, 32, 64, 128], [64, 128, 256, 256], [1, 1, 1, 1], 2, True),
}


def _hgnet(name: str, out_indices: list[int]):
    from transformers import HGNetV2Config

    stem, cin, mid, out, blocks, layers, lab = _HGNET[name]
    return HGNetV2Config(stem_channels=stem, stage_in_channels=cin, stage_mid_channels=mid, stage_out_channels=out,
                         stage_num_blocks=blocks, stage_numb_of_layers=[layers] * 4, hidden_sizes=out, depths=blocks,
                         embedding_size=stem[-1], use_learnable_affine_block=lab, out_indices=out_indices)


def _dfine(name: str, num_classes: int):
    """DFineConfig of a variant: transformers' D-FINE conversion script, and D-FINE's configs for N (2 levels)."""
    from transformers import DFineConfig

    kwargs: dict[str, Any] = {"decoder_n_points": [3, 6, 3]}  # D-FINE configs/dfine/include/dfine_hgnetv2.yml
    if name == "dfine_n":  # configs/dfine/dfine_hgnetv2_n_coco.yml: two feature levels, 128 wide
        backbone = _hgnet("B0", [3, 4])
        kwargs.update(encoder_in_channels=[512, 1024], feat_strides=[16, 32], encode_proj_layers=[1],
                      encoder_hidden_dim=128, encoder_ffn_dim=512, hidden_expansion=0.34, depth_mult=0.5,
                      d_model=128, decoder_in_channels=[128, 128], num_feature_levels=2, decoder_n_points=[6, 6],
                      decoder_ffn_dim=512, decoder_layers=3, freeze_backbone_batch_norms=False)
    elif name == "dfine_s":
        backbone = _hgnet("B0", [2, 3, 4])
        kwargs.update(encoder_in_channels=[256, 512, 1024], hidden_expansion=0.5, depth_mult=0.34, decoder_layers=3,
                      freeze_backbone_batch_norms=False)
    elif name == "dfine_m":
        backbone = _hgnet("B2", [2, 3, 4])
        kwargs.update(encoder_in_channels=[384, 768, 1536], depth_mult=0.67, decoder_layers=4,
                      freeze_backbone_batch_norms=False)
    elif name == "dfine_l":
        backbone = _hgnet("B4", [2, 3, 4])
        kwargs.update(encoder_in_channels=[512, 1024, 2048])
    elif name == "dfine_x":
        backbone = _hgnet("B5", [2, 3, 4])
        kwargs.update(encoder_in_channels=[512, 1024, 2048], encoder_hidden_dim=384, encoder_ffn_dim=2048,
                      decoder_in_channels=[384] * 3, reg_scale=8.0)
    else:  # dfine_tiny, ours
        backbone = _hgnet("tiny", [2, 3, 4])
        kwargs.update(encoder_in_channels=[128, 256, 256], encoder_hidden_dim=64, d_model=64,
                      decoder_in_channels=[64] * 3, encoder_ffn_dim=128, decoder_ffn_dim=128,
                      encoder_attention_heads=4, decoder_attention_heads=4, decoder_layers=3, num_queries=50,
                      num_denoising=50, hidden_expansion=0.5, depth_mult=0.34, freeze_backbone_batch_norms=False)
    return DFineConfig(backbone_config=backbone, **kwargs, **_labels(num_classes))


def offline_config(name: str, num_classes: int):
    """The transformers config of variant `name` with random weights (no download)."""
    return (_rtdetr_v2 if BY_NAME[name].family == "rtdetr_v2" else _dfine)(name, num_classes)


def _option_title(v: Variant) -> str:
    if v.hub is None:
        return v.title
    epochs = f", {v.epochs} ep" if v.epochs else ""
    return f"{v.title}: {v.coco_ap} COCO AP{epochs}, {v.params_m:g}M params, {v.speed} T4"


def choices() -> list[tuple[str, str]]:
    """(title, variant) of every variant for a form: RT-DETRv2 then D-FINE by size, the tiny ones last."""
    order = [v for v in VARIANTS_TABLE if v.hub] + [v for v in VARIANTS_TABLE if not v.hub]
    return [(_option_title(v), v.name) for v in order]


RTDETR_HINT = ("RT-DETRv2 (S/M*/L/X) or D-FINE (N/S/M/L/X), fine-tuned from their COCO checkpoints. Start with "
               "RT-DETRv2-S; pick D-FINE-S/M for more accuracy at the same speed, L/X when GPU time allows. "
               "AP: COCO val2017; speed: T4, TensorRT fp16, batch 1 (RT-DETRv2 FPS, D-FINE latency), as "
               "published in the RT-DETR and D-FINE READMEs.")
