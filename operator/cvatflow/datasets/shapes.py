"""COCO annotations as training targets: each CVAT shape kind's fate (crowd masks, rotated boxes, ignore regions)."""
from __future__ import annotations

import math
from typing import Any

from cvatflow.datasets.report import CONVERTED, DROPPED, IGNORED, KEPT, DatasetReport

CROWD_MODES = ("object", "ignore")
# Internal keys carried on an annotation between the steps of ingest; removed before anything is written.
FATE = "_fate"
# Written on each ignore region (`iscrowd` 1) of a dataset cvatflow wrote, so that reading it again keeps it one.
IGNORE = "ignore_reason"


def kind_of(ann: dict[str, Any]) -> str:
    """The CVAT shape kind an annotation stands for: set by a reader (`_kind`), else read from its fields."""
    if ann.get("_kind"):
        return ann["_kind"]
    seg = ann.get("segmentation")
    if ann.get("keypoints"):
        return "skeleton"
    if isinstance(seg, dict):
        return "mask"
    if isinstance(seg, list) and seg:
        return "polygon"
    return "rotated rectangle" if _rotation(ann) else "rectangle"


def _rotation(ann: dict[str, Any]) -> float:
    attributes = ann.get("attributes") if isinstance(ann.get("attributes"), dict) else {}
    try:
        angle = float(attributes.get("rotation", 0) or 0)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isclose(angle % 360, 0, abs_tol=1e-9) else angle


def rotated_box(x: float, y: float, w: float, h: float, degrees: float) -> list[float]:
    """Corners of a CVAT rectangle turned `degrees` clockwise (as CVAT draws it, y down) about its centre:
    a flat polygon [x1, y1, ..., x4, y4] in pixels."""
    cx, cy = x + w / 2, y + h / 2
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return [v for dx, dy in corners for v in (cx + dx * cos - dy * sin, cy + dx * sin + dy * cos)]


def ellipse_polygon(cx: float, cy: float, rx: float, ry: float, degrees: float = 0.0,
                    steps: int = 64) -> list[float]:
    """An ellipse (CVAT's cx, cy, rx, ry, rotation in degrees clockwise) as a flat polygon of `steps` points."""
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    points = []
    for i in range(steps):
        t = 2 * math.pi * i / steps
        dx, dy = rx * math.cos(t), ry * math.sin(t)
        points += [cx + dx * cos - dy * sin, cy + dx * sin + dy * cos]
    return points


def polygon_box(flat: list[float]) -> list[float]:
    """[x, y, w, h] enclosing a flat polygon."""
    xs, ys = flat[0::2], flat[1::2]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _mask_box(seg: dict[str, Any]) -> tuple[list[float], float] | None:
    """The box [x, y, w, h] and pixel area of an RLE mask, or None when it cannot be decoded."""
    from pycocotools import mask as mask_utils

    try:
        height, width = (int(v) for v in seg["size"])
        rle = mask_utils.frPyObjects(seg, height, width) if isinstance(seg.get("counts"), list) else seg
        if isinstance(rle.get("counts"), str):
            rle = {**rle, "counts": rle["counts"].encode("ascii")}
        return [float(v) for v in mask_utils.toBbox(rle)], float(mask_utils.area(rle))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _ignore_reason(ann: dict[str, Any], fmt: str) -> str | None:
    """VOC `difficult` everywhere; MOT `ignored` and zero visibility in MOT exports."""
    attributes = ann.get("attributes") if isinstance(ann.get("attributes"), dict) else {}
    if str(attributes.get("difficult", "")).lower() in ("true", "1"):
        return "VOC difficult"
    if fmt == "MOT 1.1":
        if str(attributes.get("ignored", "")).lower() in ("true", "1"):
            return "MOT ignored"
        try:
            if float(attributes.get("visibility", 1)) <= 0:
                return "MOT not visible"
        except (TypeError, ValueError):
            pass
    return None


