"""The synthetic generator writes a deterministic, valid CVAT COCO 1.0 export of learnable shapes."""
from __future__ import annotations

import json
import zipfile

from pycocotools.coco import COCO

from cvatflow.datasets.synth import CATEGORIES, make_export


def test_same_seed_gives_same_bytes_and_another_seed_differs(tmp_path):
    a = make_export(tmp_path / "a.zip", images=6, seed=3, size=96)
    b = make_export(tmp_path / "b.zip", images=6, seed=3, size=96)
    c = make_export(tmp_path / "c.zip", images=6, seed=4, size=96)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_export_has_cvat_coco_layout_with_boxes_and_masks(tmp_path):
    export = make_export(tmp_path / "synth.zip", images=12, seed=0, size=128)
    with zipfile.ZipFile(export) as archive:
        names = archive.namelist()
        coco = json.loads(archive.read("annotations/instances_default.json"))
        archive.extractall(tmp_path / "x")
    assert len([n for n in names if n.startswith("images/")]) == 12
    assert [c["name"] for c in coco["categories"]] == list(CATEGORIES)
    per_image = {}
    for ann in coco["annotations"]:
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128
        assert 0.12 * 128 <= max(w, h) <= 0.41 * 128  # big enough to learn
        assert len(ann["segmentation"][0]) >= 6
    assert set(per_image) == {im["id"] for im in coco["images"]}
    assert all(1 <= n <= 4 for n in per_image.values())
    api = COCO(str(tmp_path / "x/annotations/instances_default.json"))
    mask = api.annToMask(coco["annotations"][0])
    assert abs(int(mask.sum()) - coco["annotations"][0]["area"]) < 0.15 * coco["annotations"][0]["area"]
