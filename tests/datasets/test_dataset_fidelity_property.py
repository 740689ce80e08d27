"""Property: every annotation of a CVAT-like COCO export is a training target on the right pixels, or counted."""
from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from cvatflow.datasets.ingest import ingest
from cvatflow.datasets.report import REPORT_FILE
from cvatflow.errors import TrainingError
from cvatflow.training import data as datalib

SIZE = 24  # every image SIZE x SIZE, and the model size too: targets stay in source pixels
IMAGE_KINDS = ("png", "png16", "jpeg-exif180", "zero-bytes")
ANN_KINDS = ("rect", "rect-clipped", "rect-outside", "rotated", "polygon", "mask", "mask-crowd", "mask-empty",
             "unknown-category")


@st.composite
def exports(draw):
    names = draw(st.lists(st.sampled_from([f"{folder}{name}" for folder in ("", "cam1/", "cam2/")
                                           for name in ("x.png", "y.png")]), min_size=1, max_size=4, unique=True))
    images = [(name, draw(st.sampled_from(IMAGE_KINDS)), draw(st.integers(0, 2 ** 16))) for name in names]
    anns = draw(st.lists(st.tuples(st.integers(0, len(images) - 1), st.sampled_from(ANN_KINDS),
                                   st.integers(0, 1), st.integers(2, 9), st.integers(2, 9), st.integers(1, 89)),
                         min_size=0, max_size=8))
    return images, anns, draw(st.sampled_from(("object", "ignore")))


