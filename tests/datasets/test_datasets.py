"""Datasets: real sample exports, unsafe archives, COCO validation and --fix, splits, prepare, synth, the CLI."""
from __future__ import annotations

import copy
import io
import json
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from cvatflow.datasets.archive import extract_zip
from cvatflow.datasets.coco import COCO_FILE, validate
from cvatflow.datasets.ingest import detect_format, ingest
from cvatflow.datasets.prepare import SPLIT_FILE, prepare, split
from cvatflow.datasets.synth import make_coco, make_export
from cvatflow.errors import DatasetError, ProblemsError
from paths import SHARED

SAMPLES = SHARED / "reference" / "formats"
# Sample -> (format detected, why --fix is needed or None). The samples are datumaro's test assets, and two
# of them carry records no training can use on purpose.
FORMATS = {
    "coco": ("COCO 1.0", None),
    "cvat": ("CVAT for images 1.1", "a polygon has no label"),
    "datumaro": ("Datumaro 1.0", "items without media, null and out-of-range label ids, an RLE of the wrong size"),
    "labelme": ("LabelMe 3.0", None),
    "mot": ("MOT 1.1", None),
    "voc": ("PASCAL VOC 1.1", None),
    "yolo": ("YOLO 1.1", None),
}


# -- the sample exports ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FORMATS))
def test_sample_exports_normalise_to_coco_that_pycocotools_loads(name, tmp_path):
    fmt, broken = FORMATS[name]
    info = ingest(SAMPLES / name, tmp_path / "out", fix=broken is not None)
    assert info.format == fmt
    assert [p for p in info.report.problems if p.severity == "error"] == []
    coco = COCO(str(tmp_path / "out" / COCO_FILE))
    assert coco.getImgIds() and coco.getAnnIds(), "every sample has annotated images"
    for image in coco.dataset["images"]:
        assert (tmp_path / "out" / "images" / image["file_name"]).is_file()
    assert {c["name"] for c in coco.dataset["categories"]} == set(info.categories)


@pytest.mark.parametrize("name", [n for n, (_, broken) in FORMATS.items() if broken])
def test_broken_records_in_samples_are_reported_without_fix(name, tmp_path):
    # Shapes without a label are refused at once (CVAT's importer refuses them too), naming each one.
    with pytest.raises(DatasetError, match=r"without a label.*--fix"):
        ingest(SAMPLES / name, tmp_path / "out", fix=False)


def test_a_folder_that_is_no_export_is_one_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="not a CVAT export in a known format"):
        detect_format(tmp_path)


def test_tfrecord_passes_through_unchanged(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "default.tfrecord").write_bytes(b"\x00records")
    (tmp_path / "export" / "label_map.pbtxt").write_text("item { id: 1 name: 'a' }\n")
    info = ingest(tmp_path / "export", tmp_path / "out")
    assert info.format == "TFRecord 1.0" and not info.coco
    assert (tmp_path / "out" / "default.tfrecord").read_bytes() == b"\x00records"


# -- unsafe and damaged archives ---------------------------------------------------------------------------

