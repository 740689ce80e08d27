"""The typed readers of CVAT XML, YOLO, VOC, MOT and LabelMe: what real exports hold is read, names stay inside."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bad_inputs import cvat_xml, format_files, png
from cvatflow.datasets.ingest import ingest
from cvatflow.errors import DatasetError
from paths import SHARED

REFERENCE = SHARED / "reference" / "formats"


def folder(path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["../secret.png", "../../secret.png"])
def test_an_image_name_outside_a_folder_export_is_refused_not_copied(name, tmp_path):
    # The reader looks for images beside the XML: a `..` name would copy a file of this machine into the dataset.
    (tmp_path / "secret.png").write_bytes(png())
    export = folder(tmp_path / "export", {"annotations.xml": cvat_xml(
        image=f'<image id="0" name="{name}" width="32" height="32">{{shapes}}</image>'), "images/a.png": png()})
    with pytest.raises(DatasetError, match="goes up with '..'"):
        ingest(export, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["cvat", "video", "ultralytics", "yolo", "voc", "mot", "labelme"])
def test_a_small_export_of_each_format_is_read_whole(fmt, tmp_path):
    info = ingest(folder(tmp_path / "export", format_files(fmt)), tmp_path / "out")
    assert info.ingest.summary().startswith("1 of 1 objects usable on 1 of 1 images")


@pytest.mark.parametrize("sample", ["cvat", "voc", "mot", "yolo", "labelme", "datumaro"])
def test_the_reference_samples_of_cvat_formats_are_accepted(sample, tmp_path):
    if not (REFERENCE / sample).is_dir():
        pytest.fail(f"{REFERENCE / sample}: the shared reference samples are missing")
    shutil.copytree(REFERENCE / sample, tmp_path / sample)
    info = ingest(tmp_path / sample, tmp_path / "out", fix=True)
    assert info.ingest.summary()


def test_cvat_writes_these_values_and_they_are_read(tmp_path):
    # As CVAT writes them: fractions with zeros, "0.00" rotation, empty labels, attributes, a skeleton's
    # empty points, an image without shapes, a subset; width written as a float by some writers.
    shapes = ('<box label="circle" source="manual" occluded="1" xtl="1.00" ytl="2.50" xbr="10.00" ybr="12.00" '
              'rotation="0.00" z_order="0"><attribute name="color">red</attribute></box>'
              '<polyline label="" points="1.0,2;3,4" />'
              '<skeleton label="circle" points="" rotation="0.00" z_order="0"><points label="p" points="1,1" '
              'outside="1"/></skeleton>')
    export = folder(tmp_path / "export", {"annotations.xml": cvat_xml(
        image='<image id="0" name="a.png" subset="Train" width="32.0" height="32">{shapes}</image>',
        shapes=shapes), "images/a.png": png()})
    info = ingest(export, tmp_path / "out", fix=True)
    assert info.ingest.summary().startswith("1 of 3 objects usable")
