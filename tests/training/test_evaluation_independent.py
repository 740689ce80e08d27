"""Our evaluation against figures computed here from pycocotools' own matches: all 12 COCO stats on a fixture
with small, medium and large objects, per-class AP and AP50, and precision/recall/F1 at the F1-optimal confidence."""
from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest

from cvatflow.training.evaluation import STAT_NAMES, evaluate

WIDTH, HEIGHT = 640, 480
CATEGORIES = (1, 2, 5)


def ground_truth(images: int = 24, seed: int = 0) -> dict:
    """Boxes of every COCO size range: small (< 32²), medium and large (> 96² pixels), no crowd regions."""
    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": [{"id": i, "name": f"c{i}"} for i in CATEGORIES]}
    for image_id in range(1, images + 1):
        gt["images"].append({"id": image_id, "width": WIDTH, "height": HEIGHT, "file_name": f"{image_id}.jpg"})
        for _ in range(rng.integers(1, 7)):
            side = rng.choice([rng.uniform(8, 28), rng.uniform(40, 90), rng.uniform(110, 300)])
            w, h = side * rng.uniform(0.7, 1.3), side * rng.uniform(0.7, 1.3)
            x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id,
                                      "category_id": int(rng.choice(CATEGORIES)), "bbox": [x, y, w, h],
                                      "area": w * h, "iscrowd": 0})
    return gt


def detections(gt: dict, seed: int = 1) -> list[dict]:
    """Jittered copies (some misclassified, some duplicated) of most objects, plus false positives."""
    rng = np.random.default_rng(seed)
    out = []
    for ann in gt["annotations"]:
        if rng.random() < 0.15:
            continue
        copies = 2 if rng.random() < 0.15 else 1  # a duplicate: one of the two is a false positive
        for _ in range(copies):
            x, y, w, h = ann["bbox"]
            jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
            cat = ann["category_id"] if rng.random() > 0.1 else int(rng.choice(CATEGORIES))
            out.append({"image_id": ann["image_id"], "category_id": cat,
                        "bbox": [x + jitter[0], y + jitter[1], max(w + jitter[2], 2), max(h + jitter[3], 2)],
                        "score": round(float(rng.uniform(0.2, 1.0)), 3)})  # rounded: ties happen
    for image in gt["images"]:
        for _ in range(rng.integers(0, 4)):
            w, h = rng.uniform(10, 200, 2)
            out.append({"image_id": image["id"], "category_id": int(rng.choice(CATEGORIES)),
                        "bbox": [rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h), w, h],
                        "score": round(float(rng.uniform(0.0, 0.7)), 3)})
    return out


def pycocotools_eval(gt: dict, dts: list[dict]):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dts)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def f1_optimal_from_matches(ev) -> dict[str, float]:
    """Macro precision/recall/F1 over the classes with ground truth, at the score threshold (a detection's
    score, keeping detections >= it) that maximises macro F1; the lowest such threshold wins a tie. A detection
    is a true positive when pycocotools matched it at IoU 0.5 over all areas."""
    all_areas = ev.params.areaRng[ev.params.areaRngLbl.index("all")]
    true_positive: dict[int, bool] = {}
    for record in ev.evalImgs:
        if record is None or list(record["aRng"]) != list(all_areas):
            continue
        for dt_id, gt_id in zip(record["dtIds"], record["dtMatches"][0]):  # [0]: IoU threshold 0.5
            true_positive[dt_id] = gt_id > 0
    detections = list(ev.cocoDt.anns.values())
    classes = [c for c in ev.params.catIds if ev.cocoGt.getAnnIds(catIds=[c])]
    best = None
    for threshold in sorted({d["score"] for d in detections}):
        rows = []
        for c in classes:
            kept = [d for d in detections if d["category_id"] == c and d["score"] >= threshold]
            hits = sum(true_positive[d["id"]] for d in kept)
            precision = hits / len(kept) if kept else 0.0
            recall = hits / len(ev.cocoGt.getAnnIds(catIds=[c]))
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            rows.append((precision, recall, f1))
        macro = float(np.mean([r[2] for r in rows]))
        if best is None or macro > best["f1"]:
            best = {"f1": macro, "precision": float(np.mean([r[0] for r in rows])),
                    "recall": float(np.mean([r[1] for r in rows])), "f1_conf": threshold}
    return best


