"""The synthetic generator's shapes are learnable: big enough, few per image, masks that match their polygons."""
from __future__ import annotations

import json
import zipfile

from pycocotools.coco import COCO

from cvatflow.datasets.synth import CATEGORIES, make_export


def test_shapes_are_15_to_40_percent_of_the_side_with_1_to_4_per_image(tmp_path):
    export = make_export(tmp_path / "synth.zip", images=12, seed=0, size=128)
    with zipfile.ZipFile(export) as archive:
        coco = json.loads(archive.read("annotations/instances_default.json"))
        archive.extractall(tmp_path / "x")
    assert [c["name"] for c in coco["categories"]] == list(CATEGORIES)
    per_image: dict[int, int] = {}
    for ann in coco["annotations"]:
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128
        assert 0.12 * 128 <= max(w, h) <= 0.41 * 128
    assert set(per_image) == {im["id"] for im in coco["images"]}
    assert all(1 <= n <= 4 for n in per_image.values())
    api = COCO(str(tmp_path / "x/annotations/instances_default.json"))
    for ann in coco["annotations"][:10]:  # the mask pycocotools draws is the polygon whose area CVAT writes
        assert abs(int(api.annToMask(ann).sum()) - ann["area"]) < 0.15 * ann["area"]
