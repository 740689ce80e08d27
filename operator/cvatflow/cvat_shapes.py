"""Detections as CVAT shapes: rectangles, polygons traced from masks, and CVAT's mask encoding."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("rectangle", "polygon", "mask")
POLYGON_TOLERANCE = 1.0  # pixels a traced polygon may stray from the mask's outline (cv2.approxPolyDP epsilon)


@dataclass
class Shape:
    """One CVAT shape: `label` is a 0-based class index; `points` as CVAT's LabeledShapeRequest takes them for
    `type` (rectangle: [x1, y1, x2, y2]; polygon: [x, y, ...]; mask: CVAT run lengths + [x1, y1, x2, y2],
    inclusive), in image pixels; `score` in 0..1; `bitmap` the mask (bool [H, W]) a polygon or mask came from."""

    label: int
    type: str
    points: list[float]
    score: float
    bitmap: np.ndarray | None = field(default=None, repr=False)


@dataclass
class Counts:
    """What a conversion carried: detections in, shapes out, and detections dropped (empty masks)."""

    detections: int = 0
    shapes: int = 0
    dropped_empty: int = 0

    def add(self, other: Counts) -> None:
        self.detections += other.detections
        self.shapes += other.shapes
        self.dropped_empty += other.dropped_empty

    def __str__(self) -> str:
        text = f"{self.detections} detections -> {self.shapes} shapes"
        if self.dropped_empty:
            text += f" ({self.dropped_empty} dropped: empty mask at the mask threshold)"
        return text


def polygons(bitmap: np.ndarray) -> list[list[float]]:
    """The outer outlines of a bool mask [H, W] as flat [x, y, ...] polygons (pixel centres), each with at least
    three vertices, simplified within POLYGON_TOLERANCE pixels. A mask in several pieces gives several polygons."""
    import cv2

    contours, _ = cv2.findContours(bitmap.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for contour in contours:
        approx = cv2.approxPolyDP(contour, POLYGON_TOLERANCE, True)
        if len(approx) < 3:
            approx = contour  # tiny pieces: keep every vertex rather than lose the object
        if len(approx) >= 3:
            out.append([float(v) for v in approx.reshape(-1, 2).ravel()])
    return out


def encode_mask(bitmap: np.ndarray) -> list[float]:
    """CVAT's mask encoding of a non-empty bool mask [H, W]: run lengths (starting with a run of 0s) over the
    mask's tight box, row by row, then the box [x1, y1, x2, y2] with inclusive corners."""
    from cvat_sdk.masks import encode_mask as sdk_encode

    return [float(v) for v in sdk_encode(bitmap)]


def to_shapes(detections, kind: str) -> tuple[list[Shape], Counts]:
    """The shapes of one image's Detections (cvatflow.training.infer) as `kind` (one of KINDS). Masks are needed
    for polygon and mask; a detection whose mask is empty is dropped and counted."""
    if kind not in KINDS:
        raise ValueError(f"shape {kind!r}: choose one of {', '.join(KINDS)}")
    counts = Counts(detections=len(detections))
    shapes: list[Shape] = []
    for i in range(len(detections)):
        label, score = int(detections.labels[i]), float(detections.scores[i])
        if kind == "rectangle" or detections.masks is None:
            shapes.append(Shape(label, "rectangle", [float(v) for v in detections.boxes[i]], score))
            continue
        bitmap = detections.masks[i]
        if not bitmap.any():
            counts.dropped_empty += 1
            continue
        if kind == "mask":
            shapes.append(Shape(label, "mask", encode_mask(bitmap), score, bitmap))
        else:
            found = polygons(bitmap)
            if not found:
                counts.dropped_empty += 1
            shapes += [Shape(label, "polygon", points, score, bitmap) for points in found]
    counts.shapes = len(shapes)
    return shapes, counts
