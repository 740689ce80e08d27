"""Benchmark: our COCO evaluation vs pycocotools on 2,000 images / ~60,000 detections: same AP, speed ratio."""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import time

import numpy as np
from _goal import Goals


def synthetic(images: int, per_image: int, classes: int, seed: int = 0):
    """Ground truth (5-10 objects per image) and detections: jittered true objects plus false positives."""
    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": [{"id": c + 1, "name": f"c{c + 1}"} for c in range(classes)]}
    dts = []
    ann_id = 1
    for image_id in range(1, images + 1):
        gt["images"].append({"id": image_id, "width": 640, "height": 480, "file_name": f"{image_id}.jpg"})
        n = int(rng.integers(5, 11))
        xy = rng.uniform(0, 500, (n, 2)) * [1, 0.75]
        wh = rng.uniform(8, 140, (n, 2))
        cats = rng.integers(1, classes + 1, n)
        for (x, y), (w, h), c in zip(xy, wh, cats):
            gt["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": int(c),
                                      "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h),
                                      "iscrowd": 0})
            ann_id += 1
        true = rng.random(n) < 0.85
        jitter = rng.normal(0, 0.08, (n, 4)) * np.concatenate([wh, wh], axis=1)
        for i in np.flatnonzero(true):
            box = np.concatenate([xy[i], wh[i]]) + jitter[i]
            cat = int(cats[i]) if rng.random() > 0.1 else int(rng.integers(1, classes + 1))
            dts.append([image_id, *box[:2], *np.maximum(box[2:], 1), 0.3 + 0.7 * rng.random(), cat])
        for _ in range(per_image - int(true.sum())):
            w, h = rng.uniform(8, 140, 2)
            dts.append([image_id, rng.uniform(0, 500), rng.uniform(0, 380), w, h, 0.6 * rng.random(),
                        int(rng.integers(1, classes + 1))])
    results = [{"image_id": int(d[0]), "category_id": int(d[6]), "bbox": [float(v) for v in d[1:5]],
                "score": float(d[5])} for d in dts]
    return gt, results


def pycocotools_eval(gt, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [max(0.0, float(v)) for v in ev.stats]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--per-image", type=int, default=30)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()

    from cvatflow.training.evaluation import STAT_NAMES, evaluate

    gt, results = synthetic(args.images, args.per_image, args.classes)
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} objects, {len(results)} detections")

    gt_ref, res_ref = copy.deepcopy(gt), copy.deepcopy(results)
    start = time.perf_counter()
    reference = pycocotools_eval(gt_ref, res_ref)
    t_ref = time.perf_counter() - start

    gt_ours, res_ours = copy.deepcopy(gt), copy.deepcopy(results)
    start = time.perf_counter()
    ours = evaluate(gt_ours, res_ours, "bbox")  # includes indexing, per-class AP and the F1 sweep
    t_ours = time.perf_counter() - start

    same = all(abs(ours[name] - ref) < 1e-12 for name, ref in zip(STAT_NAMES, reference))
    for name in ("mAP", "AP50", "AP75"):
        ref = reference[STAT_NAMES.index(name)]
        print(f"{name:5s} ours {ours[name]:.6f}  pycocotools {ref:.6f}  {'identical' if ours[name] == ref else 'DIFF'}")
    print(f"all 12 stats identical: {same}")
    print(f"pycocotools {t_ref:.2f}s, ours {t_ours:.2f}s")
    goals = Goals(__file__)
    goals.check("COCO stats identical to pycocotools (1 = all 12)", float(same), ">=", 1)
    goals.check("evaluation speed-up over pycocotools", t_ref / t_ours, ">=", 8, "x")
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
