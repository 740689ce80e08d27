"""The Smart Tool model in CVAT: the cvat-sdk InteractionFunction and the nuclio interactor answer CVAT's shapes."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from cvatflow.errors import CvatflowError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An (untrained) tiny interactive model state, as training writes it."""
    from cvatflow.models.interactive import InteractiveAdapter
    from cvatflow.training import state as statelib

    adapter = InteractiveAdapter()
    settings = adapter.settings("click_tiny", 64)
    model = adapter.build(settings, 1, False)
    folder = tmp_path_factory.mktemp("state") / "model"
    statelib.write_model_state(folder, statelib.model_config(settings, ["obj"], "bitmap"), model.state_dict())
    return folder


def _disk_segment(model, image, clicks, device=None, radius=5.0):
    """A stand-in model: probability 1 within 10 model pixels of the first positive click."""
    h, w = image.shape[:2]
    x, y, _ = next(c for c in clicks if c[2])
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return (((xx - x) ** 2 + (yy - y) ** 2) <= 100).astype(np.float32)


def _png(width=200, height=120) -> Image.Image:
    return Image.fromarray(np.full((height, width, 3), 90, np.uint8))


def test_interaction_function_answers_one_mask_shape(model_dir, monkeypatch):
    import cvat_sdk.auto_annotation as cvataa
    from cvat_sdk.masks import decode_mask

    from cvatflow import interactor
    from cvatflow.models import interactive

    function = interactor.create(str(model_dir))
    assert isinstance(function.spec, cvataa.InteractionFunctionSpec)
    assert function.spec.min_pos_points == 1 and function.spec.min_neg_points == 0
    assert function.spec.min_bounding_boxes is None  # no box prompt

    class Prompts:
        pos_points = ((100.0, 60.0),)
        neg_points = ((10.0, 10.0),)
        bounding_box = None

    monkeypatch.setattr(interactive, "segment", _disk_segment)
    [shape] = function.detect(None, _png(), Prompts())
    assert isinstance(shape, cvataa.InteractionResultShape) and shape.type == "mask"
    x1, y1, x2, y2 = shape.points[-4:]
    # the clicks' window (box grown 2x per side) is the whole 200x120 image, seen at 64/200 = 0.32: the radius-10
    # model-pixel disk is a radius-31 disk around (100, 60) in the image
    assert x1 < 100 < x2 and y1 < 60 < y2 and abs((x2 - x1) - 62) <= 2
    bitmap = decode_mask(shape.points, image_width=200, image_height=120)
    assert bitmap[60, 100] and not bitmap[10, 10]


def test_nuclio_handler_answers_cvats_interactor_shape(model_dir, monkeypatch):
    from cvatflow.interactor import InteractorHandler
    from cvatflow.models import interactive

    buffer = io.BytesIO()
    _png().save(buffer, "PNG")
    body = {"image": base64.b64encode(buffer.getvalue()).decode(), "pos_points": [[100, 60]], "neg_points": [],
            "obj_bbox": None}
    handler = InteractorHandler(str(model_dir))
    answer = handler(body)  # the real (untrained) model: only the shape of the answer is known
    assert set(answer) == {"mask", "points"}
    mask = np.array(answer["mask"])
    assert mask.shape == (120, 200) and set(np.unique(mask)) <= {0, 255}
    monkeypatch.setattr(interactive, "segment", _disk_segment)
    answer = handler(body)
    mask = np.array(answer["mask"])
    assert mask[60, 100] == 255 and mask[10, 10] == 0
    assert answer["points"] and all(len(p) == 2 for p in answer["points"])
    xs = [p[0] for p in answer["points"]]
    assert min(xs) < 100 < max(xs)
    with pytest.raises(CvatflowError, match="pos_points"):
        handler({**body, "pos_points": []})
    with pytest.raises(CvatflowError, match="base64"):
        handler({"pos_points": [[1, 1]]})
    with pytest.raises(CvatflowError, match="neg_points"):
        handler({**body, "neg_points": "x"})


def test_export_serverless_writes_an_interactor(model_dir, tmp_path):
    import yaml

    from cvatflow.serverless import export

    out = export(model_dir, tmp_path / "fn")
    meta = yaml.safe_load((out / "function.yaml").read_text())["metadata"]["annotations"]
    assert meta["type"] == "interactor" and meta["min_pos_points"] == "1"
    assert "InteractorHandler" in (out / "main.py").read_text()


def test_a_detector_model_is_refused(tmp_path):
    from cvatflow.interactor import Interactor
    from cvatflow.models.maskrcnn import MaskRcnnAdapter
    from cvatflow.training import state as statelib

    adapter = MaskRcnnAdapter()
    settings = adapter.settings("maskrcnn_resnet18_fpn", 64)
    model = adapter.build(settings, 1, False)
    statelib.write_model_state(tmp_path / "model", statelib.model_config(settings, ["a"], "bitmap"),
                               model.state_dict())
    with pytest.raises(CvatflowError, match="not an interactive one"):
        Interactor(str(tmp_path / "model"))


def _body(**extra) -> dict:
    buffer = io.BytesIO()
    _png().save(buffer, "PNG")
    return {"image": base64.b64encode(buffer.getvalue()).decode(), "pos_points": [[100, 60]], "neg_points": [],
            **extra}


@pytest.mark.parametrize("click", [[1e9, 60], [201, 60], [100, 121], [-1, 60]])
def test_a_positive_click_outside_the_image_is_one_clear_error(model_dir, click):
    from cvatflow.interactor import InteractorHandler

    with pytest.raises(CvatflowError, match=r"pos_points: the click .* outside the 200x120 image"):
        InteractorHandler(str(model_dir))(_body(pos_points=[click]))


def test_a_negative_click_outside_the_image_is_ignored(model_dir, monkeypatch):
    from cvatflow.interactor import InteractorHandler
    from cvatflow.models import interactive

    monkeypatch.setattr(interactive, "segment", _disk_segment)
    answer = InteractorHandler(str(model_dir))(_body(neg_points=[[5000, 5000]]))
    mask = np.array(answer["mask"])
    # the window is the positive click's alone (32 pixels wide, seen at 2x: a radius-5 disk), not the whole image
    assert mask[60, 100] == 255 and mask[60, 120] == 0


@pytest.mark.parametrize("threshold", ["abc", 5, -0.1, True, [0.5], float("nan")])
def test_a_threshold_that_is_not_a_probability_is_refused_by_both_handlers(model_dir, threshold):
    from cvatflow.interactor import InteractorHandler
    from cvatflow.serverless import request_threshold

    with pytest.raises(CvatflowError, match="threshold: .* not a number from 0 to 1"):
        InteractorHandler(str(model_dir))(_body(threshold=threshold))
    with pytest.raises(CvatflowError, match="threshold"):
        request_threshold({"threshold": threshold})
    assert request_threshold({"threshold": None}) == 0.5 and request_threshold({"threshold": "0.25"}) == 0.25


def test_an_image_with_too_many_pixels_is_one_clear_error(monkeypatch):
    from PIL import Image

    from cvatflow.serverless import request_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL refuses over twice this; 200x120 is 24 times it
    with pytest.raises(CvatflowError, match="image: too many pixels"):
        request_image(_body())
