"""CVAT tags survive normalisation to COCO (which has none), so `--split-by tags` works on real exports."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from cvatflow.datasets import prepare

CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><labels>
    <label><name>cat</name></label>
    <label><name>val</name><type>tag</type></label>
  </labels></task></meta>
  {images}
</annotations>
"""
IMAGE = """<image id="{i}" name="f{i}.jpg" width="20" height="10">{tag}
    <box label="cat" occluded="0" xtl="1" ytl="1" xbr="5" ybr="5" z_order="0"></box>
  </image>"""


def cvat_export(root: Path, tagged: set[int], images: int = 4) -> Path:
    """A CVAT for images 1.1 export whose images in `tagged` carry the tag `val`."""
    (root / "images").mkdir(parents=True)
    for i in range(images):
        Image.new("RGB", (20, 10)).save(root / "images" / f"f{i}.jpg")
    body = "\n  ".join(IMAGE.format(i=i, tag='\n    <tag label="val" source="manual"></tag>' if i in tagged else "")
                       for i in range(images))
    (root / "annotations.xml").write_text(CVAT_XML.format(images=body))
    return root


def test_images_tagged_val_in_cvat_go_to_the_val_split(tmp_path):
    export = cvat_export(tmp_path / "export", tagged={1, 3})
    prepare(export, tmp_path / "ds", split_by="tags")
    coco = json.loads((tmp_path / "ds/annotations/instances_default.json").read_text())
    split = json.loads((tmp_path / "ds/train_val_split.json").read_text())
    by_id = {image["id"]: Path(image["file_name"]).name for image in coco["images"]}
    assert sorted(by_id[i] for i in split["val"]) == ["f1.jpg", "f3.jpg"]
    assert sorted(by_id[i] for i in split["train"]) == ["f0.jpg", "f2.jpg"]
    assert split["method"] == "tags"
    assert [c["name"] for c in coco["categories"]] == ["cat"]  # a tag-only label is no class

