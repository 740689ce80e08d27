"""cvatflow.cvat_function through cvat_sdk's annotate_task against the fake CVAT: labels, types and coordinates
of the uploaded shapes agree with `predict` on the same frames, for a tiny Mask R-CNN and a tiny DETR."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cvatflow.cvat import CvatClient
from fake_cvat import FakeCvat, FakeTask
from model_states import CLASSES, tiny_state

THRESHOLD = 0.2


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    root = tmp_path_factory.mktemp("states")
    return {family: tiny_state(family, root / family) for family in ("maskrcnn", "detr")}


def _predict(family, state, task, tmp_path):
    """`cvatflow-train <family> predict` on the task's frames: COCO results by frame index."""
    from cvatflow.training.predict import predict

    images = tmp_path / "frames" / "images"
    images.mkdir(parents=True)
    for name, data in task.frames:
        (images / name).write_bytes(data)
    predict(family, state, images.parent, tmp_path / "pred", threshold=THRESHOLD, device="cpu")
    coco = json.loads((tmp_path / "pred/annotations/instances_default.json").read_text())
    frame = {img["id"]: task.frame_of(img["file_name"]) for img in coco["images"]}
    return [{**ann, "frame": frame[ann["image_id"]],
             "label": coco["categories"][ann["category_id"] - 1]["name"]} for ann in coco["annotations"]]


def _annotate(state, task, **kwargs):
    from cvatflow.cvat_function import create

    function = create(model=str(state), threshold=THRESHOLD, device="cpu", **{k: v for k, v in kwargs.items()
                                                                               if k == "shape"})
    options = {k: v for k, v in kwargs.items() if k != "shape"}
    with FakeCvat(tasks=[task]) as cvat, CvatClient(cvat.url, cvat.token) as client:
        client.auto_annotate(task.id, function, **options)
        calls = list(cvat.calls)
    names = {label_id: name for name, label_id in task.label_ids.items()}
    return function, [{**s, "label": names[s["label_id"]]} for s in task.annotations["shapes"]], calls


def _by_frame(items):
    out = {}
    for item in items:
        out.setdefault(item["frame"], []).append(item)
    return out


def test_detr_rectangles_match_predict(states, tmp_path):
    task = FakeTask(id=42, labels=[*CLASSES, "person"], images=3, size=64, annotations={
        "version": 0, "tags": [], "shapes": [], "tracks": []})
    expected = _predict("detr", states["detr"], task, tmp_path)
    function, shapes, calls = _annotate(states["detr"], task)
    assert ("PATCH", "/api/tasks/42/annotations/") in calls  # added, not replacing
    assert [label.name for label in function.spec.labels] == CLASSES
    assert expected and len(shapes) == len(expected)
    assert {s["type"] for s in shapes} == {"rectangle"} and {s["source"] for s in shapes} == {"auto"}
    got, want = _by_frame(shapes), _by_frame(expected)
    assert set(got) == set(want) == {0, 1, 2}
    for frame, items in want.items():
        for shape, ann in zip(got[frame], items):
            assert shape["label"] == ann["label"]
            x, y, w, h = ann["bbox"]
            np.testing.assert_allclose(shape["points"], [x, y, x + w, y + h], atol=0.05)
    assert function.counts.detections == function.counts.shapes == len(expected)


