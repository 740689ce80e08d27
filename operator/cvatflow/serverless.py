"""A model state as a nuclio function for self-hosted CVAT (AI Tools -> Detectors): export, and the handler's body."""
from __future__ import annotations

import base64
import binascii
import io
import json
import os
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from cvatflow.atomic import check_replaceable
from cvatflow.errors import CvatflowError, TrainingError

DEFAULT_THRESHOLD = 0.5
# The official PyTorch runtime image (CUDA + cuDNN runtime, Python, torch); its torch should match the one the
# model was trained with. Override with --base-image.
BASE_IMAGE = "pytorch/pytorch:2.14.1-cuda12.8-cudnn9-runtime"
# What the handler needs besides torch (which the base image has): the package's own requirements, main and
# `train`, pinned to the versions installed where the model is exported.
SKIP_REQUIREMENTS = ("torch",)


def handler_source(module: str, cls: str, request: str) -> str:
    """main.py of a nuclio function: `cls` from `module` (beside it, in the copy of cvatflow) answers CVAT's
    `request`; a request it refuses (no image, no positive click) is a 400 whose message CVAT shows."""
    return f'''"""nuclio entry point written by `cvatflow model export-serverless`: {request}."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # the copy of cvatflow beside this file

from {module} import {cls}  # noqa: E402


def init_context(context):
    context.user_data.model = {cls}(os.path.join(HERE, "model"))
    context.logger.info("cvatflow model loaded")


def handler(context, event):
    try:
        body = event.body if isinstance(event.body, dict) else json.loads(event.body or b"{{}}")
    except ValueError as exc:  # a body that is not JSON is a 400 too, not a traceback
        answer, status = {{"error": f"the request body is not JSON ({{exc}})"}}, 400
    else:
        try:
            answer, status = context.user_data.model(body), 200
        except Exception as exc:  # noqa: BLE001 (CVAT shows the message)
            answer, status = {{"error": str(exc)}}, 400
    return context.Response(body=json.dumps(answer), headers={{}}, content_type="application/json",
                            status_code=status)
'''


HANDLER = handler_source("cvatflow.serverless", "Handler", "CVAT's detector request in, shapes out")


