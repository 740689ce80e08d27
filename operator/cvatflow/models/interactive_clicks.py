"""Click simulation and the interactive-segmentation metrics (NoC@IoU, mIoU after k clicks), on numpy masks.

The protocol is the one of the click-based literature (Xu et al. 2016 "Deep Interactive Object Selection"; RITM,
Sofiiuk et al. 2022): each next click goes to the interior-most pixel of the largest error region, positive when
that region is missed object, negative when it is false background; NoC@t is the number of clicks until IoU >= t,
capped at `max_clicks` (20 in those papers) when it is never reached.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

Click = tuple[float, float, bool]  # (x, y, positive) in pixels; pixel centres at integer + 0.5


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two bool masks [H, W]; 1.0 when both are empty."""
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else 1.0


def next_click(pred: np.ndarray, gt: np.ndarray) -> Click | None:
    """The next click for prediction `pred` of object `gt` (bool [H, W]): the pixel farthest from the edge of the
    largest error region (connected, 4-neighbour), positive when it is missed object; None when there is no error."""
    from scipy import ndimage

    missed, extra = np.logical_and(gt, ~pred), np.logical_and(~gt, pred)
    best = None
    for positive, error in ((True, missed), (False, extra)):
        labels, n = ndimage.label(error)
        if not n:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        k = int(sizes.argmax()) + 1
        if best is None or sizes[k - 1] > best[0]:
            best = (int(sizes[k - 1]), positive, labels == k)
    if best is None:
        return None
    _, positive, region = best
    # distance to the region's edge, with the image border counting as edge (padding), so clicks stay inside
    inside = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(inside.argmax()), inside.shape)
    return float(x) + 0.5, float(y) + 0.5, positive


Predictor = Callable[[list[Click]], np.ndarray]


def click_ious(predict: Predictor, gt: np.ndarray, max_clicks: int = 20) -> list[float]:
    """IoU after each of `max_clicks` simulated clicks; `predict(clicks)` returns a bool mask [H, W]. After a
    perfect mask the IoU stays (no further click is needed)."""
    gt = gt.astype(bool)
    pred = np.zeros_like(gt)
    clicks: list[Click] = []
    ious = []
    for _ in range(max_clicks):
        click = next_click(pred, gt)
        if click is None:
            ious.append(ious[-1] if ious else iou(pred, gt))
            continue
        clicks.append(click)
        pred = predict(list(clicks)).astype(bool)
        ious.append(iou(pred, gt))
    return ious


def noc(ious: list[float], threshold: float, max_clicks: int | None = None) -> int:
    """Clicks until IoU >= `threshold` (1-based); `max_clicks` (default len(ious)) when never reached."""
    for k, value in enumerate(ious, 1):
        if value >= threshold:
            return k
    return max_clicks if max_clicks is not None else len(ious)


def summarize(curves: list[list[float]], max_clicks: int = 20) -> dict[str, float]:
    """NoC@85, NoC@90 (mean clicks), mIoU@1/3/5 (mean IoU after that many clicks) and how many objects never
    reached 90% (`NoF@90`), over the objects' IoU curves."""
    if not curves:
        return {"NoC@85": float(max_clicks), "NoC@90": float(max_clicks), "mIoU@1": 0.0, "mIoU@3": 0.0,
                "mIoU@5": 0.0, "NoF@90": 0, "objects": 0}
    out = {f"NoC@{round(t * 100)}": float(np.mean([noc(c, t, max_clicks) for c in curves])) for t in (0.85, 0.9)}
    for k in (1, 3, 5):
        out[f"mIoU@{k}"] = float(np.mean([c[min(k, len(c)) - 1] for c in curves]))
    out["NoF@90"] = int(sum(1 for c in curves if max(c) < 0.9))
    out["objects"] = len(curves)
    return out


def click_maps(clicks: list[Click], height: int, width: int, radius: float) -> np.ndarray:
    """Positive and negative disk maps, float32 [2, H, W]: 1 within `radius` pixels of a click, else 0."""
    maps = np.zeros((2, height, width), np.float32)
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    for x, y, positive in clicks:
        maps[0 if positive else 1][(xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2] = 1.0
    return maps


def grow_from_clicks(image: np.ndarray, clicks: list[Click], tolerance: float = 30.0) -> np.ndarray:
    """The untrained baseline: a mask grown from the positive clicks over pixels whose colour is within
    `tolerance` (0..255 units, Euclidean RGB) of the click's pixel, connected to it; pixels nearer in colour to a
    negative click's colour are cut. `image` uint8 [H, W, 3]; returns bool [H, W]."""
    from scipy import ndimage

    h, w = image.shape[:2]
    pixels = image.astype(np.float32)
    mask = np.zeros((h, w), bool)
    def at(x: float, y: float) -> np.ndarray:
        return pixels[min(int(y), h - 1), min(int(x), w - 1)]

    negatives = [at(x, y) for x, y, positive in clicks if not positive]
    for x, y, positive in clicks:
        if not positive:
            continue
        distance = np.linalg.norm(pixels - at(x, y), axis=2)
        near = distance <= tolerance
        for colour in negatives:
            near &= distance < np.linalg.norm(pixels - colour, axis=2)
        labels, _ = ndimage.label(near)
        label = labels[min(int(y), h - 1), min(int(x), w - 1)]
        if label:
            mask |= labels == label
    for x, y, positive in clicks:  # a negative click removes its own connected piece
        if not positive:
            labels, _ = ndimage.label(mask)
            label = labels[min(int(y), h - 1), min(int(x), w - 1)]
            if label:
                mask &= labels != label
    return mask
