"""Shapes without a label (CVAT XML label="", Datumaro "label_id": null): refused naming the shape, or dropped with --fix."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bad_inputs import CVAT_BOX, CVAT_HEAD, cvat_xml, format_files, png
from cvatflow.datasets.ingest import ingest
from cvatflow.datasets.report import DROPPED, KEPT
from cvatflow.errors import DatasetError

UNLABELLED_BOX = CVAT_BOX.replace('label="circle"', 'label=""')


def folder(path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def cvat_export(path: Path) -> Path:
    """CVAT for images: a.png with a labelled box, then a box with label=""."""
    return folder(path, {"annotations.xml": cvat_xml(shapes=CVAT_BOX + UNLABELLED_BOX), "images/a.png": png()})


def test_a_cvat_xml_shape_without_a_label_is_refused_naming_the_shape_and_its_image(tmp_path):
    with pytest.raises(DatasetError) as caught:
        ingest(cvat_export(tmp_path / "export"), tmp_path / "out")
    message = str(caught.value)
    assert "annotations.xml" in message and "<box> 1 on image 'a.png'" in message
    assert "--fix" in message and "label" in message
    assert "category 0" not in message  # a category the user's file never had
    assert not (tmp_path / "out").exists()


def test_with_fix_a_cvat_xml_shape_without_a_label_is_dropped_and_counted(tmp_path):
    info = ingest(cvat_export(tmp_path / "export"), tmp_path / "out", fix=True)
    report = info.ingest
    assert report.counts[("object", "rectangle", DROPPED, "no label")] == 1
    assert report.counts[("object", "rectangle", KEPT, "")] == 1
    assert report.examples[("object", "rectangle", DROPPED, "no label")] == ["<box> 1 on image 'a.png'"]
    assert info.categories == ["circle"]
    coco = json.loads((tmp_path / "out" / "annotations" / "instances_default.json").read_text())
    assert [a["category_id"] for a in coco["annotations"]] == [1]


def test_a_cvat_video_track_without_a_label_is_refused_naming_its_frame(tmp_path):
    head = CVAT_HEAD.replace("</labels>", "</labels><original_size><width>32</width><height>32</height>"
                                          "</original_size>")
    track = ('<track id="4" label="" source="manual"><box frame="0" keyframe="1" outside="0" occluded="0" '
             'xtl="1" ytl="2" xbr="10" ybr="12" z_order="0"/></track>')
    export = folder(tmp_path / "export", {"annotations.xml": (head + track + "</annotations>").encode(),
                                          "images/frame_000000.png": png()})
    with pytest.raises(DatasetError, match=r"<box> of <track> 4 at frame 0 \('frame_000000.png'\)"):
        ingest(export, tmp_path / "out")


def datumaro_export(path: Path, label: object) -> Path:
    """Datumaro 1.0: item `a` with a bbox of label 0, then one with `label` ("missing" leaves label_id out)."""
    second = {"id": 1, "type": "bbox", "attributes": {}, "group": 0, "z_order": 0, "bbox": [1, 1, 3, 3]}
    if label != "missing":
        second["label_id"] = label
    doc = {"info": {}, "categories": {"label": {"labels": [{"name": "cat", "parent": "", "attributes": []}],
                                                "attributes": []}},
           "items": [{"id": "a", "annotations": [
               {"id": 0, "type": "bbox", "attributes": {}, "group": 0, "label_id": 0, "z_order": 0,
                "bbox": [1, 1, 3, 3]}, second], "image": {"path": "a.png", "size": [32, 32]}}]}
    return folder(path, {"annotations/default.json": json.dumps(doc).encode(), "images/default/a.png": png()})


@pytest.mark.parametrize("label", [None, "missing", 7])
def test_a_datumaro_annotation_without_a_label_is_refused_naming_the_item_and_annotation(label, tmp_path):
    with pytest.raises(DatasetError) as caught:
        ingest(datumaro_export(tmp_path / "export", label), tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "export"))  # the user's folder, never a temporary one
    assert "annotations/default.json item 'a' annotations[1] (bbox, id 1)" in message
    assert ("no label_id" if label != 7 else "label_id 7, not one of the 1 labels") in message
    assert "--fix" in message and "category 0" not in message and "category 8" not in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("label", "reason"), [(None, "no label"), ("missing", "no label"), (7, "unknown category")])
def test_with_fix_a_datumaro_annotation_without_a_label_is_dropped_and_counted(label, reason, tmp_path):
    info = ingest(datumaro_export(tmp_path / "export", label), tmp_path / "out", fix=True)
    report = info.ingest
    assert report.counts[("object", "rectangle", DROPPED, reason)] == 1
    assert report.examples[("object", "rectangle", DROPPED, reason)] == [
        "annotations/default.json item 'a' annotations[1] (bbox, id 1)"]
    assert report.usable == 1 and report.total() == 2
    assert not info.report.problems  # nothing left that refers to a category the file never had


def test_a_labelme_object_without_a_name_is_refused_naming_the_export_not_a_working_folder(tmp_path):
    files = format_files("labelme")
    files["a.xml"] = files["a.xml"].replace(b"<name>circle</name>", b"<name></name>")
    with pytest.raises(DatasetError) as caught:
        ingest(folder(tmp_path / "export", files), tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'export'}: 1 shape without a label")  # not .../export/labelme
    assert "item 'a' annotations[0] (polygon, id 0) has no label;" in message
