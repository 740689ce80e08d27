"""A trained Smart Tool model as CVAT interactor: a cvat-sdk InteractionFunction and a nuclio `interactor` handler."""
from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from cvatflow.errors import CvatflowError, TrainingError
from cvatflow.serverless import handler_source, request_image, request_threshold

DEFAULT_THRESHOLD = 0.5
# The window the model sees around the clicks: the clicks' box grown CONTEXT times per side (the transform's
# instance crop pads 200% per side, so objects filled about a fifth of the training samples), at least MIN_WINDOW
# of the model's input size.
CONTEXT = 2.0
MIN_WINDOW = 0.5


class Interactor:
    """An interactive model state (cvatflow-train interactive) on one device: `segment(image, pos, neg)` gives the
    object's mask on the whole image."""

    def __init__(self, model: str, device: str | None = None) -> None:
        from cvatflow.training.state import ModelState

        self.state = ModelState.fetch(str(model), "model")
        if self.state.family != "interactive":
            raise TrainingError(f"model {model}: a {self.state.family} model, not an interactive one; train with "
                                f"the smarttool-training template (cvatflow-train interactive)")
        self.device = device or "cpu"
        self.model = self.state.build(self.device)
        self.radius = float(self.state.config["settings"].get("click_radius", 5.0))

    def window(self, width: int, height: int, points: list[tuple[float, float]]) -> tuple[int, int, int, int]:
        """The crop (x0, y0, x1, y1), exclusive ends, the model sees: a square around the clicks, clipped."""
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
        side = max((max(xs) - min(xs)) * (1 + 2 * CONTEXT), (max(ys) - min(ys)) * (1 + 2 * CONTEXT),
                   MIN_WINDOW * self.state.image_size)
        x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
        return x0, y0, min(width, max(x0 + 1, int(np.ceil(cx + side / 2)))), \
            min(height, max(y0 + 1, int(np.ceil(cy + side / 2))))

    def segment(self, image, pos: list, neg: list, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """Bool mask [H, W] of the object under positive clicks `pos` and not under negative clicks `neg`
        ([[x, y], ...] in image pixels) on `image` (PIL). Raises CvatflowError without a positive click, or with one
        outside the image (negative clicks outside it are ignored)."""
        from PIL import Image

        from cvatflow.models.interactive import segment

        pos, neg = _points(pos, "pos_points"), _points(neg, "neg_points")
        if not pos:
            raise CvatflowError("pos_points: the interactor needs at least one positive click on the object")
        rgb = image.convert("RGB")
        width, height = rgb.size
        def inside(click) -> bool:
            return 0 <= click[0] <= width and 0 <= click[1] <= height

        outside = [click for click in pos if not inside(click)]
        if outside:
            # A click past the right or bottom edge made an empty window (PIL's "right is less than left").
            x, y = outside[0]
            raise CvatflowError(f"pos_points: the click ({x:g}, {y:g}) lies outside the {width}x{height} image; "
                                f"click on the object, inside the frame")
        neg = [click for click in neg if inside(click)]  # a negative click outside the image excludes nothing
        x0, y0, x1, y1 = self.window(width, height, pos + neg)
        size = self.state.image_size
        scale = size / max(x1 - x0, y1 - y0)
        w, h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
        crop = np.asarray(rgb.crop((x0, y0, x1, y1)).resize((w, h), Image.BILINEAR))
        clicks = [((x - x0) * scale, (y - y0) * scale, True) for x, y in pos] + \
                 [((x - x0) * scale, (y - y0) * scale, False) for x, y in neg]
        clicks = [c for c in clicks if 0 <= c[0] <= w and 0 <= c[1] <= h]
        prob = segment(self.model, crop, clicks, self.device, self.radius)
        small = Image.fromarray((prob * 255).astype(np.uint8)).resize((x1 - x0, y1 - y0), Image.BILINEAR)
        mask = np.zeros((height, width), bool)
        mask[y0:y1, x0:x1] = np.asarray(small) >= threshold * 255
        return mask


def _points(points: Any, name: str) -> list[tuple[float, float]]:
    """[[x, y], ...] (or (x, y) tuples) as float pairs; CvatflowError naming `name` otherwise."""
    try:
        out = [(float(p[0]), float(p[1])) for p in points or []]
    except (TypeError, ValueError, IndexError, KeyError):
        raise CvatflowError(f"{name}: expected a list of [x, y] pixel coordinates, got {str(points)[:80]}") from None
    if not all(np.isfinite(v) for p in out for v in p):
        raise CvatflowError(f"{name}: coordinates must be finite numbers")
    return out


class InteractorFunction:
    """cvat_sdk.auto_annotation.InteractionFunction (cvat-sdk 2.80+, for `cvat-cli function create-native` agents):
    at least one positive click, negative clicks allowed, no box; answers one `mask` shape (CVAT's RLE over the
    mask's box, then the box), the only interaction shape the CVAT UI uses."""

    def __init__(self, model: str, threshold: float = DEFAULT_THRESHOLD, device: str = "") -> None:
        if not 0 <= float(threshold) <= 1:
            raise TrainingError(f"threshold {threshold}: a probability between 0 and 1")
        self.threshold = float(threshold)
        self.interactor = Interactor(model, device or None)

    @cached_property
    def spec(self):
        import cvat_sdk.auto_annotation as cvataa

        return cvataa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=0)

    def detect(self, context, image, prompts) -> list:
        import cvat_sdk.auto_annotation as cvataa

        from cvatflow.cvat_shapes import encode_mask

        mask = self.interactor.segment(image, list(prompts.pos_points), list(prompts.neg_points), self.threshold)
        if not mask.any():
            return []
        return [cvataa.InteractionResultShape(type="mask", points=encode_mask(mask))]


def create(model: str, threshold: float = DEFAULT_THRESHOLD, device: str = "") -> InteractorFunction:
    """The entry point cvat-cli calls with `-p model=str:PATH` (and optional threshold, device)."""
    return InteractorFunction(model, threshold, device)


class InteractorHandler:
    """The nuclio interactor's body: CVAT's request {"image": base64, "pos_points": [[x, y]...], "neg_points":
    [[x, y]...], "obj_bbox": ignored, "threshold": float?} in; {"mask": [[0|255, ...] per row] (H x W, the request
    image's size), "points": [[x, y], ...] (the mask's largest outline, what HRNet/f-BRS functions return)} out."""

    def __init__(self, model_dir: str, device: str | None = None) -> None:
        self.interactor = Interactor(model_dir, device)

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        from cvatflow.cvat_shapes import polygons

        image, threshold = request_image(body), request_threshold(body, DEFAULT_THRESHOLD)
        mask = self.interactor.segment(image, body.get("pos_points"), body.get("neg_points"), threshold)
        outlines = polygons(mask)
        outline = max(outlines, key=len) if outlines else []
        return {"mask": (mask.astype(np.uint8) * 255).tolist(),
                "points": [[outline[i], outline[i + 1]] for i in range(0, len(outline), 2)]}


# main.py of the exported interactor function (see cvatflow.serverless.handler_source).
HANDLER = handler_source("cvatflow.interactor", "InteractorHandler", "CVAT's interactor request in, a mask out")