def zip_with(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("annotations/instances_default.json", b"{}")
        for info, data in entries:
            archive.writestr(info, data)
    return path


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def absolute_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("x")
    info.filename = name  # ZipInfo() strips a leading '/'; a hostile archive keeps it
    return info


UNSAFE = {
    "zip slip": ([("../evil.txt", b"owned")], "zip slip"),
    "deep zip slip": ([("images/../../evil.txt", b"owned")], "zip slip"),
    "absolute path": ([(absolute_entry("/tmp/evil.txt"), b"owned")], "absolute path"),
    "windows drive": ([(absolute_entry("C:/evil.txt"), b"owned")], "absolute path"),
    "symlink": ([(symlink_entry("images/link"), b"../../../../etc/passwd")], "symbolic link"),
    "compression bomb": ([("images/zeros.bin", bytes(20 * 1024 * 1024))], "compression bomb"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archives_are_refused_and_nothing_is_written(case, tmp_path):
    entries, reason = UNSAFE[case]
    archive = zip_with(tmp_path / "export.zip", entries)
    work = tmp_path / "deep" / "work"
    with pytest.raises(DatasetError, match=reason) as caught:
        extract_zip(archive, work / "out")
    assert "refus" in str(caught.value)
    # refused before anything is written: no target, no staging folder, nothing beside or above it
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["export.zip"]


def test_a_1000_to_1_bomb_is_refused_before_anything_is_unpacked(tmp_path):
    archive = zip_with(tmp_path / "bomb.zip", [("a.bin", bytes(50 * 1024 * 1024))])
    info = zipfile.ZipFile(archive).getinfo("a.bin")
    assert info.file_size / info.compress_size > 1000
    with pytest.raises(DatasetError, match="compression bomb"):
        ingest(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_truncated_zip_is_one_clear_error(tmp_path):
    whole = make_export(tmp_path / "whole.zip", images=3, size=32).read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match="truncated"):
        ingest(tmp_path / "cut.zip", tmp_path / "out")


def test_a_zip_with_damaged_data_is_one_clear_error(tmp_path):
    data = bytearray(make_export(tmp_path / "whole.zip", images=3, size=32).read_bytes())
    start = data.find(b"\xff\xd8\xff")  # inside the first JPEG, which is stored uncompressed
    data[start + 100: start + 140] = bytes(40)
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="damaged|truncated"):
        ingest(tmp_path / "bad.zip", tmp_path / "out")


# -- COCO validation ------------------------------------------------------------------------------------

@pytest.fixture
def coco(tmp_path):
    """A small valid COCO document (synthetic, 64 px) and its images folder."""
    data, files = make_coco(np.random.default_rng(5), 4, 64)
    images = tmp_path / "images"
    images.mkdir()
    for name, blob in files:
        (images / name).write_bytes(blob)
    return data, images


MALFORMED = {
    "missing image file": (lambda d: d["images"][0].update(file_name="gone.jpg"), "missing from images/"),
    "box leaves the image": (lambda d: d["annotations"][0].update(bbox=[50, 50, 30, 30]), "leaves the 64x64 image"),
    "empty box": (lambda d: d["annotations"][0].update(bbox=[5, 5, 0, 7]), "is empty"),
    "box is not a box": (lambda d: d["annotations"][0].update(bbox="x"), "is not [x, y, width, height]"),
    "image id twice": (lambda d: d["images"].append(dict(d["images"][0])), "image id 1 is used twice"),
    "annotation id twice": (lambda d: d["annotations"].append(dict(d["annotations"][0])), "is used twice"),
    "category id twice": (lambda d: d["categories"].append(dict(d["categories"][0], name="x")), "used twice"),
    "unknown category": (lambda d: d["annotations"][0].update(category_id=99), "category 99, which does not exist"),
    "unknown image": (lambda d: d["annotations"][0].update(image_id=999), "image 999, which does not exist"),
    "odd polygon": (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3, 4, 5]]), "even number"),
    "polygon of text": (lambda d: d["annotations"][0].update(segmentation=[[1, 2, "a", 4, 5, 6]]), "not numbers"),
    "RLE counts": (lambda d: d["annotations"][0].update(segmentation={"size": [64, 64], "counts": [1, 2]}),
                   "do not add up"),
    "RLE size": (lambda d: d["annotations"][0].update(segmentation={"size": [10, 10], "counts": [100]}),
                 "does not match the image"),
    "segmentation of another kind": (lambda d: d["annotations"][0].update(segmentation=5), "polygons or an RLE"),
}


def test_a_valid_document_has_no_problems(coco):
    data, images = coco
    report = validate(data, images)
    assert report.problems == [] and report.images == 4 and sum(report.per_category.values()) == report.annotations


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_each_malformed_record_is_one_clear_problem(case, coco):
    data, images = coco
    mutate, message = MALFORMED[case]
    mutate(data)
    problems = validate(data, images).problems
    assert len(problems) == 1, [str(p) for p in problems]
    assert message in str(problems[0])
    assert problems[0].path and problems[0].fix  # where, and what to do


