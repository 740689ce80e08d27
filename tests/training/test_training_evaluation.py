"""Our COCO evaluation gives pycocotools' numbers on the same ground truth and detections."""
from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from cvatflow.training.evaluation import STAT_NAMES, evaluate


def ground_truth(images=30, seed=0):
    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": [{"id": i, "name": f"c{i}"} for i in (1, 2, 5)]}
    ann_id = 1
    for image_id in range(1, images + 1):
        gt["images"].append({"id": image_id, "width": 200, "height": 150, "file_name": f"{image_id}.jpg"})
        for _ in range(rng.integers(0, 6)):
            w, h = rng.uniform(5, 80, 2)
            x, y = rng.uniform(0, 200 - w), rng.uniform(0, 150 - h)
            poly = [x, y, x + w, y, x + w / 2, y + h]
            gt["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": int(rng.choice([1, 2, 5])),
                                      "bbox": [x, y, w, h], "area": w * h / 2, "segmentation": [poly],
                                      "iscrowd": int(rng.random() < 0.05)})
            ann_id += 1
    return gt


def detections(gt, seed=1):
    """Jittered copies of most objects (some with the wrong class) plus random false positives."""
    rng = np.random.default_rng(seed)
    out = []
    for ann in gt["annotations"]:
        if rng.random() < 0.15:
            continue
        x, y, w, h = np.array(ann["bbox"]) + rng.normal(0, 3, 4)
        cat = ann["category_id"] if rng.random() > 0.1 else 2
        poly = [[v + rng.normal(0, 2) for v in ann["segmentation"][0]]]
        rle = mask_utils.merge(mask_utils.frPyObjects(poly, 150, 200))
        rle["counts"] = rle["counts"].decode("ascii")
        out.append({"image_id": ann["image_id"], "category_id": cat, "bbox": [x, y, max(w, 1), max(h, 1)],
                    "score": float(rng.random()), "segmentation": rle})
    for image in gt["images"]:
        for _ in range(rng.integers(0, 4)):
            x, y, w, h = rng.uniform(0, 120), rng.uniform(0, 90), rng.uniform(5, 60), rng.uniform(5, 50)
            rle = mask_utils.encode(np.asfortranarray(_box_mask(x, y, w, h)))
            rle["counts"] = rle["counts"].decode("ascii")
            out.append({"image_id": image["id"], "category_id": int(rng.choice([1, 2, 5])), "bbox": [x, y, w, h],
                        "score": float(rng.random() * 0.6), "segmentation": rle})
    return out


def _box_mask(x, y, w, h):
    mask = np.zeros((150, 200), dtype=np.uint8)
    mask[int(y):int(y + h), int(x):int(x + w)] = 1
    return mask


def pycocotools_stats(gt, dts, iou_type):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dts)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_numbers_equal_pycocotools(iou_type):
    gt = ground_truth()
    dts = detections(gt)
    ours = evaluate(copy.deepcopy(gt), copy.deepcopy(dts), iou_type)
    reference = pycocotools_stats(gt, dts, iou_type)
    expected = [max(0.0, float(v)) for v in reference.stats]
    assert [ours[name] for name in STAT_NAMES] == pytest.approx(expected, abs=1e-12)
    assert 0.2 < ours["mAP"] < 0.9  # a meaningful case, not all zeros or ones
    # per-class AP from pycocotools' precision array
    precision = reference.eval["precision"]
    for k, cat_id in enumerate(reference.params.catIds):
        p = precision[:, :, k, 0, -1]
        assert ours["per_class"][f"c{cat_id}"]["AP"] == pytest.approx(float(p[p > -1].mean()), abs=1e-12)


def test_numpy_detections_and_f1():
    gt = ground_truth()
    dts = detections(gt)
    array = np.array([[d["image_id"], *d["bbox"], d["score"], d["category_id"]] for d in dts])
    as_list = evaluate(copy.deepcopy(gt), [{k: v for k, v in d.items() if k != "segmentation"} for d in dts])
    as_array = evaluate(copy.deepcopy(gt), array)
    assert as_array["mAP"] == pytest.approx(as_list["mAP"], abs=1e-12)
    assert 0 < as_list["precision"] <= 1 and 0 < as_list["recall"] <= 1
    f1 = 2 * as_list["precision"] * as_list["recall"] / (as_list["precision"] + as_list["recall"])
    assert as_list["f1"] >= f1 - 0.15  # macro F1 is the mean of per-class F1s, close to F1 of the means
    assert 0 <= as_list["f1_conf"] < 1
    assert len(as_list["pr_curve"]["recall"]) == 101


def test_perfect_and_empty_predictions():
    gt = ground_truth(10)
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in gt["annotations"] if not a["iscrowd"]]
    result = evaluate(copy.deepcopy(gt), perfect)
    assert result["mAP"] == pytest.approx(1.0) and result["f1"] == pytest.approx(1.0)
    assert evaluate(copy.deepcopy(gt), [])["mAP"] == 0.0