class Handler:
    """The detector behind the nuclio function: CVAT's request {"image": base64, "threshold": float?} in, a list of
    {"confidence": str, "label": class name, "type": "rectangle"|"mask", "points": [...], "mask": [...]} out.

    Rectangles: points [x1, y1, x2, y2]. Masks (Mask R-CNN): `mask` is the 0/1 mask over its tight box, row by row,
    followed by the box [xtl, ytl, xbr, ybr] (inclusive), and `points` the mask's largest outline as a polygon
    [x, y, ...] (what CVAT keeps when asked to convert masks to polygons). Pixels of the request's image.
    """

    def __init__(self, model_dir: str | Path, device: str | None = None) -> None:
        from cvatflow.training.infer import Detector
        from cvatflow.training.state import ModelState

        self.state = ModelState.read(model_dir, what="model")
        self.detector = Detector(self.state, device)

    def __call__(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        from cvatflow.cvat_shapes import polygons, to_shapes
        from cvatflow.training.infer import pil_to_tensor

        image, threshold = request_image(body), request_threshold(body)
        detections = self.detector([pil_to_tensor(image)], threshold)[0]
        kind = "mask" if self.state.masks else "rectangle"
        shapes, _ = to_shapes(detections, kind)
        results = []
        for shape in shapes:
            item = {"confidence": f"{shape.score:.4f}", "label": self.state.classes[shape.label], "type": shape.type}
            if shape.type == "mask":
                ys, xs = shape.bitmap.nonzero()
                x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
                crop = shape.bitmap[y1:y2 + 1, x1:x2 + 1]
                item["mask"] = [int(v) for v in crop.ravel()] + [x1, y1, x2, y2]
                outlines = polygons(shape.bitmap)
                item["points"] = max(outlines, key=len) if outlines else [x1, y1, x2, y1, x2, y2]
            else:
                item["points"] = shape.points
            results.append(item)
        return results


def request_image(body: Any):
    """The PIL image (loaded) of a CVAT function request's `image` (base64 of an image file). CvatflowError for a
    body that is not an object, no or bad base64, a file that is no image, or more pixels than PIL opens safely."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(base64.b64decode(str(body["image"]), validate=True)))
        image.load()
    except (KeyError, TypeError, binascii.Error, OSError) as exc:
        raise CvatflowError(f"the request needs `image`: a base64-encoded image file ({exc})") from None
    except Image.DecompressionBombError as exc:  # not an OSError: it escaped as an unexplained 400 before
        raise CvatflowError(f"image: too many pixels to read safely ({exc}); send a smaller frame") from None
    return image


def request_threshold(body: dict[str, Any], default: float = DEFAULT_THRESHOLD) -> float:
    """A CVAT function request's `threshold`: a number from 0 to 1 (null or absent: `default`). CvatflowError
    otherwise: above 1 every shape would be dropped without a word, and "abc" ended in float()'s message."""
    value = body.get("threshold")
    if value is None:
        return default
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = float("nan")
    if isinstance(value, bool) or not 0 <= threshold <= 1:
        raise CvatflowError(f"threshold: {str(value)[:40]!r} is not a number from 0 to 1; send a confidence such "
                            f"as 0.5, or null for the default {default}")
    return threshold


def function_name(state, name: str | None) -> str:
    """The nuclio function's name: given, or cvatflow-<family>-<variant> (lowercase, dashes)."""
    raw = name or f"cvatflow-{state.family}-{state.variant}"
    return "".join(c if c.isalnum() else "-" for c in raw.lower()).strip("-")[:63]


def function_yaml(state, name: str, base_image: str, gpu: bool) -> dict[str, Any]:
    """function.yaml as CVAT reads it (metadata.annotations name, type: detector, framework, spec: the labels as
    JSON) and nuclio builds it (python runtime on `base_image`, requirements installed after the copy)."""
    shape = "mask" if state.masks else "rectangle"
    labels = [{"id": i, "name": title, "type": shape} for i, title in enumerate(state.classes)]
    spec: dict[str, Any] = {
        "description": f"cvatflow {state.family} ({state.variant}), {len(labels)} classes",
        "runtime": "python:3.11",
        "handler": "main:handler",
        "eventTimeout": "30s",
        "build": {"image": f"cvatflow/{name}", "baseImage": base_image,
                  "directives": {"postCopy": [
                      {"kind": "WORKDIR", "value": "/opt/nuclio"},
                      {"kind": "RUN", "value": "pip install --no-cache-dir -r /opt/nuclio/requirements.txt"}]}},
        "triggers": {"myHttpTrigger": {"maxWorkers": 1, "kind": "http", "workerAvailabilityTimeoutMilliseconds": 10000,
                                       "attributes": {"maxRequestBodySize": 33554432}}},
        "platform": {"attributes": {"restartPolicy": {"name": "always", "maximumRetryCount": 3},
                                    "mountMode": "volume"}},
    }
    if gpu:
        spec["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    annotations = {"name": f"cvatflow {state.family} {state.variant}" + (" (GPU)" if gpu else ""),
                   "type": "detector", "framework": "pytorch", "spec": json.dumps(labels, indent=2)}
    if state.family == "interactive":  # a Smart Tool model: CVAT lists it under AI Tools -> Interactors
        annotations.update(type="interactor", spec="", min_pos_points="1", min_neg_points="0",
                           help_message="Click on the object (positive), right-click on what is not (negative)")
    return {"metadata": {"name": name + ("-gpu" if gpu else ""), "namespace": "cvat", "annotations": annotations},
            "spec": spec}


def requirements() -> list[str]:
    """The package's requirements (main and `train`), pinned to the installed versions, torch left out."""
    import re

    try:
        declared = metadata.requires("cvatflow") or []
    except metadata.PackageNotFoundError:
        raise CvatflowError("cvatflow is not installed as a package here (pip install -e .): its requirements "
                            "cannot be read") from None
    out = []
    for line in declared:
        requirement, _, marker = line.partition(";")
        if marker and "extra" in marker and '"train"' not in marker:
            continue
        name = re.split(r"[\s<>=!~\[(]", requirement.strip(), maxsplit=1)[0]
        if name.lower() in SKIP_REQUIREMENTS:
            continue
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(requirement.strip())
    return sorted(set(out), key=str.lower)


def _earlier_export(folder: Path) -> bool:
    return (folder / "function.yaml").is_file() and (folder / "main.py").is_file()


def export(model: str | Path, output: Path, name: str | None = None, base_image: str = BASE_IMAGE) -> Path:
    """Write a nuclio function folder for the model state at `model`: function.yaml (CPU), function-gpu.yaml,
    main.py, requirements.txt, model/ and a copy of the cvatflow package. Written to a temporary name, then renamed;
    an existing `output` is replaced only when it is empty or an earlier export. Raises TrainingError for a model
    that does not load, or an `output` holding other files."""
    import yaml

    from cvatflow.training.state import ModelState

    state = ModelState.read(model, what="model")
    state.build("cpu")  # refuse weights that do not fit before writing anything
    name = function_name(state, name)
    output = Path(output)
    # Replaced whole at the end: never a folder of the user's (an earlier export has function.yaml + main.py).
    check_replaceable(output, _earlier_export, f"--output {output}", TrainingError)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        shutil.copytree(state.folder, tmp / "model", ignore=shutil.ignore_patterns(".*"))
        package = Path(__file__).resolve().parent
        shutil.copytree(package, tmp / "cvatflow", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "static"))
        from cvatflow.interactor import HANDLER as INTERACTOR

        (tmp / "main.py").write_text(INTERACTOR if state.family == "interactive" else HANDLER)
        (tmp / "requirements.txt").write_text("\n".join(requirements()) + "\n")
        for gpu, file in ((False, "function.yaml"), (True, "function-gpu.yaml")):
            (tmp / file).write_text(yaml.safe_dump(function_yaml(state, name, base_image, gpu), sort_keys=False))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if output.exists():
        shutil.rmtree(output)
    os.replace(tmp, output)
    return output
