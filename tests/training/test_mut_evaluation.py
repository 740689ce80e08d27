"""COCO evaluation where the broader tests do not look: undefined stats, classes without data, the PR curve, array
input, the returned settings, F1 at low precision and recall, classes without detections above the best threshold,
images without objects, AR_max over every area: kills cosmic-ray's mutants of training/evaluation.py (`make
mutation TARGETS=evaluation`). The figures come from pycocotools, computed here.

Equivalent mutants, left alive (no input can tell them apart; the reason in brackets). `make mutation` reads them
from EQUIVALENTS["evaluation"] in .ci/mutation.py (each named by its line and change) and counts them apart:
- `max_dets > COCO_MAX_DETS` (both places) as `!=` [max_dets was raised to at least 100 just above] and as `>=`
  [at exactly 100 both paths compute the same stats, to 1e-12 in test_data_fit.py].
- pycocotools' precision per class is -1 everywhere (no objects) or >= 0 everywhere (a recall level not reached is
  0), so inside a class that has values: `p > -1` as `!= -1`, `> ~1` (-2) in `if (p > -1).any()` and the per-class
  AP; every form of AP50's line (`p[0] > -1` as `!= -1`, `>= -1`, `> ~1`, `> -2`, `> -0`, the row `p[0]` read as
  `p[1]` or `p[-1]`, `else 0.0` as 1.0 or -1.0); the curve's `curve > -1` as `!= -1`, `>= -1`, `> ~1`, `> -0` and
  np.where's 0 as 1 or -1.
- `at(0.5)` as `at(-0.5)` [the nearest IoU threshold to -0.5 is 0.5, the first]; `ev.stats[:12]` as `[:13]`
  [zip with the 12 STAT_NAMES stops at 12]; in _stats' mean, `values > -1` as `!= -1` and `max(0.0, ...)` as
  `max(-1.0, ...)` [the values are -1 or >= 0, so a mean of the valid ones is >= 0]; per-class AP's `p > -1` as
  `>= -1` [no -1 in a class that has values].
- in _f1_optimal: `iou >= 0.5` as `>= -0.5` [the IoU-0.5 evaluation matches nothing below 0.5]; `key.split("_",
  1)` as `split("_", 2)` [keys are "<detection id>_<object id>": the first field is the same]; `n_gt > 0`,
  `count > 0`, `above > 0`, `(prec + rec) > 0` as `!= 0` [never negative]; `np.maximum(n_gt, 1)` as
  `np.maximum(n_gt, 0)` [the classes without objects it guards are dropped by `[:, valid]`]; every change to
  `best = (-1.0, 0.0, 0.0, 0.0)` [overwritten before it is read]; `np.maximum(count - 1, 0)` as `-1` and
  `else 0` as `else 1`/`-1` [masked by `count > 0`: a class without detections has count 0 everywhere].
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

from cvatflow.training.evaluation import STAT_NAMES, coco_gt, evaluate
from test_evaluation_independent import detections, ground_truth, pycocotools_eval


def large_only() -> tuple[dict, list[dict]]:
    """Objects of 120-200 px only: pycocotools writes -1 for the small and medium stats."""
    gt = ground_truth(images=8, seed=7)
    for ann in gt["annotations"]:
        ann["bbox"][2:] = [150.0, 130.0]
        ann["bbox"][:2] = [min(ann["bbox"][0], 480.0), min(ann["bbox"][1], 340.0)]
        ann["area"] = 150.0 * 130.0
    return gt, detections(gt, seed=8)


@pytest.mark.parametrize("max_dets", [100, 300])
def test_undefined_stats_are_reported_as_zero(max_dets):
    gt, dts = large_only()
    gt["categories"].append({"id": 8, "name": "absent"})  # no objects: its -1 entries must not enter a mean
    reference = pycocotools_eval(gt, dts)
    undefined = [name for name, value in zip(STAT_NAMES, reference.stats) if value == -1]
    assert {"AP_small", "AP_medium", "AR_small", "AR_medium"} <= set(undefined)
    ours = evaluate(copy.deepcopy(gt), copy.deepcopy(dts), max_dets=max_dets)
    assert all(ours[name] == 0.0 for name in undefined)
    assert ours["AP_large"] == pytest.approx(reference.stats[5], abs=1e-12) and ours["AP_large"] > 0.2
    expected = {n: max(0.0, v) for n, v in zip(STAT_NAMES, reference.stats)}
    assert ours["coco100"] == pytest.approx(expected, abs=1e-12)
    assert {n: ours[n] for n in STAT_NAMES} == pytest.approx(expected, abs=1e-12)  # < 100 detections an image


def test_a_class_with_objects_but_no_detections_has_ap_zero_and_one_with_neither_is_left_out():
    gt = ground_truth(images=6, seed=2)
    gt["categories"] += [{"id": 7, "name": "missed"}, {"id": 8, "name": "absent"}]
    gt["annotations"].append({"id": 999, "image_id": 1, "category_id": 7, "bbox": [10, 10, 50, 50], "area": 2500,
                              "iscrowd": 0})
    dts = detections(gt, seed=3)
    dts = [d for d in dts if d["category_id"] != 7]
    ours = evaluate(copy.deepcopy(gt), copy.deepcopy(dts))
    assert ours["per_class"]["missed"] == {"AP": 0.0, "AP50": 0.0}
    assert "absent" not in ours["per_class"]
    assert set(ours["per_class"]) == {"c1", "c2", "c5", "missed"}


def expected_curve(reference) -> list[float]:
    """pycocotools' precision at IoU 0.5, all areas, 100 detections, averaged over the classes that have values
    (a recall level a class never reaches counts 0)."""
    curve = reference.eval["precision"][0, :, :, 0, -1]
    valid = (curve > -1).any(axis=0)
    return list(np.where(curve[:, valid] > -1, curve[:, valid], 0).mean(axis=1))


def test_the_pr_curve_is_pycocotools_precision_at_iou_half():
    gt = ground_truth(images=12, seed=5)
    gt["categories"] += [{"id": 8, "name": "absent"}, {"id": 7, "name": "missed"}]  # absent: no values, left out
    gt["annotations"].append({"id": 999, "image_id": 1, "category_id": 7, "bbox": [10, 10, 50, 50], "area": 2500,
                              "iscrowd": 0})  # missed: precision 0 everywhere, averaged in
    dts = [d for d in detections(gt, seed=6) if d["category_id"] != 7]
    ours = evaluate(copy.deepcopy(gt), copy.deepcopy(dts))
    reference = pycocotools_eval(gt, dts)
    assert ours["pr_curve"]["recall"] == pytest.approx(list(reference.params.recThrs), abs=1e-12)
    assert ours["pr_curve"]["precision"] == pytest.approx(expected_curve(reference), abs=1e-12)
    assert ours["pr_curve"]["precision"][0] > ours["pr_curve"]["precision"][-1]


def test_an_array_of_detections_evaluates_like_the_list():
    gt = ground_truth(images=6, seed=9)
    dts = detections(gt, seed=10)
    array = np.array([[d["image_id"], *d["bbox"], d["score"], d["category_id"]] for d in dts], dtype=np.float64)
    as_list, as_array = evaluate(copy.deepcopy(gt), copy.deepcopy(dts)), evaluate(copy.deepcopy(gt), array)
    for key in (*STAT_NAMES, "f1", "precision", "recall", "f1_conf"):
        assert as_array[key] == pytest.approx(as_list[key], abs=1e-9), key
    for name, values in as_list["per_class"].items():
        assert as_array["per_class"][name] == pytest.approx(values, abs=1e-9), name
    assert as_array["pr_curve"]["precision"] == pytest.approx(as_list["pr_curve"]["precision"], abs=1e-9)
    assert as_list["mAP"] > 0.2


def test_a_prebuilt_index_evaluates_like_the_document():
    gt = ground_truth(images=6, seed=11)
    dts = detections(gt, seed=12)
    index = coco_gt(copy.deepcopy(gt))
    first, again = evaluate(index, copy.deepcopy(dts)), evaluate(index, copy.deepcopy(dts))
    assert first == again == evaluate(copy.deepcopy(gt), copy.deepcopy(dts))


@pytest.mark.parametrize("asked, used", [(50, 100), (100, 100), ("150", 150), (300.0, 300)])
def test_max_dets_is_at_least_coco_s_100(asked, used):
    gt = ground_truth(images=3, seed=1)
    result = evaluate(copy.deepcopy(gt), [], "segm", max_dets=asked)
    assert (result["max_dets"], result["iou_type"]) == (used, "segm")
    dts = detections(gt, seed=2)
    assert evaluate(copy.deepcopy(gt), copy.deepcopy(dts), max_dets=asked)["max_dets"] == used


def test_no_detections_give_zeros_and_no_curve():
    gt = ground_truth(images=3, seed=1)
    for empty in ([], np.zeros((0, 7))):
        result = evaluate(copy.deepcopy(gt), empty)
        assert all(result[name] == 0.0 for name in STAT_NAMES) and result["coco100"] == dict.fromkeys(STAT_NAMES, 0.0)
        assert result["AR_max"] == 0.0
        assert (result["f1"], result["precision"], result["recall"], result["f1_conf"]) == (0.0, 0.0, 0.0, 0.0)
        assert (result["per_class"], result["pr_curve"]) == ({}, {"recall": [], "precision": []})


def test_detections_only_of_classes_without_objects_score_zero():
    gt = ground_truth(images=3, seed=1)
    gt["categories"].append({"id": 8, "name": "absent"})
    dts = [{"image_id": 1, "category_id": 8, "bbox": [5, 5, 40, 40], "score": 0.9}]
    result = evaluate(copy.deepcopy(gt), dts)
    assert (result["f1"], result["precision"], result["recall"], result["f1_conf"]) == (0.0, 0.0, 0.0, 0.9)
    assert result["mAP"] == 0.0


def test_dense_stats_are_pycocotools_at_the_larger_max_dets():
    """Above 100 detections an image, AP and the area stats are at `max_dets`: pycocotools with maxDets
    [1, 10, 100, 300] and the same means over its arrays."""
    from test_data_fit import _dense_gt

    gt = _dense_gt(150)
    rng = np.random.default_rng(4)
    dts = [{"image_id": 1, "category_id": 1, "score": float(rng.random()),
            "bbox": [a["bbox"][0] + float(rng.normal(0, 2)), a["bbox"][1] + float(rng.normal(0, 2)), 16.0, 16.0]}
           for a in gt["annotations"] for _ in range(2)]
    ours = evaluate(copy.deepcopy(gt), copy.deepcopy(dts), max_dets=300)
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dts)), "bbox")
        ev.params.maxDets = [1, 10, 100, 300]
        ev.evaluate()
        ev.accumulate()
    precision, recall = ev.eval["precision"], ev.eval["recall"]

    def mean(values):
        valid = values[values > -1]
        return max(0.0, float(valid.mean())) if valid.size else 0.0

    assert ours["mAP"] == pytest.approx(mean(precision[:, :, :, 0, 3]), abs=1e-12)
    assert ours["AP50"] == pytest.approx(mean(precision[0, :, :, 0, 3]), abs=1e-12)
    assert ours["AP75"] == pytest.approx(mean(precision[5, :, :, 0, 3]), abs=1e-12)
    assert ours["AP_small"] == pytest.approx(mean(precision[:, :, :, 1, 3]), abs=1e-12)
    assert ours["AR100"] == pytest.approx(mean(recall[:, :, 0, 2]), abs=1e-12)
    assert ours["AR_max"] == pytest.approx(mean(recall[:, :, 0, 3]), abs=1e-12)
    assert ours["AR_max"] > ours["AR100"] > 0
    assert ours["per_class"]["cell"]["AP"] == pytest.approx(mean(precision[:, :, 0, 0, 3]), abs=1e-12)
    assert ours["pr_curve"]["precision"] == pytest.approx(list(precision[0, :, 0, 0, 3]), abs=1e-12)


def test_a_class_of_one_object_and_objects_without_iscrowd_count_fully():
    """COCO exports may leave out `iscrowd` (not a crowd); a class of a single object found has recall 1."""
    gt = {"images": [{"id": 1, "width": 100, "height": 100}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900}]}
    dts = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "score": 0.8}]
    ours = evaluate(copy.deepcopy(gt), dts)
    assert (ours["f1"], ours["precision"], ours["recall"], ours["f1_conf"]) == pytest.approx((1.0, 1.0, 1.0, 0.8))


def test_a_detection_at_iou_exactly_one_half_is_a_true_positive():
    """COCO matches at IoU >= 0.5: a box covering exactly half the union counts (as pycocotools counts it)."""
    gt = {"images": [{"id": 1, "width": 100, "height": 100}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 40], "area": 1600,
                           "iscrowd": 0}]}
    dts = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 20], "score": 0.9}]  # IoU 800 / 1600
    ours = evaluate(copy.deepcopy(gt), copy.deepcopy(dts))
    assert (ours["f1"], ours["precision"], ours["recall"]) == pytest.approx((1.0, 1.0, 1.0))
    assert ours["AP50"] == pytest.approx(pycocotools_eval(gt, dts).stats[1]) and ours["AP50"] > 0.9


def _image_of(objects: list[tuple[int, list[float]]], detections: list[tuple[int, list[float], float]]):
    """One 400x400 image with `objects` (category, box) and `detections` (category, box, score)."""
    gt = {"images": [{"id": 1, "width": 400, "height": 400}],
          "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
          "annotations": [{"id": i + 1, "image_id": 1, "category_id": c, "bbox": box, "area": box[2] * box[3],
                           "iscrowd": 0} for i, (c, box) in enumerate(objects)]}
    return gt, [{"image_id": 1, "category_id": c, "bbox": box, "score": s} for c, box, s in detections]


def test_f1_is_the_harmonic_mean_even_when_precision_and_recall_are_low():
    """Two objects, a false positive ranked above a true one: at the best threshold P = R = 0.5, so F1 = 0.5."""
    gt, dts = _image_of([(1, [10, 10, 40, 40]), (1, [200, 200, 40, 40])],
                        [(1, [100, 100, 40, 40], 0.9), (1, [10, 10, 40, 40], 0.8)])
    ours = evaluate(gt, dts)
    assert (ours["f1"], ours["precision"], ours["recall"], ours["f1_conf"]) == pytest.approx((0.5, 0.5, 0.5, 0.8))


def test_a_class_with_no_detection_above_the_best_threshold_has_recall_zero_there():
    """Class a: one object, found at 0.9, and eight false positives at 0.3; class b: five objects, one found at 0.3.
    Macro F1 is best at 0.9 (a: 1, b: 0), where b has no detection at all: its recall is 0, not its top hit's."""
    objects = [(1, [10, 10, 40, 40])] + [(2, [60 * i + 10, 300, 40, 40]) for i in range(5)]
    dts = [(1, [10, 10, 40, 40], 0.9)] + [(1, [45 * i + 10, 150, 40, 40], 0.3) for i in range(8)]
    dts.append((2, [10, 300, 40, 40], 0.3))
    gt, dts = _image_of(objects, dts)
    ours = evaluate(gt, dts)
    assert (ours["f1"], ours["precision"], ours["recall"], ours["f1_conf"]) == pytest.approx((0.5, 0.5, 0.5, 0.9))


def test_detections_on_images_without_objects_score_zero_not_nan():
    gt, dts = _image_of([], [(1, [10, 10, 40, 40], 0.9), (2, [100, 100, 40, 40], 0.5)])
    ours = evaluate(gt, dts)
    assert (ours["f1"], ours["precision"], ours["recall"], ours["f1_conf"]) == (0.0, 0.0, 0.0, 0.0)


def test_dense_ar_max_counts_objects_of_every_size():
    """150 medium objects (40x40) on one image, max_dets 300: AR_max is recall over all areas (the small range has
    no objects, so reading it would give 0)."""
    gt = {"images": [{"id": 1, "width": 700, "height": 700}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": [(i % 13) * 50 + 5, (i // 13) * 50 + 5,
                                                                                 40, 40], "area": 1600, "iscrowd": 0}
                          for i in range(150)]}
    dts = [{"image_id": 1, "category_id": 1, "bbox": a["bbox"], "score": 0.5 + i / 1000}
           for i, a in enumerate(gt["annotations"])]
    ours = evaluate(copy.deepcopy(gt), dts, max_dets=300)
    assert ours["AR_max"] == pytest.approx(1.0) and ours["AR100"] == pytest.approx(100 / 150)