def test_fix_clips_boxes_and_drops_what_cannot_be_used(coco):
    data, images = coco
    count = len(data["annotations"])
    data["annotations"][0]["bbox"] = [50, 50, 30, 30]
    data["annotations"][1]["bbox"] = [5, 5, 0, 7]
    data["annotations"][2]["category_id"] = 99
    data["images"].append({"id": 77, "file_name": "gone.jpg", "width": 64, "height": 64})
    report = validate(data, images, fix=True)
    assert report.problems == [] and report.fixed == 4
    assert data["annotations"][0]["bbox"] == [50, 50, 14, 14]
    assert len(data["annotations"]) == count - 2 and len(data["images"]) == 4


# -- splits and prepare ----------------------------------------------------------------------------------

IMAGES = [{"id": i, "subset": "Validation" if i % 4 == 0 else "Train", "tags": ["val"] if i % 5 == 0 else []}
          for i in range(1, 21)]


def test_random_split_is_seeded_disjoint_and_the_asked_size():
    first, again = split(IMAGES, "random", 25, seed=3), split(IMAGES, "random", 25, seed=3)
    assert first == again and len(first["val"]) == 5
    assert sorted(first["train"] + first["val"]) == list(range(1, 21))
    assert split(IMAGES, "random", 25, seed=4)["val"] != first["val"]


def test_split_by_subsets_and_by_tags_follows_cvat():
    assert split(IMAGES, "subsets")["val"] == [4, 8, 12, 16, 20]
    assert split(IMAGES, "tags")["val"] == [5, 10, 15, 20]


