"""`cvatflow model export-serverless`: function.yaml in the shape CVAT reads, and the handler answering CVAT's
detector request ({"image": base64, "threshold"}) with CVAT's detector response shape, masks included."""
from __future__ import annotations

import base64
import importlib.util
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from cvatflow.cli import main
from model_states import CLASSES, tiny_state


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("serverless")
    out = {}
    for family in ("maskrcnn", "detr"):
        state = tiny_state(family, root / f"{family}-state")
        with pytest.raises(SystemExit) as done:
            main(["model", "export-serverless", str(state), "-o", str(root / family)])
        assert done.value.code in (0, None)
        out[family] = root / family
    return out


def _image(size=(64, 48)) -> tuple[bytes, np.ndarray]:
    from PIL import Image

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")  # lossless: the test decodes the same pixels
    return buffer.getvalue(), pixels


def _respond(folder, body):
    """main.py as nuclio runs it: init_context once, then handler(context, event) per request; the Response."""
    spec = importlib.util.spec_from_file_location(f"handler_{folder.name}", folder / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = SimpleNamespace(user_data=SimpleNamespace(), logger=SimpleNamespace(info=lambda *a: None),
                              Response=lambda **kw: kw)
    module.init_context(context)
    return module.handler(context, SimpleNamespace(body=body if isinstance(body, bytes) else json.dumps(body).encode()))


def _call(folder, body):
    """The answer of a request the function accepts (200, JSON)."""
    answer = _respond(folder, body)
    assert answer["status_code"] == 200 and answer["content_type"] == "application/json"
    return json.loads(answer["body"])


@pytest.mark.parametrize("family,shape", [("maskrcnn", "mask"), ("detr", "rectangle")])
def test_function_yaml_has_what_cvat_reads(exported, family, shape):
    for file, gpu in (("function.yaml", False), ("function-gpu.yaml", True)):
        doc = yaml.safe_load((exported[family] / file).read_text())
        meta = doc["metadata"]
        assert meta["name"].startswith(f"cvatflow-{family}-") and len(meta["name"]) <= 63
        notes = meta["annotations"]
        assert notes["type"] == "detector" and notes["framework"] == "pytorch" and notes["name"]
        labels = json.loads(notes["spec"])  # CVAT parses the spec annotation as JSON
        assert labels == [{"id": i, "name": c, "type": shape} for i, c in enumerate(CLASSES)]
        spec = doc["spec"]
        assert spec["handler"] == "main:handler" and spec["runtime"].startswith("python:3")
        assert spec["build"]["baseImage"].startswith("pytorch/pytorch:")
        assert spec["triggers"]["myHttpTrigger"]["kind"] == "http"
        assert ("resources" in spec) == gpu
    folder = exported[family]
    assert (folder / "main.py").is_file() and (folder / "model/config.json").is_file()
    assert (folder / "cvatflow/serverless.py").is_file() and not list(folder.rglob("__pycache__"))
    requirements = (folder / "requirements.txt").read_text().split()
    assert any(r.startswith("torchvision==") for r in requirements)
    assert not any(r.startswith("torch==") for r in requirements)  # the base image's torch stays


def test_handler_answers_cvat_s_detector_request_with_masks(exported):
    from cvatflow.training.infer import Detector, pil_to_tensor
    from cvatflow.training.state import ModelState

    data, pixels = _image()
    results = _call(exported["maskrcnn"], {"image": base64.b64encode(data).decode(), "threshold": 0.2})
    from PIL import Image

    expected = Detector(ModelState.read(exported["maskrcnn"] / "model"), "cpu")(
        [pil_to_tensor(Image.fromarray(pixels))], 0.2)[0]
    kept = [i for i in range(len(expected)) if expected.masks[i].any()]
    assert results and len(results) == len(kept)
    for item, i in zip(results, kept):
        assert set(item) == {"confidence", "label", "type", "points", "mask"} and item["type"] == "mask"
        assert item["label"] == CLASSES[expected.labels[i]] and float(item["confidence"]) >= 0.2
        *flat, x1, y1, x2, y2 = item["mask"]
        assert len(flat) == (x2 - x1 + 1) * (y2 - y1 + 1) and set(flat) <= {0, 1}
        bitmap = np.zeros((48, 64), dtype=bool)
        bitmap[y1:y2 + 1, x1:x2 + 1] = np.array(flat, dtype=bool).reshape(y2 - y1 + 1, x2 - x1 + 1)
        np.testing.assert_array_equal(bitmap, expected.masks[i])
        assert len(item["points"]) >= 6 and len(item["points"]) % 2 == 0


def test_handler_gives_rectangles_for_detr_and_refuses_a_request_without_an_image(exported):
    data, _ = _image()
    image = base64.b64encode(data).decode()
    results = _call(exported["detr"], {"image": image, "threshold": 0.0})
    assert results and {r["type"] for r in results} == {"rectangle"}
    for item in results:
        assert set(item) == {"confidence", "label", "type", "points"} and len(item["points"]) == 4
        assert item["label"] in CLASSES
    default = _call(exported["detr"], {"image": image, "threshold": None})  # CVAT sends null when none is set
    assert len(default) == sum(float(r["confidence"]) >= 0.5 for r in results)
    refused = _respond(exported["detr"], {"frame": 0})  # a 400 whose message CVAT shows, not a crash
    assert refused["status_code"] == 400 and "base64" in json.loads(refused["body"])["error"]


@pytest.mark.parametrize("raw", [b"not json", b"\xff\xfe", b'{"image": '])
def test_a_body_that_is_not_json_is_a_400_with_a_message(exported, raw):
    answer = _respond(exported["detr"], raw)  # was an uncaught JSONDecodeError
    assert answer["status_code"] == 400 and "not JSON" in json.loads(answer["body"])["error"]
