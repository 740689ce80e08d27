"""COCO evaluation (faster-coco-eval, numbers equal to pycocotools): mAP, AP50, AP75, per-class AP, P/R/F1."""
from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import numpy as np

from cvatflow.datasets.stats import COCO_MAX_DETS

STAT_NAMES = ("mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


def _quiet():
    """faster-coco-eval prints through logging and stdout; keep event lines on stdout clean."""
    logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)
    return contextlib.redirect_stdout(io.StringIO())


def coco_gt(gt: dict[str, Any]):
    """A faster-coco-eval COCO index of a ground-truth document (dict), reusable across evaluations."""
    from faster_coco_eval import COCO

    with _quiet():
        return COCO(gt)


def evaluate(gt: dict[str, Any] | Any, detections: list[dict[str, Any]] | np.ndarray,
             iou_type: str = "bbox", max_dets: int = COCO_MAX_DETS) -> dict[str, Any]:
    """COCOeval of `detections` (COCO results: a list of dicts, or an [N, 7] array of image_id, x, y, w, h,
    score, category_id) against `gt` (a COCO dict or `coco_gt(...)`). Returns the 12 COCO stats by name, per-class
    AP and AP50, precision/recall/F1 at the F1-optimal confidence (IoU 0.5) and the PR curve at IoU 0.5.

    `max_dets` is the most detections per image (and class) counted; above COCO's 100 (dense data: cells,
    crowds), the stats, per-class AP and F1 are at `max_dets`, "AR100" stays at 100, "AR_max" is at `max_dets`,
    and "coco100" holds the 12 stats at COCO's standard 100 so numbers compare with the literature."""
    from faster_coco_eval import COCOeval_faster

    gt_index = coco_gt(gt) if isinstance(gt, dict) else gt
    empty = len(detections) == 0
    max_dets = max(int(max_dets), COCO_MAX_DETS)
    result: dict[str, Any] = {name: 0.0 for name in STAT_NAMES}
    result.update(per_class={}, precision=0.0, recall=0.0, f1=0.0, f1_conf=0.0,
                  pr_curve={"recall": [], "precision": []}, iou_type=iou_type, max_dets=max_dets,
                  AR_max=0.0, coco100={name: 0.0 for name in STAT_NAMES})
    if empty:
        return result
    with _quiet():
        dt_index = gt_index.loadRes(detections if isinstance(detections, np.ndarray) else list(detections))
        # eval["matched"] (detection-ground truth pairs, used for F1) comes without extra_calc, which only
        # annotates every detection dict in Python
        ev = COCOeval_faster(gt_index, dt_index, iou_type, print_function=lambda *a, **k: None)
        if max_dets > COCO_MAX_DETS:
            # one more maxDets level: matching keeps the top max_dets, and the 100 level is sliced from it
            # exactly as a standard run computes it
            ev.params.maxDets = [1, 10, COCO_MAX_DETS, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        # F1 needs the matches at IoU 0.5 alone: `matched` of the 10-threshold run merges every threshold's
        # matches, so an object taken at 0.5 by one detection and at 0.75 by another counted twice.
        ev50 = COCOeval_faster(gt_index, dt_index, iou_type, print_function=lambda *a, **k: None)
        ev50.params.iouThrs = np.array([0.5])
        ev50.params.maxDets = list(ev.params.maxDets)  # dense data: F1 counts the same detections as the stats
        ev50.evaluate()
    # pycocotools writes -1 where a value is undefined (e.g. no small objects); report those as 0
    if max_dets > COCO_MAX_DETS:
        result.update(_stats(ev, max_dets))
        result["AR_max"] = result.pop("AR_at_max")
        result["coco100"] = {k: v for k, v in _stats(ev, COCO_MAX_DETS).items() if k != "AR_at_max"}
    else:
        stats = [max(0.0, float(v)) for v in ev.stats[:12]]
        result.update(dict(zip(STAT_NAMES, stats)))
        result["AR_max"] = result["AR100"]
        result["coco100"] = {name: result[name] for name in STAT_NAMES}
    precision = ev.eval["precision"]  # [iou, recall, class, area, max dets]
    names = {c["id"]: c["name"] for c in gt_index.loadCats(ev.params.catIds)}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        if (p > -1).any():
            result["per_class"][names[cat_id]] = {"AP": float(p[p > -1].mean()),
                                                  "AP50": float(p[0][p[0] > -1].mean()) if (p[0] > -1).any() else 0.0}
    curve = precision[0, :, :, 0, -1]
    valid = (curve > -1).any(axis=0)
    if valid.any():
        result["pr_curve"] = {"recall": [float(r) for r in ev.params.recThrs],
                              "precision": [float(v) for v in np.where(curve[:, valid] > -1, curve[:, valid], 0)
                                            .mean(axis=1)]}
    result.update(_f1_optimal(ev50))
    return result


def _stats(ev, max_dets: int) -> dict[str, float]:
    """The 12 COCO stats with AP and area-range AR at `max_dets` (AR1/AR10/AR100 at theirs), plus "AR_at_max"."""
    p = ev.params
    precision, recall = ev.eval["precision"], ev.eval["recall"]  # [T, R, K, A, M], [T, K, A, M]
    m = list(p.maxDets).index(max_dets)

    def mean(values) -> float:
        valid = values[values > -1]
        return max(0.0, float(valid.mean())) if valid.size else 0.0

    def at(iou: float) -> int:
        return int(np.argmin(np.abs(np.asarray(p.iouThrs) - iou)))

    area = {label: i for i, label in enumerate(p.areaRngLbl)}
    stats = {"mAP": mean(precision[:, :, :, 0, m]), "AP50": mean(precision[at(0.5), :, :, 0, m]),
             "AP75": mean(precision[at(0.75), :, :, 0, m])}
    for label in ("small", "medium", "large"):
        stats[f"AP_{label}"] = mean(precision[:, :, :, area[label], m])
    for k in (1, 10, COCO_MAX_DETS):
        stats[f"AR{k}"] = mean(recall[:, :, 0, list(p.maxDets).index(k)])
    for label in ("small", "medium", "large"):
        stats[f"AR_{label}"] = mean(recall[:, :, area[label], m])
    stats["AR_at_max"] = mean(recall[:, :, 0, m])
    return stats


def _f1_optimal(ev) -> dict[str, float]:
    """Macro precision/recall/F1 over classes at the confidence threshold that maximises macro F1, from an
    evaluation `ev` run at the single IoU threshold 0.5 (each object matched by one detection at most)."""
    matched = ev.eval.get("matched") or {}
    tp_ids = {int(key.split("_", 1)[0]) for key, iou in matched.items() if iou >= 0.5}
    cat_ids = list(ev.params.catIds)
    n_gt = np.zeros(len(cat_ids))
    position = {c: i for i, c in enumerate(cat_ids)}
    for ann in ev.cocoGt.anns.values():
        if not ann.get("iscrowd", 0) and ann["category_id"] in position:
            n_gt[position[ann["category_id"]]] += 1
    dts = [a for a in ev.cocoDt.anns.values() if a["category_id"] in position]
    if not dts or not n_gt.any():
        return {}
    scores = np.array([a["score"] for a in dts], dtype=np.float64)
    cats = np.array([position[a["category_id"]] for a in dts])
    tps = np.array([a["id"] in tp_ids for a in dts], dtype=np.float64)
    thresholds = np.unique(scores)  # ascending: ties keep the most inclusive threshold
    valid = n_gt > 0
    best = (-1.0, 0.0, 0.0, 0.0)
    # per class: detections above each threshold and true positives among them, vectorised over thresholds
    above = np.zeros((len(thresholds), len(cat_ids)))
    hits = np.zeros_like(above)
    for k in range(len(cat_ids)):
        mine = cats == k
        order = np.argsort(-scores[mine], kind="stable")
        s, cum = scores[mine][order], np.cumsum(tps[mine][order])
        count = np.searchsorted(-s, -thresholds, side="right")
        above[:, k] = count
        hits[:, k] = np.where(count > 0, cum[np.maximum(count - 1, 0)] if len(cum) else 0, 0)
    prec = np.divide(hits, above, out=np.zeros_like(hits), where=above > 0)[:, valid]
    rec = (hits / np.maximum(n_gt, 1))[:, valid]
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(prec), where=(prec + rec) > 0)
    macro = f1.mean(axis=1)
    i = int(np.argmax(macro))
    best = (float(macro[i]), float(prec[i].mean()), float(rec[i].mean()), float(thresholds[i]))
    return {"f1": best[0], "precision": best[1], "recall": best[2], "f1_conf": best[3]}