def normalise(data: dict[str, Any], report: DatasetReport, crowd: str = "object", fmt: str = "COCO 1.0") -> None:
    """Decide the fate of every annotation of a merged COCO document, in place.

    - `iscrowd: 1` is CVAT's way of writing a mask (brush) shape: with `crowd="object"` (default) it becomes an
      object (`iscrowd` 0); with `crowd="ignore"` it stays a COCO crowd region: kept out of the positives in
      training and ignored by evaluation (COCO's convention).
    - An RLE mask gets the box of its pixels; an empty mask is dropped.
    - A rectangle with a `rotation` attribute becomes the rotated polygon (its mask) and the box enclosing it.
    - A COCO Keypoints object keeps its box; the key points themselves are not a detection target.
    - VOC `difficult`, MOT `ignored` / visibility 0 become ignore regions (`iscrowd` 1).
    Survivors carry `_fate` = (kind, outcome, reason) until `tally` counts them; drops are counted here.
    """
    if crowd not in CROWD_MODES:
        from cvatflow.errors import DatasetError

        raise DatasetError(f"crowd {crowd!r}: use one of {', '.join(CROWD_MODES)}")
    kept = []
    for ann in data.get("annotations") or []:
        kind = kind_of(ann)
        ann.pop("_kind", None)
        example = f"annotation {ann.get('id')}"
        outcome, reason = KEPT, ""
        seg = ann.get("segmentation")
        if kind == "skeleton":
            outcome, reason = CONVERTED, "box of a COCO Keypoints object (key points not trained)"
            ann.pop("keypoints", None)
            ann.pop("num_keypoints", None)
        if kind == "rotated rectangle" and not seg and isinstance(ann.get("bbox"), list) and len(ann["bbox"]) == 4:
            polygon = rotated_box(*(float(v) for v in ann["bbox"]), _rotation(ann))
            ann["segmentation"], ann["bbox"] = [polygon], polygon_box(polygon)
            outcome, reason = CONVERTED, "rotated rectangle to rotated polygon mask + enclosing box"
        if isinstance(seg, dict):
            found = _mask_box(seg)
            if found is None:
                pass  # validation names the broken record
            elif found[1] <= 0:
                report.obj(kind, DROPPED, "empty mask", example)
                continue
            else:
                ann["bbox"], ann["area"] = found
        if ann.get("_converted"):
            outcome, reason = CONVERTED, ann.pop("_converted")
        if ann.get("iscrowd") and ann.get(IGNORE):  # a dataset cvatflow wrote: its ignore regions stay so
            ann[FATE] = (kind, IGNORED, str(ann[IGNORE]))
            kept.append(ann)
            continue
        if ann.get("iscrowd"):
            if crowd == "object":
                ann["iscrowd"] = 0
                if outcome == KEPT:
                    outcome, reason = CONVERTED, "iscrowd 1 read as an object (CVAT writes masks that way)"
            else:
                outcome, reason = IGNORED, "crowd region (--crowd ignore)"
        ignore = _ignore_reason(ann, fmt)
        if ignore:
            ann["iscrowd"] = 1
            outcome, reason = IGNORED, ignore
        ann[FATE] = (kind, outcome, reason)
        kept.append(ann)
    data["annotations"] = kept


def drop(ann: dict[str, Any], report: DatasetReport, reason: str) -> None:
    """Count an annotation that a later check drops, under the kind `normalise` gave it."""
    kind = ann.get(FATE, (kind_of(ann),))[0]
    report.obj(kind, DROPPED, reason, f"annotation {ann.get('id')}")


def tally(data: dict[str, Any], report: DatasetReport) -> None:
    """Count the surviving annotations by their fate and remove the internal keys (before writing)."""
    names = {c.get("id"): c.get("name") for c in data.get("categories") or []}
    for name in names.values():
        report.per_category[str(name)] += 0  # a class without usable objects is listed (and warned about)
    for ann in data.get("annotations") or []:
        kind, outcome, reason = ann.pop(FATE, (kind_of(ann), KEPT, ""))
        ann.pop("_kind", None)
        ann.pop("_clipped", None)
        if outcome == IGNORED:
            ann[IGNORE] = reason
        report.obj(kind, outcome, reason)
        if outcome in (KEPT, CONVERTED):
            report.per_category[str(names.get(ann.get("category_id")))] += 1
