"""The input limits are settings (config.InputLimits, CVATFLOW_MAX_*) and every reader obeys them."""
from __future__ import annotations

import random
import zipfile

import pytest

from bad_inputs import base_coco, cvat_xml, export_files, format_files, write_zip
from cvatflow.config import ConfigError, InputLimits, input_limits
from cvatflow.datasets.ingest import ingest
from cvatflow.errors import DatasetError
from paths import ROOT


def folder(path, files):
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def test_the_defaults_are_the_limits_cvatflow_had():
    limits = input_limits({})
    assert (limits.archive_bytes, limits.archive_files, limits.archive_ratio, limits.entry_name) == \
        (50 * 1024 ** 3, 2_000_000, 200, 4096)
    assert (limits.images, limits.annotations, limits.categories, limits.name_length, limits.coordinates,
            limits.image_side) == (10_000_000, 50_000_000, 100_000, 1024, 1_000_000, 100_000)
    assert all(field.description for field in InputLimits.model_fields.values())  # each one documented


def test_environment_variables_set_them_and_bad_values_name_the_variable():
    assert input_limits({"CVATFLOW_MAX_IMAGES": "1_000", "CVATFLOW_MAX_ARCHIVE_RATIO": "50"}).images == 1000
    for value in ("0", "-3", "ten", "1.5e400"):
        with pytest.raises(ConfigError, match="CVATFLOW_MAX_IMAGES"):
            input_limits({"CVATFLOW_MAX_IMAGES": value})


@pytest.mark.parametrize(("variable", "value", "files", "message"), [
    ("CVATFLOW_MAX_IMAGES", "1", export_files(), "over the limit of 1 \\(CVATFLOW_MAX_IMAGES\\)"),
    ("CVATFLOW_MAX_ANNOTATIONS", "1", export_files(), "CVATFLOW_MAX_ANNOTATIONS"),
    ("CVATFLOW_MAX_CATEGORIES", "1", export_files(), "CVATFLOW_MAX_CATEGORIES"),
    ("CVATFLOW_MAX_NAME_LENGTH", "5", export_files(), "CVATFLOW_MAX_NAME_LENGTH"),
    ("CVATFLOW_MAX_IMAGE_SIDE", "16", export_files(), "CVATFLOW_MAX_IMAGE_SIDE"),
    ("CVATFLOW_MAX_COORDINATES", "4", export_files(), "CVATFLOW_MAX_COORDINATES"),
    ("CVATFLOW_MAX_ANNOTATION_FILE_BYTES", "100", format_files("cvat"), "CVATFLOW_MAX_ANNOTATION_FILE_BYTES"),
    ("CVATFLOW_MAX_IMAGE_SIDE", "16", format_files("cvat"), "CVATFLOW_MAX_IMAGE_SIDE"),
    ("CVATFLOW_MAX_COORDINATES", "4", {**format_files("cvat"), "annotations.xml": cvat_xml(
        shapes='<polygon label="circle" points="1,2;10,2;10,12"/>')}, "CVATFLOW_MAX_COORDINATES"),
    ("CVATFLOW_MAX_MASK_PIXELS", "1000", {**format_files("cvat"), "annotations.xml": cvat_xml(
        shapes='<mask label="circle" rle="2, 3, 4, 3" left="5" top="2" width="4" height="3"/>')},
     "CVATFLOW_MAX_MASK_PIXELS"),
    ("CVATFLOW_MAX_ANNOTATIONS", "1", {**format_files("ultralytics"),
                                       "labels/train/a.txt": b"0 0.5 0.5 0.2 0.2\n0 0.4 0.4 0.1 0.1\n"},
     "CVATFLOW_MAX_ANNOTATIONS"),
    ("CVATFLOW_MAX_CATEGORIES", "1", {**format_files("ultralytics"), "data.yaml": b"names: [a, b]\n"},
     "CVATFLOW_MAX_CATEGORIES"),
    ("CVATFLOW_MAX_ENTRY_NAME", "8", export_files(), "CVATFLOW_MAX_ENTRY_NAME"),
    ("CVATFLOW_MAX_ARCHIVE_FILES", "2", export_files(), "CVATFLOW_MAX_ARCHIVE_FILES"),
    ("CVATFLOW_MAX_ARCHIVE_BYTES", "500", export_files(), "CVATFLOW_MAX_ARCHIVE_BYTES"),
])
@pytest.mark.parametrize("packed", [True, False], ids=["zip", "folder"])
def test_each_limit_is_read_from_its_variable(variable, value, files, message, packed, tmp_path, monkeypatch):
    export = write_zip(tmp_path / "export.zip", files) if packed else folder(tmp_path / "export", files)
    ingest(export, tmp_path / "fine")  # within the default limits
    monkeypatch.setenv(variable, value)
    with pytest.raises(DatasetError, match=message) as caught:
        ingest(export, tmp_path / "out")
    assert str(export) in str(caught.value) and ".ingest-" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_the_zip_ratio_is_a_setting(tmp_path, monkeypatch):
    rng = random.Random(0)  # blocks of 100 random bytes and 900 zeros: deflate packs them about 8 times
    data = b"".join(rng.randbytes(100) + b"\0" * 900 for _ in range(2100))
    export = write_zip(tmp_path / "export.zip", {**export_files(), "images/zeros.png": data})
    with zipfile.ZipFile(export) as zf:
        ratio = zf.getinfo("images/zeros.png").file_size / zf.getinfo("images/zeros.png").compress_size
    assert ratio < 200
    monkeypatch.setenv("CVATFLOW_MAX_ARCHIVE_RATIO", str(int(ratio // 2)))
    with pytest.raises(DatasetError, match="CVATFLOW_MAX_ARCHIVE_RATIO"):
        ingest(export, tmp_path / "out")


def test_a_bad_limit_is_one_error_line_in_the_cli(cli, tmp_path, monkeypatch):
    export = write_zip(tmp_path / "export.zip", export_files(base_coco()))
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CVATFLOW_MAX_IMAGES", "many")
    result = cli("dataset", "prepare", export, "--out", tmp_path / "out")
    assert result.code == 1 and "Traceback" not in result.err + result.out
    expected = ("error: CVATFLOW_MAX_IMAGES='many': Input should be a valid integer, unable to parse string as an "
                "integer; give a positive whole number (or unset it for the default 10000000)")
    assert [line for line in result.err.splitlines() if line.startswith("error:")] == [expected]


def test_the_readme_lists_every_limit_with_its_default():

    from cvatflow.config import LIMIT_VARIABLES

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Limits on exports"):]
    for variable, name in LIMIT_VARIABLES.items():
        default = InputLimits.model_fields[name].default
        assert f"| `{variable}` | {default:g} " in section or f"| `{variable}` | {default} " in section, variable