def to_results(image_id: int, prediction: dict[str, Any], scale: tuple[float, float], orig_size: tuple[int, int],
               category_ids: list[int], masks: bool) -> list[dict[str, Any]]:
    """COCO results of one image's prediction, mapped back from model-input to original pixels."""
    sy, sx = scale
    boxes = prediction["boxes"].detach().float().cpu().numpy()
    scores = prediction["scores"].detach().float().cpu().numpy()
    labels = prediction["labels"].detach().cpu().numpy()
    results = []
    rles = _encode_masks(prediction["masks"], orig_size) if masks and "masks" in prediction else None
    for i in range(len(scores)):
        x0, y0, x1, y1 = boxes[i] / np.array([sx, sy, sx, sy])
        entry = {"image_id": int(image_id), "category_id": int(category_ids[int(labels[i])]),
                 "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "score": float(scores[i])}
        if rles is not None:
            entry["segmentation"] = rles[i]
        results.append(entry)
    return results


def _encode_masks(masks, orig_size: tuple[int, int]) -> list[dict[str, Any]]:
    """Instance masks resized to the original image and RLE-encoded (compressed counts as text)."""
    import torch
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    resized = torch.nn.functional.interpolate(masks[:, None].float(), size=tuple(orig_size), mode="nearest")
    array = np.asfortranarray(resized[:, 0].to(torch.uint8).cpu().numpy().transpose(1, 2, 0))
    rles = mask_utils.encode(array)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles
