"""Dataset statistics over a COCO dict: per-class counts per split, objects per image, objects too small to see."""
from __future__ import annotations

import math
from collections import Counter
from typing import Any

# Detection capacity (DETR queries, Mask R-CNN detections per image, COCO maxDets) is this much above the most
# objects on one image: DETR's COCO models use 100 queries for at most ~70 objects per image (research notes).
CAPACITY_MARGIN = 1.25
COCO_MAX_DETS = 100  # COCO's standard maxDets, kept beside ours so numbers compare with the literature


def _objects(coco: dict[str, Any]) -> list[dict[str, Any]]:
    """The annotations a model trains on and evaluation counts: not crowd regions."""
    return [a for a in coco.get("annotations", []) if not a.get("iscrowd")]


def class_counts(coco: dict[str, Any], groups: dict[str, list[Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Per class name, per group (e.g. {"train": ids, "val": ids}; default one group "all"):
    {"objects": non-crowd annotations, "images": images with at least one}. Every category appears."""
    groups = groups if groups is not None else {"all": [image["id"] for image in coco.get("images", [])]}
    group_of: dict[Any, list[str]] = {}
    for name, ids in groups.items():
        for image_id in ids:
            group_of.setdefault(image_id, []).append(name)
    objects: Counter = Counter()
    images: dict[tuple[Any, str], set[Any]] = {}
    for ann in _objects(coco):
        for group in group_of.get(ann.get("image_id"), []):
            objects[(ann.get("category_id"), group)] += 1
            images.setdefault((ann.get("category_id"), group), set()).add(ann["image_id"])
    return {str(cat.get("name", cat.get("id"))): {
        group: {"objects": objects[(cat.get("id"), group)], "images": len(images.get((cat.get("id"), group), ()))}
        for group in groups} for cat in coco.get("categories", [])}


def objects_per_image(coco: dict[str, Any]) -> dict[str, Any]:
    """{"images", "max", "p99", "mean"} of non-crowd objects per image (images without objects count as 0);
    p99 is numpy's default linear-interpolation percentile."""
    counts = Counter(a.get("image_id") for a in _objects(coco))
    values = sorted(counts.get(image["id"], 0) for image in coco.get("images", []))
    if not values:
        return {"images": 0, "max": 0, "p99": 0.0, "mean": 0.0}
    position = 0.99 * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    p99 = values[low] + (values[high] - values[low]) * (position - low)
    return {"images": len(values), "max": values[-1], "p99": round(p99, 2), "mean": round(sum(values) / len(values), 2)}


def capacity(max_objects: int, floor: int = 0) -> int:
    """Detections per image a model (or COCO maxDets) needs for `max_objects`: CAPACITY_MARGIN above it, never
    below `floor` (the model's own default)."""
    return max(int(floor), math.ceil(max_objects * CAPACITY_MARGIN))


def small_objects(coco: dict[str, Any], image_size: int, min_size: float) -> dict[str, Any]:
    """Objects whose size after the training resize is under `min_size` pixels.

    The resize is the training loader's: the longest image side becomes `image_size` (smaller images are
    enlarged). An object's size is sqrt(width * height) of its box in model-input pixels (COCO's small/medium/
    large use the same area measure). Images without width/height are skipped and counted in "unsized".
    Returns {"small", "objects", "min_size", "image_size", "per_class": {name: small count}, "unsized"}."""
    sizes = {image["id"]: (image.get("width"), image.get("height")) for image in coco.get("images", [])}
    names = {c.get("id"): str(c.get("name", c.get("id"))) for c in coco.get("categories", [])}
    small, total, unsized = 0, 0, 0
    per_class: Counter = Counter()
    for ann in _objects(coco):
        width, height = sizes.get(ann.get("image_id"), (None, None))
        if not width or not height:
            unsized += 1
            continue
        total += 1
        _, _, w, h = (float(v) for v in ann["bbox"])
        scale = image_size / max(float(width), float(height))
        if math.sqrt(max(w, 0.0) * max(h, 0.0)) * scale < min_size:
            small += 1
            per_class[names.get(ann.get("category_id"), str(ann.get("category_id")))] += 1
    return {"small": small, "objects": total, "min_size": min_size, "image_size": image_size,
            "per_class": dict(per_class), "unsized": unsized}


def small_objects_message(result: dict[str, Any], model: str) -> str | None:
    """A warning with the fixes when `small_objects(...)` found any, else None."""
    if not result["small"]:
        return None
    needed = result["image_size"] * 2
    return (f"{result['small']} of {result['objects']} objects are smaller than {result['min_size']:g} px after "
            f"resizing to image_size {result['image_size']}, below what {model} reliably detects; raise image_size "
            f"(e.g. to {needed}), or tile large images into crops before annotating/training")


def fit_summary(coco: dict[str, Any], split: dict[str, Any] | None = None,
                models: list[tuple[str, str, int]] | None = None) -> dict[str, Any]:
    """How the data fits the models: per-class counts (per split when `split` has train/val ids), objects per image,
    the detection capacity models get, classes without training instance, and small objects for `models`
    ((family, variant, image_size); default: each family's default and small variant at its default image_size)."""
    from cvatflow.models import ADAPTERS, get_adapter

    groups = {"train": split["train"], "val": split["val"]} if split and "train" in split else None
    density = objects_per_image(coco)
    summary: dict[str, Any] = {"classes": class_counts(coco, groups), "objects_per_image": density,
                               "capacity": capacity(density["max"], COCO_MAX_DETS), "small_objects": []}
    if groups:
        from cvatflow.datasets.stratify import untrained_classes

        summary["untrained_classes"] = untrained_classes(coco, groups["train"])
    if models is None:
        models = []
        for family in ADAPTERS:
            adapter = get_adapter(family)
            for variant in dict.fromkeys([adapter.default_variant, adapter.small_variant]):
                models.append((family, variant, int(adapter.default_hyperparameters(variant).get("image_size", 800))))
    for family, variant, image_size in models:
        min_size = get_adapter(family).min_object_size(variant)
        if min_size:
            result = small_objects(coco, image_size, min_size)
            summary["small_objects"].append({"model": variant, **result,
                                             "message": small_objects_message(result, variant)})
    return summary