def shown_pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def write_image(path: Path, kind: str, seed: int) -> np.ndarray | None:
    """Write the file; return the pixels CVAT shows (what training must see), None for a broken file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = shown_pixels(seed)
    if kind == "zero-bytes":
        path.write_bytes(b"")
        return None
    if kind == "png16":
        wide = (shown[..., 0].astype(np.uint32) * 257).astype(np.uint16)
        Image.fromarray(wide).save(path, format="PNG")
        return np.repeat(shown[..., :1], 3, axis=2)
    if kind == "jpeg-exif180":  # stored upside down, shown upright
        exif = Image.Exif()
        exif[0x0112] = 3
        smooth = np.full_like(shown, 0) + shown.mean(axis=(0, 1), keepdims=True).astype(np.uint8)  # JPEG-friendly
        smooth[: SIZE // 2] = (200, 40, 40)
        buffer = io.BytesIO()
        Image.fromarray(smooth[::-1, ::-1].copy()).save(buffer, format="JPEG", quality=98, exif=exif.tobytes())
        path.write_bytes(buffer.getvalue())
        return smooth
    Image.fromarray(shown).save(path, format="PNG")
    return shown


def annotation(i: int, image_id: int, kind: str, category: int, x: int, y: int, angle: int) -> dict:
    ann = {"id": i, "image_id": image_id, "category_id": category + 1, "iscrowd": 0, "segmentation": [],
           "area": 0, "bbox": [x, y, 8, 6], "attributes": {"occluded": False}}
    if kind == "rect-clipped":
        ann["bbox"] = [SIZE - 4, y, 10, 6]
    elif kind == "rect-outside":
        ann["bbox"] = [SIZE + 5, y, 4, 4]
    elif kind == "rotated":
        ann["attributes"]["rotation"] = float(angle)
        ann["bbox"] = [x + 2, y + 2, 6, 4]
    elif kind == "polygon":
        ann["segmentation"] = [[x, y, x + 7, y, x + 3, y + 9]]
        ann["bbox"] = [x, y, 7, 9]
    elif kind.startswith("mask"):
        mask = np.zeros((SIZE, SIZE), np.uint8, order="F")
        if kind != "mask-empty":
            mask[y:y + 5, x:x + 7] = 1
        rle = mask_utils.encode(np.asfortranarray(mask))
        ann["segmentation"] = {"size": [SIZE, SIZE], "counts": rle["counts"].decode()}
        ann["iscrowd"] = 1 if kind != "mask" else 0
    elif kind == "unknown-category":
        ann["category_id"] = 9
    return ann


def expected_box(ann: dict, kind: str) -> list[float]:
    """The box the model must get, computed here from the shape (not from the code under test)."""
    x, y, w, h = ann["bbox"]
    if kind == "rotated":
        t = math.radians(ann["attributes"]["rotation"])
        cx, cy = x + w / 2, y + h / 2
        xs = [cx + dx * math.cos(t) - dy * math.sin(t) for dx in (-w / 2, w / 2) for dy in (-h / 2, h / 2)]
        ys = [cy + dx * math.sin(t) + dy * math.cos(t) for dx in (-w / 2, w / 2) for dy in (-h / 2, h / 2)]
        x, y, w, h = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    if kind in ("mask", "mask-crowd"):
        w, h = 7, 5
    return [max(0, x), max(0, y), min(SIZE, x + w), min(SIZE, y + h)]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exports())
def test_every_annotation_is_a_target_on_the_right_pixels_or_counted(example):
    images, anns, crowd = example
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "export"
        shown, coco = {}, {"categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "images": [],
                           "annotations": []}
        for i, (name, kind, seed) in enumerate(images, start=1):
            shown[i] = write_image(root / "images" / "default" / name, kind, seed)
            coco["images"].append({"id": i, "file_name": name, "width": SIZE, "height": SIZE})
        kinds = {}
        for i, (image, kind, category, x, y, angle) in enumerate(anns, start=1):
            coco["annotations"].append(annotation(i, image + 1, kind, category, x, y, angle))
            kinds[i] = kind
        (root / "annotations").mkdir(parents=True)
        (root / "annotations" / "instances_default.json").write_text(json.dumps(coco))

        info = ingest(root, Path(tmp) / "ds", fix=True, crowd=crowd)
        report = json.loads((Path(tmp) / "ds" / REPORT_FILE).read_text())
        # nothing disappears: every annotation and image is counted exactly once
        assert report["objects"]["total"] == len(anns)
        assert report["images"]["total"] == len(images)
        assert report["objects"]["total"] == sum(report["objects"][o] for o in ("kept", "converted", "ignored",
                                                                               "dropped"))
        broken = {i for i, pixels in shown.items() if pixels is None}
        expected_targets: dict[int, list] = {}
        for ann in coco["annotations"]:
            kind = kinds[ann["id"]]
            gone = (ann["image_id"] in broken or kind in ("rect-outside", "mask-empty", "unknown-category")
                    or (kind == "mask-crowd" and crowd == "ignore"))
            if not gone:
                expected_targets.setdefault(ann["image_id"], []).append((expected_box(ann, kind),
                                                                         ann["category_id"] - 1, ann))
        usable = sum(len(v) for v in expected_targets.values())
        assert report["objects"]["usable"] == usable == info.ingest.usable
        assert report["objects"]["ignored"] == sum(1 for k in kinds.values() if k == "mask-crowd") * (
            crowd == "ignore") - sum(1 for a in coco["annotations"] if kinds[a["id"]] == "mask-crowd"
                                     and a["image_id"] in broken) * (crowd == "ignore")
        if usable == 0:
            try:
                datalib.load(Path(tmp) / "ds")
            except TrainingError as exc:  # no images, no annotations, or no usable objects: each refused
                assert "no usable objects" in str(exc) or "the dataset has no" in str(exc)
            else:
                raise AssertionError("a dataset without usable objects must be refused")
            return
        data = datalib.load(Path(tmp) / "ds", val_percent=0)
        dataset = datalib.DetectionDataset(data, sorted(data.paths), SIZE, masks=True)
        prepared_names = {img["id"]: img["file_name"] for img in data.coco["images"]}
        source_ids = {f"default/{name}": i for i, (name, _, _) in enumerate(images, start=1)}
        for index, image_id in enumerate(dataset.ids):
            pixels, target = dataset[index]
            source_id = source_ids[prepared_names[image_id]]  # the folder is kept: the right file
            expected_pixels = shown[source_id]
            difference = np.abs(pixels.permute(1, 2, 0).numpy().astype(int) - expected_pixels)
            if images[source_id - 1][1].startswith("jpeg"):  # lossy, but upside down would differ by ~50
                assert difference.mean() <= 4
            else:
                assert difference.max() == 0
            wanted = expected_targets.get(source_id, [])
            assert len(target["boxes"]) == len(wanted)
            for k, (box, label, ann) in enumerate(wanted):
                assert np.allclose(target["boxes"][k].tolist(), box, atol=1e-3), (kinds[ann["id"]], box)
                assert int(target["labels"][k]) == label
                if kinds[ann["id"]] in ("mask", "mask-crowd"):
                    source = mask_utils.decode({"size": [SIZE, SIZE],
                                                "counts": ann["segmentation"]["counts"].encode()})
                    assert np.array_equal(target["masks"][k].numpy(), source)