@pytest.fixture(scope="module")
def case():
    gt = ground_truth()
    dts = detections(gt)
    return gt, dts, evaluate(copy.deepcopy(gt), copy.deepcopy(dts)), pycocotools_eval(gt, dts)


def test_the_fixture_has_objects_of_every_size_so_no_stat_is_undefined(case):
    gt, _, _, reference = case
    areas = np.array([a["area"] for a in gt["annotations"]])
    assert (areas < 32 ** 2).sum() >= 10 and ((areas > 32 ** 2) & (areas < 96 ** 2)).sum() >= 10
    assert (areas > 96 ** 2).sum() >= 10
    assert all(v > 0 for v in reference.stats), reference.stats  # pycocotools writes -1 for undefined


def test_all_twelve_stats_equal_pycocotools(case):
    _, _, ours, reference = case
    assert [ours[name] for name in STAT_NAMES] == pytest.approx(list(reference.stats), abs=1e-12)
    assert 0.2 < ours["AP_large"] < 0.95 and ours["AP_large"] != ours["AP_small"]


def test_per_class_ap_and_ap50_equal_pycocotools_precision(case):
    _, _, ours, reference = case
    precision = reference.eval["precision"]  # [IoU thresholds, recall points, classes, areas, max dets]
    assert set(ours["per_class"]) == {f"c{c}" for c in CATEGORIES}
    ap50s = []
    for k, cat_id in enumerate(reference.params.catIds):
        p = precision[:, :, k, 0, -1]
        mine = ours["per_class"][f"c{cat_id}"]
        assert mine["AP"] == pytest.approx(float(p[p > -1].mean()), abs=1e-12)
        assert mine["AP50"] == pytest.approx(float(p[0][p[0] > -1].mean()), abs=1e-12)
        ap50s.append(mine["AP50"])
    assert np.mean(ap50s) == pytest.approx(ours["AP50"], abs=1e-12)  # AP50 is the mean of the classes' AP50s
    assert len(set(ap50s)) == len(ap50s)  # classes differ, so a mixed-up class index shows


def test_precision_recall_and_f1_follow_from_pycocotools_matches(case):
    _, _, ours, reference = case
    expected = f1_optimal_from_matches(reference)
    got = {k: ours[k] for k in ("f1", "precision", "recall", "f1_conf")}
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.3 < expected["f1"] < 0.99 and expected["precision"] != expected["recall"]


def test_a_tie_in_f1_goes_to_the_most_inclusive_threshold():
    """2 objects; detections by score: hit, miss, miss, hit. Keeping the first (P 1, R 1/2) and keeping all four
    (P 1/2, R 1) both give F1 2/3: the lower threshold wins, so no true positive is thrown away."""
    gt = {"images": [{"id": 1, "width": 100, "height": 100}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 400,
                           "iscrowd": 0},
                          {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 20, 20], "area": 400,
                           "iscrowd": 0}]}
    dts = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.9},
           {"image_id": 1, "category_id": 1, "bbox": [80, 0, 15, 15], "score": 0.8},
           {"image_id": 1, "category_id": 1, "bbox": [0, 80, 15, 15], "score": 0.7},
           {"image_id": 1, "category_id": 1, "bbox": [50, 50, 20, 20], "score": 0.6}]
    ours = evaluate(copy.deepcopy(gt), copy.deepcopy(dts))
    expected = f1_optimal_from_matches(pycocotools_eval(gt, dts))
    assert expected == pytest.approx({"f1": 2 / 3, "precision": 0.5, "recall": 1.0, "f1_conf": 0.6})
    assert {k: ours[k] for k in expected} == pytest.approx(expected, abs=1e-12)


def test_a_class_without_objects_is_left_out_of_the_macro_average():
    """Detections of a class the ground truth never has are false positives of a class with no recall to
    average: precision/recall/F1 average over the classes that have objects."""
    gt = ground_truth(images=12, seed=3)
    gt["categories"].append({"id": 9, "name": "never"})
    dts = detections(gt, seed=4) + [{"image_id": 1, "category_id": 9, "bbox": [5, 5, 40, 40], "score": 0.95}]
    ours = evaluate(copy.deepcopy(gt), copy.deepcopy(dts))
    expected = f1_optimal_from_matches(pycocotools_eval(gt, dts))
    assert {k: ours[k] for k in expected} == pytest.approx(expected, abs=1e-12)
    assert "never" not in ours["per_class"]