@pytest.mark.parametrize("method,kwargs,message", [
    ("tags", {}, "no image is marked"),
    ("random", {"val_percent": 100}, "from 0 to 99"),
    ("alphabetical", {}, "use one of: random, tags, subsets"),
])
def test_impossible_splits_are_clear_errors(method, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        split([{"id": 1}, {"id": 2}], method, **kwargs)


def test_prepare_writes_the_split_and_points_file_names_at_the_mount(tmp_path):
    export = make_export(tmp_path / "export.zip", images=10, seed=2, size=48)
    prepare(export, tmp_path / "data", val_split=20, image_prefix="/mnt/data/datasets/images/")
    data = json.loads((tmp_path / "data" / COCO_FILE).read_text())
    division = json.loads((tmp_path / "data" / SPLIT_FILE).read_text())
    assert len(division["val"]) == 2 and len(division["train"]) == 8
    for image in data["images"]:
        assert image["file_name"].startswith("/mnt/data/datasets/images/synth_")
        assert (tmp_path / "data" / "images" / Path(image["file_name"]).name).is_file()


def test_prepare_refuses_problems_and_leaves_nothing_half_written(tmp_path):
    export = make_export(tmp_path / "export.zip", images=3, size=48)
    broken = tmp_path / "broken"
    ingest(export, broken)
    data = json.loads((broken / COCO_FILE).read_text())
    data["annotations"][0]["bbox"] = [40, 40, 30, 30]
    (broken / COCO_FILE).write_text(json.dumps(data))
    with pytest.raises(ProblemsError, match="1 problem"):
        prepare(broken, tmp_path / "data")
    assert not (tmp_path / "data").exists()
    assert prepare(broken, tmp_path / "data", fix=True).report.fixed == 1


# -- the synthetic generator ---------------------------------------------------------------------------

def test_synthetic_exports_are_the_same_bytes_for_the_same_seed(tmp_path):
    a = make_export(tmp_path / "a.zip", images=4, seed=11, size=48).read_bytes()
    b = make_export(tmp_path / "b.zip", images=4, seed=11, size=48).read_bytes()
    c = make_export(tmp_path / "c.zip", images=4, seed=12, size=48).read_bytes()
    assert a == b and a != c


def test_a_synthetic_export_is_a_valid_cvat_coco_export(tmp_path):
    export = make_export(tmp_path / "s.zip", images=5, size=64)
    names = zipfile.ZipFile(export).namelist()
    assert "annotations/instances_default.json" in names and sum(n.startswith("images/") for n in names) == 5
    info = ingest(export, tmp_path / "out")
    assert info.format == "COCO 1.0" and info.report.problems == []
    assert info.categories == ["circle", "square", "triangle"]
    coco = COCO(str(tmp_path / "out" / COCO_FILE))
    for ann in coco.dataset["annotations"]:
        assert coco.annToMask(ann).sum() > 0  # every shape has a mask


# -- the CLI ------------------------------------------------------------------------------------------------

def no_traceback(result) -> bool:
    return "Traceback" not in result.out + result.err


def test_cli_synth_inspect_prepare_upload(cli, tmp_path):
    export = tmp_path / "synth.zip"
    assert cli("dataset", "synth", "--out", export, "--images", 4, "--seed", 1, "--size", 48).code == 0
    inspected = cli("dataset", "inspect", export, "--json")
    assert inspected.code == 0 and json.loads(inspected.out)["images"] == 4
    shown = cli("dataset", "inspect", export)
    assert shown.code == 0 and "COCO 1.0" in shown.out and "circle" in shown.out
    prepared = cli("dataset", "prepare", export, "--out", tmp_path / "data", "--val-split", 25)
    assert prepared.code == 0 and "1 val" in prepared.out
    store = tmp_path / "store"
    uploaded = cli("dataset", "upload", export, "--to", store.as_uri(), "--task", 9)
    assert uploaded.code == 0
    prefix = uploaded.out.strip().splitlines()[-1]
    assert prefix.startswith("annotations/9/") and prefix.endswith("/")
    assert (store / prefix / "annotations" / "instances_default.json").is_file()


@pytest.mark.parametrize("args,message", [
    (("dataset", "inspect", "missing.zip"), "no such export"),
    (("dataset", "inspect", "{cut}"), "truncated"),
    (("dataset", "prepare", "{good}", "--out", "{tmp}/d", "--split-by", "tags"), "no image is marked"),
    (("dataset", "upload", "{good}", "--to", "ftp://nowhere/x"), "uses the scheme 'ftp', which cvatflow cannot store to"),
    (("dataset", "dump", "--cvat-url", "http://127.0.0.1:9", "--cvat-task", "1", "--format", "cvat_png",
      "--to", "file:///tmp/x"), "cvat_coco, cvat_voc"),
])
def test_cli_bad_input_is_one_error_line_and_exit_1(cli, tmp_path, monkeypatch, args, message):
    good = make_export(tmp_path / "good.zip", images=2, size=32)
    (tmp_path / "cut.zip").write_bytes(good.read_bytes()[:500])
    monkeypatch.chdir(tmp_path)
    result = cli(*[a.format(good=good, cut=tmp_path / "cut.zip", tmp=tmp_path) for a in args])
    assert result.code == 1 and no_traceback(result)
    assert message in result.err and result.err.strip().startswith("error:")


def test_cli_inspect_exits_1_when_the_export_has_problems(cli, tmp_path):
    data, files = make_coco(np.random.default_rng(0), 2, 32)
    data["annotations"][0]["bbox"] = [30, 30, 20, 20]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("annotations/instances_default.json", json.dumps(data))
        for name, blob in files:
            archive.writestr(f"images/{name}", blob)
    (tmp_path / "e.zip").write_bytes(buffer.getvalue())
    result = cli("dataset", "inspect", tmp_path / "e.zip")
    assert result.code == 1 and "leaves the 32x32 image" in result.out and no_traceback(result)


def test_merge_keeps_subsets_and_renumbers_ids(tmp_path):
    info = ingest(SAMPLES / "coco", tmp_path / "out")
    data = json.loads((tmp_path / "out" / COCO_FILE).read_text())
    assert {i["subset"] for i in data["images"]} == {"train", "val"}
    assert sorted(i["id"] for i in data["images"]) == [1, 2]
    assert info.categories == ["a", "b", "c"]
    assert copy.deepcopy(data) == data