def test_maskrcnn_masks_and_polygons_match_predict(states, tmp_path):
    from cvat_sdk.masks import decode_mask
    from pycocotools import mask as mask_utils

    def fresh():
        return FakeTask(id=7, labels=CLASSES, images=3, size=64)

    task = fresh()
    expected = _predict("maskrcnn", states["maskrcnn"], task, tmp_path)
    manual = len(task.annotations["shapes"])
    function, shapes, calls = _annotate(states["maskrcnn"], task, clear_existing=True)
    assert ("PUT", "/api/tasks/7/annotations/") in calls and manual  # the manual shapes were replaced
    assert {s["source"] for s in shapes} == {"auto"} and {s["type"] for s in shapes} == {"mask"}
    kept = [a for a in expected if mask_utils.area(a["segmentation"]) > 0]
    assert kept and len(shapes) == len(kept) and function.counts.dropped_empty == len(expected) - len(kept)
    for shape, ann in zip(sorted(shapes, key=lambda s: s["frame"]), sorted(kept, key=lambda a: a["frame"])):
        assert shape["label"] == ann["label"] and shape["frame"] == ann["frame"]
        np.testing.assert_array_equal(decode_mask(shape["points"], image_width=64, image_height=64),
                                      mask_utils.decode(ann["segmentation"]).astype(bool))

    task = fresh()
    function, polys, _ = _annotate(states["maskrcnn"], task, clear_existing=True, conv_mask_to_poly=True)
    assert {s["type"] for s in polys} == {"polygon"} and len(polys) >= len(kept)
    for poly in polys:
        xs, ys = poly["points"][0::2], poly["points"][1::2]
        assert len(xs) >= 3 and 0 <= min(xs) and max(xs) < 64 and 0 <= min(ys) and max(ys) < 64
    # shape=polygon: the function traces the same polygons itself, for tasks whose labels are polygons
    task = fresh()
    task.label_types = {name: "polygon" for name in CLASSES}
    _, own, _ = _annotate(states["maskrcnn"], task, shape="polygon", clear_existing=True)
    assert [(s["frame"], s["label"], s["points"]) for s in own] == [(s["frame"], s["label"], s["points"])
                                                                      for s in polys]


def test_unmatched_labels_are_skipped_and_bad_parameters_are_clear(states, tmp_path):
    from cvatflow.cvat_function import create
    from cvatflow.errors import TrainingError

    def task(labels):
        return FakeTask(id=9, labels=labels, images=2, size=64, annotations={
            "version": 0, "tags": [], "shapes": [], "tracks": []})

    _, every, _ = _annotate(states["detr"], task(CLASSES))
    missing = every[0]["label"]  # a label the model predicts, left out of the next task
    _, shapes, _ = _annotate(states["detr"], task([c for c in CLASSES if c != missing]))
    assert len(shapes) == len([s for s in every if s["label"] != missing])
    assert missing not in {s["label"] for s in shapes}
    with pytest.raises(TrainingError, match="boxes only"):
        create(model=str(states["detr"]), shape="polygon")
    with pytest.raises(TrainingError, match="does not exist"):
        create(model=str(tmp_path / "nowhere"))


def test_the_demo_s_cvat_cli_line_parses_as_cvat_cli_reads_it():
    import argparse
    import shlex

    from cvat_cli._internal.commands_all import COMMANDS
    from cvat_cli._internal.common import configure_common_arguments

    from cvatflow.demo import cvat_cli_command

    line = cvat_cli_command("/tmp/my runs/model", task="42")
    parser = argparse.ArgumentParser()
    configure_common_arguments(parser)
    COMMANDS.configure_parser(parser)
    args = parser.parse_args(shlex.split(line.replace("$CVAT_URL", "http://cvat:8080"))[1:])
    assert args.task_id == 42 and args.function_module == "cvatflow.cvat_function"
    assert args.function_parameters == {"model": "/tmp/my runs/model"}


def test_cvat_cli_auto_annotate_runs_the_module_as_the_readme_writes_it(states, tmp_path):
    """The README's command, run by the real cvat-cli against the fake CVAT (frames cached under tmp_path)."""
    import os
    import subprocess
    import sys

    task = FakeTask(id=42, labels=[*CLASSES, "person"], images=2, annotations={
        "version": 0, "tags": [], "shapes": [], "tracks": []})
    with FakeCvat(tasks=[task]) as cvat:
        env = {**os.environ, "CVAT_ACCESS_TOKEN": cvat.token, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        done = subprocess.run([sys.executable, "-m", "cvat_cli", "--server-host", cvat.url, "task", "auto-annotate",
                               "42", "--function-module", "cvatflow.cvat_function", "-p",
                               f"model=str:{states['detr']}", "-p", "device=str:cpu", "--conf-threshold", "0.0"],
                              env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    shapes = task.annotations["shapes"]
    assert shapes and {s["type"] for s in shapes} == {"rectangle"} and {s["frame"] for s in shapes} == {0, 1}
    assert {s["label_id"] for s in shapes} <= {task.label_ids[c] for c in CLASSES}
