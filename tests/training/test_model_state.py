"""ModelState: the one loader of a model state (folder, run output, .tar, store URI); the family is recorded."""
from __future__ import annotations

import json
import tarfile

import pytest

from cvatflow.errors import TrainingError
from cvatflow.training.state import CONFIG, WEIGHTS, ModelState


def _state(folder, settings, classes=("a", "b")):
    folder.mkdir(parents=True)
    (folder / CONFIG).write_text(json.dumps({"settings": settings, "class_title_to_idx": {
        c: i for i, c in enumerate(classes)}}))
    (folder / WEIGHTS).write_bytes(b"not read by ModelState.read")
    return folder


def test_read_takes_the_recorded_family_and_finds_the_state_in_a_run_output(tmp_path):
    _state(tmp_path / "run/output/model", {"model": "rtdetr", "variant": "rtdetr_v2_r18vd", "image_size": 320})
    state = ModelState.read(tmp_path / "run")
    assert (state.family, state.variant, state.classes, state.image_size) == ("rtdetr", "rtdetr_v2_r18vd",
                                                                              ("a", "b"), 320)
    assert state.weights == tmp_path / "run/output/model" / WEIGHTS


def test_a_state_without_a_recorded_family_takes_the_one_family_of_its_variant(tmp_path):
    assert ModelState.read(_state(tmp_path / "m", {"variant": "maskrcnn_mobilenet_v3"})).family == "maskrcnn"
    with pytest.raises(TrainingError, match="settings.model is missing.*belongs to no single family"):
        ModelState.read(_state(tmp_path / "x", {"variant": "yolo_v8"}))
    with pytest.raises(TrainingError, match="settings.model 'yolo' is not a model family"):
        ModelState.read(_state(tmp_path / "y", {"model": "yolo", "variant": "detr_small"}))
    with pytest.raises(TrainingError, match="--model .*nowhere: does not exist"):
        ModelState.read(tmp_path / "nowhere")


def test_fetch_reads_a_store_uri_folder_or_tar(tmp_path):
    folder = _state(tmp_path / "store/outputs/r1/model", {"model": "detr", "variant": "detr_small"})
    assert ModelState.fetch(f"file://{tmp_path}/store/outputs/r1/model").family == "detr"
    with tarfile.open(tmp_path / "store/m.tar", "w") as archive:
        for path in folder.iterdir():
            archive.add(path, arcname=path.name)
    assert ModelState.fetch(f"file://{tmp_path}/store/m.tar").classes == ("a", "b")
    with pytest.raises(TrainingError, match="name a folder or object under the bucket"):
        ModelState.fetch("s3://bucket")
