"""Dataset fidelity: per CVAT shape kind and image kind, the exact targets that reach the model and the report."""
from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from cvatflow.datasets.ingest import ingest
from cvatflow.datasets.prepare import prepare
from cvatflow.datasets.report import REPORT_FILE
from cvatflow.errors import DatasetError, ProblemsError, TrainingError
from cvatflow.training import data as datalib
from paths import DATA, SHARED

CASES = SHARED / "cases" / "real-exports"


# -- helpers ----------------------------------------------------------------------------------------------

def noise(width: int, height: int, seed: int) -> Image.Image:
    """An RGB image whose pixels differ everywhere, so a wrong file or orientation shows in a comparison."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def coco_export(root: Path, images: dict[str, tuple[Image.Image | bytes, int, int]], annotations: list[dict],
                categories=("a", "b"), subset: str = "default", fmt: str = "PNG") -> Path:
    """A CVAT "COCO 1.0" export folder: images/<subset>/<name> and annotations/instances_<subset>.json."""
    coco = {"licenses": [], "info": {}, "categories": [{"id": i + 1, "name": n, "supercategory": ""}
                                                       for i, n in enumerate(categories)],
            "images": [], "annotations": []}
    for i, (name, (pixels, width, height)) in enumerate(images.items(), start=1):
        path = root / "images" / subset / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(pixels, bytes):
            path.write_bytes(pixels)
        else:
            pixels.save(path, format=fmt)
        coco["images"].append({"id": i, "file_name": name, "width": width, "height": height})
    for i, ann in enumerate(annotations, start=1):
        coco["annotations"].append({"id": i, "iscrowd": 0, "segmentation": [], "area": 0, **ann})
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{subset}.json").write_text(json.dumps(coco))
    return root


def targets(dataset_dir: Path, size: int, masks: bool = True) -> dict[str, tuple[torch.Tensor, dict]]:
    """file_name -> (image tensor, target) of every image, at `size` (the longest side: no resize when equal)."""
    data = datalib.load(dataset_dir, val_percent=0)
    ds = datalib.DetectionDataset(data, sorted(data.paths), size, masks=masks)
    by_id = {img["id"]: img["file_name"] for img in data.coco["images"]}
    return {by_id[image_id]: ds[i] for i, image_id in enumerate(ds.ids)}


def rle_mask(ann: dict) -> np.ndarray:
    seg = ann["segmentation"]
    rle = mask_utils.frPyObjects(seg, *seg["size"]) if isinstance(seg["counts"], list) else seg
    return mask_utils.decode(rle)


def report_of(folder: Path) -> dict:
    return json.loads((folder / REPORT_FILE).read_text())


def entry(report: dict, kind: str, outcome: str, reason: str | None = None) -> int:
    return sum(e["count"] for e in report["entries"] if e["kind"] == kind and e["outcome"] == outcome
               and (reason is None or e["reason"] == reason))


# -- masks and crowd --------------------------------------------------------------------------------------

def test_brush_masks_with_iscrowd_become_objects_with_their_pixels(tmp_path):
    source = json.loads(zipfile.ZipFile(CASES / "coco-brush-mask-iscrowd" / "export.zip")
                        .read("annotations/instances_default.json"))
    prepare(CASES / "coco-brush-mask-iscrowd" / "export.zip", tmp_path / "ds", val_split=0)
    report = report_of(tmp_path / "ds")
    assert report["objects"] == {"total": 6, "usable": 6, "kept": 0, "converted": 6, "ignored": 0, "dropped": 0}
    assert entry(report, "mask", "converted") == 6 and report["warnings"] == []
    items = targets(tmp_path / "ds", 64)
    by_file = {img["id"]: img["file_name"] for img in source["images"]}
    seen = 0
    for ann in source["annotations"]:
        _, target = items[f"default/{by_file[ann['image_id']]}"]
        expected = torch.from_numpy(rle_mask(ann))
        matches = [k for k in range(len(target["masks"])) if torch.equal(target["masks"][k], expected)]
        assert len(matches) == 1, "the brush mask itself is the target"
        k = matches[0]
        ys, xs = np.nonzero(expected.numpy())
        assert target["boxes"][k].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]  # box from mask
        assert target["labels"][k] == ann["category_id"] - 1
        seen += 1
    assert seen == 6 and sum(len(t["boxes"]) for _, t in items.values()) == 6


def test_crowd_ignore_keeps_true_crowd_out_of_positives_and_evaluation_ignores_it(tmp_path):
    img = noise(40, 30, 1)
    crowd = mask_utils.encode(np.asfortranarray(np.pad(np.ones((5, 6), np.uint8), ((20, 5), (30, 4)))))
    crowd["counts"] = crowd["counts"].decode()
    export = coco_export(tmp_path / "e", {"x.png": (img, 40, 30)}, [
        {"image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 8]},
        {"image_id": 1, "category_id": 2, "bbox": [30, 20, 6, 5], "segmentation": crowd, "iscrowd": 1}])
    prepare(export, tmp_path / "ds", val_split=0, crowd="ignore")
    report = report_of(tmp_path / "ds")
    assert report["options"]["crowd"] == "ignore"
    assert entry(report, "mask", "ignored", "crowd region (--crowd ignore)") == 1
    assert any("1 mask object kept out of training" in w and "--crowd ignore" in w for w in report["warnings"])
    _, target = targets(tmp_path / "ds", 40)["default/x.png"]
    assert target["boxes"].tolist() == [[2, 2, 12, 10]] and target["labels"].tolist() == [0]
    data = datalib.load(tmp_path / "ds", val_percent=0)
    gt = data.subset_coco(data.train_ids)
    assert sorted(a["iscrowd"] for a in gt["annotations"]) == [0, 1]  # COCOeval ignores the crowd region
    # the prepared dataset read again (inspect, upload) keeps its ignore region one, whatever --crowd says
    again = ingest(tmp_path / "ds", tmp_path / "again")
    assert again.ingest.total("object", "ignored") == 1 and again.ingest.usable == 1
    # the default rule: the same record is an object, in training and in the evaluation ground truth
    prepare(export, tmp_path / "ds2", val_split=0)
    _, target = targets(tmp_path / "ds2", 40)["default/x.png"]
    assert target["labels"].tolist() == [0, 1]
    data = datalib.load(tmp_path / "ds2", val_percent=0)
    assert [a["iscrowd"] for a in data.subset_coco(data.train_ids)["annotations"]] == [0, 0]


def test_zero_usable_objects_are_refused_before_training(tmp_path):
    with pytest.raises(DatasetError, match=r"no usable objects \(0 of 6.*6 mask objects kept out.*--crowd"):
        prepare(CASES / "coco-brush-mask-iscrowd" / "export.zip", tmp_path / "ds", crowd="ignore")
    assert not (tmp_path / "ds").exists()
    with pytest.raises(DatasetError, match="fewer than the 10 usable objects the template asks for"):
        prepare(CASES / "coco-brush-mask-iscrowd" / "export.zip", tmp_path / "ds", min_objects=10)
    # a raw export handed to training directly follows the same rules
    raw = tmp_path / "raw"
    with zipfile.ZipFile(CASES / "coco-brush-mask-iscrowd" / "export.zip") as zf:
        zf.extractall(raw)
    assert datalib.load(raw).report.usable == 6
    with pytest.raises(TrainingError, match="fewer than the 7 usable objects"):
        datalib.load(raw, min_objects=7)


def test_predictions_cvat_imports_come_back_as_objects(tmp_path):
    from cvatflow.training.predict import _cvat_coco

    mask = np.zeros((30, 40), np.uint8, order="F")
    mask[5:15, 10:30] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode()
    coco = _cvat_coco([{"id": 1, "file_name": "x.png", "width": 40, "height": 30}], ["a"],
                      [{"image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 10], "score": 0.9, "segmentation": rle}])
    assert coco["annotations"][0]["iscrowd"] == 1  # how CVAT imports a mask
    export = tmp_path / "e"
    (export / "images" / "default").mkdir(parents=True)
    noise(40, 30, 2).save(export / "images" / "default" / "x.png")
    (export / "annotations").mkdir()
    (export / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    prepare(export, tmp_path / "ds", val_split=0)
    _, target = targets(tmp_path / "ds", 40)["default/x.png"]
    assert torch.equal(target["masks"][0], torch.from_numpy(mask)) and target["boxes"].tolist() == [[10, 5, 30, 15]]


# -- names and folders ------------------------------------------------------------------------------------

def test_same_name_in_two_folders_stays_two_images_on_their_own_pixels(tmp_path):
    prepare(CASES / "subfolder-same-basename" / "export.zip", tmp_path / "ds", val_split=0)
    coco = json.loads((tmp_path / "ds/annotations/instances_default.json").read_text())
    assert sorted(i["file_name"] for i in coco["images"]) == [
        "default/cam1/img_0001.jpg", "default/cam1/img_0002.jpg", "default/cam2/img_0001.jpg"]
    items = targets(tmp_path / "ds", 64, masks=False)
    with zipfile.ZipFile(CASES / "subfolder-same-basename" / "export.zip") as zf:
        source = json.loads(zf.read("annotations/instances_default.json"))
        for img in source["images"]:
            image, target = items[f"default/{img['file_name']}"]
            pixels = np.asarray(Image.open(io.BytesIO(zf.read(f"images/default/{img['file_name']}"))).convert("RGB"))
            assert np.abs(image.permute(1, 2, 0).numpy().astype(int) - pixels).max() <= 2  # JPEG decoders
            expected = [[x, y, x + w, y + h] for a in source["annotations"] if a["image_id"] == img["id"]
                        for x, y, w, h in [a["bbox"]]]
            assert target["boxes"].tolist() == expected


def test_unpacked_export_folder_is_prepared_like_its_zip(tmp_path):
    zipped = CASES / "subfolder-same-basename" / "export.zip"
    with zipfile.ZipFile(zipped) as zf:
        zf.extractall(tmp_path / "unpacked")
    prepare(zipped, tmp_path / "a", val_split=0)
    prepare(tmp_path / "unpacked", tmp_path / "b", val_split=0)
    assert (tmp_path / "a/annotations/instances_default.json").read_text() == \
        (tmp_path / "b/annotations/instances_default.json").read_text()
    assert report_of(tmp_path / "b")["objects"] == report_of(tmp_path / "a")["objects"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["images"].append(dict(c["images"][0], file_name="other.png")), r"images\[1\] reuses image id 1"),
    (lambda c: c["categories"].append({"id": 1, "name": "z"}), r"categories\[2\] reuses category id 1"),
    (lambda c: c["images"][0].update(file_name="../../etc/x.png"), r"images\[0\][ .]file_name.*'\.\.'.*|images\[0\] file_name '../../etc/x.png'.*\.\."),
    (lambda c: c["images"][0].update(file_name="/etc/x.png"), r"images\[0\][ .]file_name.*absolute"),
])
def test_ids_used_twice_and_escaping_names_are_refused_naming_the_entry(tmp_path, change, message):
    export = coco_export(tmp_path / "e", {"x.png": (noise(8, 8, 0), 8, 8)},
                         [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}])
    path = export / "annotations" / "instances_default.json"
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=message):
        ingest(export, tmp_path / "out")


# -- images as CVAT shows them ----------------------------------------------------------------------------

def exif_jpeg(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def test_exif_orientation_is_applied_as_cvat_shows_the_image(tmp_path):
    stored = Image.new("RGB", (40, 20), (200, 30, 30))
    stored.paste((30, 200, 30), (0, 0, 10, 20))  # green on the stored left edge
    # orientation 6: shown turned 90 degrees clockwise, 20 wide and 40 high; green lands on the top
    export = coco_export(tmp_path / "e", {"r.jpg": (exif_jpeg(stored, 6), 20, 40),
                                          "s.jpg": (exif_jpeg(stored, 6), 40, 20)},
                         [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 10]},
                          {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 20]}])
    prepare(export, tmp_path / "ds", val_split=0)
    report = report_of(tmp_path / "ds")
    assert entry(report, "image", "converted", "EXIF orientation applied, as CVAT shows it") == 1
    assert entry(report, "image", "converted",
                 "EXIF orientation not applied: the annotations match the stored pixels") == 1
    items = targets(tmp_path / "ds", 40, masks=False)
    shown, target = items["default/r.jpg"]
    assert tuple(shown.shape) == (3, 40, 20)
    assert shown[1, :8, :].float().mean() > 150 and shown[0, :8, :].float().mean() < 100  # green on top
    assert shown[0, 12:, :].float().mean() > 150
    assert target["boxes"].tolist() == [[0, 0, 20, 10]]
    unrotated, _ = items["default/s.jpg"]
    assert tuple(unrotated.shape) == (3, 20, 40) and unrotated[1, :, :8].float().mean() > 150


def test_a_file_of_another_size_than_its_annotations_is_named_or_dropped_with_fix(tmp_path):
    export = coco_export(tmp_path / "e", {"a.png": (noise(30, 20, 0), 30, 20), "b.png": (noise(30, 20, 1), 64, 48)},
                         [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
                          {"image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5]}])
    with pytest.raises(ProblemsError, match=r"'b.png': size mismatch \(file 30x20, annotations 64x48\)"):
        prepare(export, tmp_path / "ds")
    prepare(export, tmp_path / "ds", fix=True, val_split=0)
    report = report_of(tmp_path / "ds")
    assert entry(report, "image", "dropped", "size mismatch") == 1
    assert entry(report, "rectangle", "dropped", "size mismatch") == 1 and report["objects"]["usable"] == 1


def test_sixteen_bit_and_every_mode_become_correctly_scaled_8_bit_rgb(tmp_path):
    wide = (np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 341)  # 0 .. 65131
    modes = {
        "g16.png": (Image.fromarray(wide), "PNG", np.repeat(np.rint(wide / 65535 * 255)[..., None], 3, 2)),
        "pal.png": (noise(16, 12, 3).convert("P"), "PNG", None),
        "rgba.png": (noise(16, 12, 4).convert("RGBA"), "PNG", None),
        "bw.png": (noise(16, 12, 5).convert("1"), "PNG", None),
        "g16.tif": (Image.fromarray(wide), "TIFF", np.repeat(np.rint(wide / 65535 * 255)[..., None], 3, 2)),
        "cmyk.tif": (noise(16, 12, 6).convert("CMYK"), "TIFF", None),
        "x.bmp": (noise(16, 12, 7), "BMP", None),
        "x.webp": (noise(16, 12, 8), "WEBP", None),
        "x.gif": (noise(16, 12, 9).convert("P"), "GIF", None),
    }
    export = tmp_path / "e"
    for name, (image, fmt, _) in modes.items():
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        coco_export(export, {name: (buffer.getvalue(), 16, 12)}, [], subset=name.replace(".", "_"))
        path = export / "annotations" / f"instances_{name.replace('.', '_')}.json"
        coco = json.loads(path.read_text())
        coco["annotations"] = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0,
                                "segmentation": [], "area": 16}]
        path.write_text(json.dumps(coco))
    prepare(export, tmp_path / "ds", val_split=0)
    items = targets(tmp_path / "ds", 16, masks=False)
    for name, (image, _, expected) in modes.items():
        tensor, target = items[f"{name.replace('.', '_')}/{name}"]
        assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (3, 12, 16), name
        if expected is None:
            expected = np.asarray(image.convert("RGB"))
        assert np.array_equal(tensor.permute(1, 2, 0).numpy(), expected.astype(np.uint8)), name
        assert target["boxes"].tolist() == [[1, 1, 5, 5]]
    report = report_of(tmp_path / "ds")
    assert entry(report, "image", "converted", "TIFF I;16 to 8-bit RGB") == 1
    assert entry(report, "image", "converted", "PNG I;16 to 8-bit RGB") == 1


def test_bmp_and_tiff_case_trains(tmp_path):
    prepare(CASES / "bmp-tiff-images" / "export.zip", tmp_path / "ds", val_split=0)
    items = targets(tmp_path / "ds", 64, masks=False)
    with zipfile.ZipFile(CASES / "bmp-tiff-images" / "export.zip") as zf:
        for name in ("scan_001.bmp", "scan_002.tif"):
            image, target = items[f"default/{name}"]
            expected = np.asarray(Image.open(io.BytesIO(zf.read(f"images/default/{name}"))).convert("RGB"))
            assert np.array_equal(image.permute(1, 2, 0).numpy(), expected)
            assert len(target["boxes"]) == 1


def truncated(data: bytes) -> bytes:
    return data[:len(data) * 2 // 3]  # cut inside the scan: the header still opens


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "image zero bytes"),
    (lambda: truncated(exif_jpeg(noise(32, 32, 0), 1)), "image truncated"),
    (b"not an image at all", "image unreadable"),
])
def test_damaged_images_are_named_at_ingest_never_in_the_loader(tmp_path, content, reason):
    data = content() if callable(content) else content
    export = coco_export(tmp_path / "e", {"good.png": (noise(32, 32, 1), 32, 32), "bad.jpg": (data, 32, 32)},
                         [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
                          {"image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5]}])
    with pytest.raises(ProblemsError, match=f"'bad.jpg': {reason}"):
        prepare(export, tmp_path / "ds")
    info = prepare(export, tmp_path / "ds", fix=True, val_split=0)
    assert entry(report_of(tmp_path / "ds"), "image", "dropped", reason) == 1
    assert any(line.startswith(f"1 image dropped: {reason} (e.g. bad.jpg") for line in info.ingest.warnings())
    assert list(targets(tmp_path / "ds", 32)) == ["default/good.png"]


# -- shape kinds ------------------------------------------------------------------------------------------

def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_cvat_xml_shape_kinds_case(tmp_path):
    prepare(CASES / "cvat-xml-shape-types" / "export.zip", tmp_path / "ds", val_split=0)
    report = report_of(tmp_path / "ds")
    assert {(e["kind"], e["outcome"]): e["count"] for e in report["entries"] if e["what"] == "object"} == {
        ("rectangle", "kept"): 1, ("polygon", "kept"): 1, ("ellipse", "converted"): 2,
        ("polyline", "dropped"): 1, ("points", "dropped"): 1, ("cuboid", "dropped"): 1}
    assert [w.split(":")[0] for w in report["warnings"]] == [
        "1 cuboid object dropped", "1 points object dropped", "1 polyline object dropped",
        "class 'corner' has no usable objects", "class 'crack' has no usable objects",
        "class 'crate' has no usable objects"]
    items = targets(tmp_path / "ds", 64)
    _, target = items["frame_000001.png"]
    assert target["boxes"].tolist() == [[30, 14, 50, 34]]  # ellipse cx 40 cy 24 r 10: its enclosing box
    yy, xx = np.mgrid[0:48, 0:64]
    disc = ((xx + 0.5 - 40) ** 2 + (yy + 0.5 - 24) ** 2 <= 100).astype(np.uint8)
    assert iou(target["masks"][0].numpy(), disc) > 0.9
    _, target = items["frame_000000.png"]
    labels = target["labels"].tolist()
    assert sorted(labels) == [0, 1, 2] and target["boxes"][labels.index(0)].tolist() == [4, 4, 20, 20]


def test_rotated_rectangles_become_their_rotated_polygon_and_enclosing_box(tmp_path):
    xml = """<annotations><version>1.1</version><meta><task><labels><label><name>a</name></label></labels></task></meta>
      <image id="0" name="r.png" width="40" height="30">
        <box label="a" occluded="0" xtl="10" ytl="10" xbr="30" ybr="20" rotation="90" z_order="0"/>
      </image></annotations>"""
    export = tmp_path / "x"
    (export / "images").mkdir(parents=True)
    noise(40, 30, 0).save(export / "images" / "r.png")
    (export / "annotations.xml").write_text(xml)
    coco = coco_export(tmp_path / "c", {"r.png": (noise(40, 30, 0), 40, 30)},
                       [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 10],
                         "attributes": {"occluded": False, "rotation": 90.0}}])
    for source, name in ((export, "r.png"), (coco, "default/r.png")):
        out = tmp_path / f"ds-{source.name}"
        prepare(source, out, val_split=0)
        assert entry(report_of(out), "rotated rectangle", "converted",
                     "rotated rectangle to rotated polygon mask + enclosing box") == 1
        _, target = targets(out, 40)[name]
        assert [round(v, 4) for v in target["boxes"][0].tolist()] == [15, 5, 25, 25]  # turned a quarter
        upright = np.zeros((30, 40), np.uint8)
        upright[5:25, 15:25] = 1
        assert iou(target["masks"][0].numpy(), upright) > 0.9


def test_rotation_turns_clockwise_as_cvat_draws_it(tmp_path):
    # a long thin box turned 45 degrees clockwise (y down) runs from top-left to bottom-right
    coco = coco_export(tmp_path / "c", {"r.png": (noise(40, 40, 0), 40, 40)},
                       [{"image_id": 1, "category_id": 1, "bbox": [4, 18, 32, 4],
                         "attributes": {"rotation": 45.0}}])
    prepare(coco, tmp_path / "ds", val_split=0)
    _, target = targets(tmp_path / "ds", 40)["default/r.png"]
    yy, xx = np.mgrid[0:40, 0:40] + 0.5
    along = ((xx - 20) + (yy - 20)) / np.sqrt(2)  # the box's long axis after the turn
    across = (-(xx - 20) + (yy - 20)) / np.sqrt(2)
    expected = ((np.abs(along) <= 16) & (np.abs(across) <= 2)).astype(np.uint8)
    assert iou(target["masks"][0].numpy(), expected) > 0.7


def test_cvat_for_video_tracks_keep_interpolated_frames_and_drop_outside_ones(tmp_path):
    xml = """<annotations><version>1.1</version><meta><task><labels><label><name>car</name></label></labels>
      <original_size><width>32</width><height>24</height></original_size></task></meta>
      <track id="0" label="car" source="manual">
        <box frame="0" keyframe="1" outside="0" occluded="0" xtl="2" ytl="2" xbr="10" ybr="10" z_order="0"/>
        <box frame="1" keyframe="0" outside="0" occluded="0" xtl="4" ytl="2" xbr="12" ybr="10" z_order="0"/>
        <box frame="2" keyframe="1" outside="1" occluded="0" xtl="6" ytl="2" xbr="14" ybr="10" z_order="0"/>
      </track>
      <track id="1" label="car" source="manual">
        <polyline frame="0" keyframe="1" outside="0" occluded="0" points="1,1;5,5" z_order="0"/>
      </track></annotations>"""
    export = tmp_path / "v"
    (export / "images").mkdir(parents=True)
    for frame in range(3):
        noise(32, 24, frame).save(export / "images" / f"frame_{frame:06d}.png")
    (export / "annotations.xml").write_text(xml)
    info = prepare(export, tmp_path / "ds", val_split=0)
    assert info.format == "CVAT for video 1.1"
    report = report_of(tmp_path / "ds")
    assert entry(report, "rectangle", "kept") == 1
    assert entry(report, "rectangle", "converted", "interpolated track frame") == 1
    assert entry(report, "rectangle", "dropped", "outside frame") == 1
    assert entry(report, "polyline", "dropped", "not a detection shape") == 1
    items = targets(tmp_path / "ds", 32, masks=False)
    assert items["frame_000000.png"][1]["boxes"].tolist() == [[2, 2, 10, 10]]
    assert items["frame_000001.png"][1]["boxes"].tolist() == [[4, 2, 12, 10]]
    assert items["frame_000002.png"][1]["boxes"].tolist() == []


def test_coco_keypoints_exports_train_on_their_boxes(tmp_path):
    export = coco_export(tmp_path / "k", {"p.png": (noise(32, 32, 0), 32, 32)},
                         [{"image_id": 1, "category_id": 1, "bbox": [3, 4, 10, 12], "keypoints": [5, 6, 2, 8, 9, 2],
                           "num_keypoints": 2}], categories=("person",))
    (export / "annotations" / "instances_default.json").rename(export / "annotations" / "person_keypoints_default.json")
    info = prepare(export, tmp_path / "ds", val_split=0)
    assert info.format == "COCO Keypoints 1.0"
    assert entry(report_of(tmp_path / "ds"), "skeleton", "converted") == 1
    assert targets(tmp_path / "ds", 32, masks=False)["default/p.png"][1]["boxes"].tolist() == [[3, 4, 13, 16]]


def test_mot_ignored_and_invisible_and_voc_difficult_are_ignore_regions(tmp_path):
    mot = tmp_path / "mot"
    (mot / "gt").mkdir(parents=True)
    (mot / "img1").mkdir()
    for i in (1, 2):
        noise(64, 48, i).save(mot / "img1" / f"{i:06d}.png")
    (mot / "gt" / "labels.txt").write_text("person\n")
    (mot / "gt" / "gt.txt").write_text("1,1,4,4,10,12,1,1,1.0\n1,2,20,4,10,12,0,1,1.0\n"
                                       "2,1,5,5,10,12,1,1,0.0\n2,3,30,10,10,12,1,1,0.5\n")
    prepare(mot, tmp_path / "m", val_split=0)
    report = report_of(tmp_path / "m")
    assert entry(report, "rectangle", "ignored", "MOT ignored") == 1
    assert entry(report, "rectangle", "ignored", "MOT not visible") == 1
    assert report["objects"]["usable"] == 2
    boxes = sorted(t["boxes"].tolist()[0] for _, t in targets(tmp_path / "m", 64, masks=False).values())
    assert boxes == [[4, 4, 14, 16], [30, 10, 40, 22]]
    voc = tmp_path / "voc"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True)
    noise(64, 48, 0).save(voc / "JPEGImages" / "a.jpg")
    (voc / "ImageSets/Main/default.txt").write_text("a\n")
    (voc / "labelmap.txt").write_text("# label:color_rgb:parts:actions\ncat:1,2,3::\n")
    obj = ("<object><name>cat</name><difficult>{}</difficult><bndbox><xmin>{}</xmin><ymin>4</ymin>"
           "<xmax>{}</xmax><ymax>20</ymax></bndbox></object>")
    (voc / "Annotations/a.xml").write_text(f"<annotation><filename>a.jpg</filename><size><width>64</width>"
                                           f"<height>48</height><depth>3</depth></size>{obj.format(0, 2, 12)}"
                                           f"{obj.format(1, 30, 40)}</annotation>")
    prepare(voc, tmp_path / "v", val_split=0)
    assert entry(report_of(tmp_path / "v"), "rectangle", "ignored", "VOC difficult") == 1
    _, target = next(iter(targets(tmp_path / "v", 64, masks=False).values()))
    assert target["boxes"].tolist() == [[2, 4, 12, 20]]
    data = datalib.load(tmp_path / "v", val_percent=0)
    assert sorted(a["iscrowd"] for a in data.subset_coco(data.train_ids)["annotations"]) == [0, 1]


# -- the report everywhere --------------------------------------------------------------------------------

def test_cli_prints_the_report_as_a_table_or_json(cli, tmp_path):
    export = CASES / "cvat-xml-shape-types" / "export.zip"
    result = cli("dataset", "inspect", str(export), "--json")
    report = json.loads(result.out)["report"]
    assert report["objects"]["dropped"] == 3 and report["summary"].startswith("4 of 7 objects usable")
    result = cli("dataset", "prepare", str(export), "--out", str(tmp_path / "ds"))
    assert "1 polyline object dropped: not a detection shape" in " ".join(result.out.split())
    assert "dataset report: 4 of 7 objects usable on 2 of 2 images" in " ".join(result.out.split())
    result = cli("dataset", "prepare", str(export), "--out", str(tmp_path / "ds"), "--json")
    assert json.loads(result.out)["report"]["objects"]["usable"] == 4


def test_the_report_travels_with_upload_and_prepare_of_the_uploaded_dataset(tmp_path):
    from cvatflow.datasets.upload import upload_dataset

    prefix, _ = upload_dataset(CASES / "coco-brush-mask-iscrowd" / "export.zip", f"file://{tmp_path}/store")
    uploaded = tmp_path / "store" / prefix
    assert report_of(uploaded)["objects"]["usable"] == 6
    prepare(uploaded, tmp_path / "ds", val_split=0)  # the pod's prepare step: already normalised
    assert report_of(tmp_path / "ds") == report_of(uploaded)
    shutil.rmtree(tmp_path / "store")


# -- today's CVAT formats, samples written by our generator -----------------------------------------------

FORMAT_SAMPLES = DATA / "formats"


def slug(fmt: str) -> str:
    return fmt.lower().replace(" ", "-").replace(".", "")


@pytest.mark.parametrize("fmt", __import__("cvatflow.datasets.synth", fromlist=["x"]).WRITTEN_FORMATS)
def test_todays_cvat_formats_are_read_into_the_same_objects(fmt, tmp_path):
    from cvatflow.datasets.formats import DUMP_FORMATS
    from cvatflow.datasets.synth import write_format

    truth = write_format(tmp_path / "fresh", fmt, images=4, seed=0, size=64)
    sample = FORMAT_SAMPLES / slug(fmt)
    written = sorted(p.relative_to(tmp_path / "fresh") for p in (tmp_path / "fresh").rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(sample) for p in sample.rglob("*") if p.is_file())
    assert all((sample / p).read_bytes() == (tmp_path / "fresh" / p).read_bytes() for p in written), \
        "tests/data/formats is what the generator writes"
    assert fmt in DUMP_FORMATS.values()
    info = prepare(sample, tmp_path / "ds", val_split=0)
    assert info.format == fmt
    report = report_of(tmp_path / "ds")
    assert report["objects"]["usable"] == len(truth["annotations"]) and report["objects"]["dropped"] == \
        (len(truth["annotations"]) if fmt == "CVAT for video 1.1" else 0)  # each track's `outside` frame
    items = targets(tmp_path / "ds", 64)
    by_name = {Path(name).name: target for name, (_, target) in items.items()}
    for image in truth["images"]:
        target = by_name[image["file_name"]]
        anns = [a for a in truth["annotations"] if a["image_id"] == image["id"]]
        expected = sorted([x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns))
        got = sorted(target["boxes"].tolist())
        pixels = fmt == "Segmentation mask 1.1"  # masks: boxes of whole pixels
        assert np.allclose(got, expected, atol=1.5 if pixels else 0.02), fmt  # the generator rounds to 2 decimals
        assert sorted(target["labels"].tolist()) == sorted(a["category_id"] - 1 for a in anns)
        if fmt in ("Ultralytics YOLO Segmentation 1.0", "Segmentation mask 1.1"):
            for ann in anns:
                if pixels:  # the PNG holds what PIL drew: the target is exactly that
                    drawn = Image.new("L", (64, 64))
                    flat = ann["segmentation"][0]
                    ImageDraw.Draw(drawn).polygon(list(zip(flat[0::2], flat[1::2])), fill=1)
                    expected_mask = np.asarray(drawn)
                else:
                    expected_mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"],
                                                                                              64, 64)))
                assert max(iou(m.numpy(), expected_mask) for m in target["masks"]) > (0.999 if pixels else 0.95)


def test_cvat_xml_masks_and_skeletons(tmp_path):
    xml = """<annotations><version>1.1</version><meta><task><labels><label><name>a</name></label>
      <label><name>s</name><type>skeleton</type></label><label><name>p</name><parent>s</parent></label>
      </labels></task></meta>
      <image id="0" name="m.png" width="16" height="12">
        <mask label="a" source="manual" occluded="0" rle="2, 3, 4, 3" left="5" top="2" width="4" height="3" z_order="0"/>
        <skeleton label="s" source="manual" occluded="0" z_order="0"><points label="p" points="1,1" outside="0"/></skeleton>
      </image></annotations>"""
    export = tmp_path / "x"
    (export / "images").mkdir(parents=True)
    noise(16, 12, 0).save(export / "images" / "m.png")
    (export / "annotations.xml").write_text(xml)
    info = prepare(export, tmp_path / "ds", val_split=0)
    assert info.categories == ["a", "s"]  # a skeleton's parts are no classes
    report = report_of(tmp_path / "ds")
    assert entry(report, "mask", "kept") == 1 and entry(report, "skeleton", "dropped", "not a detection shape") == 1
    _, target = targets(tmp_path / "ds", 16)["m.png"]
    expected = np.zeros((12, 16), np.uint8)
    # rows of the 4 x 3 box at (5, 2), run lengths from 0: 0 0 1 1 | 1 0 0 0 | 0 1 1 1
    expected[2, 7:9] = 1
    expected[3, 5] = 1
    expected[4, 6:9] = 1
    assert torch.equal(target["masks"][0], torch.from_numpy(expected))
    assert target["boxes"].tolist() == [[5, 2, 9, 5]]
