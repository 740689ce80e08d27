"""A cvatflow model state as a CVAT auto-annotation detection function (cvat_sdk.auto_annotation).

    cvat-cli task auto-annotate 42 --function-module cvatflow.cvat_function -p model=str:runs/out/model

Parameters (`-p NAME=TYPE:VALUE`): `model` (a model state folder, a run's output, a .tar, or a store URI),
`threshold` (float, used when the caller gives no `--conf-threshold`; default 0.5), `shape` (`mask`, `polygon`
or `rectangle`; Mask R-CNN's default is `mask`, traced to polygons when the caller asks `--conv-mask-to-poly`;
the DETR family gives rectangles) and `device` (e.g. `cuda:0`; default CUDA when there is one).
"""
from __future__ import annotations

from functools import cached_property

from cvatflow.cvat_shapes import KINDS, Counts, to_shapes
from cvatflow.errors import TrainingError

DEFAULT_THRESHOLD = 0.5


class ModelFunction:
    """A DetectionFunction: `spec` lists the model's classes as labels (ids are class indices); `detect` runs the
    model on one PIL image and returns LabeledShapeRequests with frame 0. `counts` adds up what it converted."""

    def __init__(self, model: str, threshold: float = DEFAULT_THRESHOLD, shape: str = "", device: str = "") -> None:
        from cvatflow.training.infer import Detector
        from cvatflow.training.state import ModelState

        if not 0 <= float(threshold) <= 1:
            raise TrainingError(f"threshold {threshold}: a score between 0 and 1")
        self.state = ModelState.fetch(str(model), "model")
        self.masks = self.state.masks
        shape = shape or ("mask" if self.masks else "rectangle")
        if shape not in KINDS:
            raise TrainingError(f"shape {shape!r}: choose one of {', '.join(KINDS)}")
        if shape != "rectangle" and not self.masks:
            raise TrainingError(f"shape {shape!r}: a {self.state.family} model predicts boxes only; use "
                                f"shape=str:rectangle (or leave it out)")
        self.shape = shape
        self.threshold = float(threshold)
        self.detector = Detector(self.state, device or None)
        self.counts = Counts()

    @cached_property
    def spec(self):
        import cvat_sdk.auto_annotation as cvataa

        return cvataa.DetectionFunctionSpec(labels=[cvataa.label_spec(title, i, type=self.shape)
                                                    for i, title in enumerate(self.state.classes)])

    def detect(self, context, image) -> list:
        import cvat_sdk.auto_annotation as cvataa

        from cvatflow.training.infer import pil_to_tensor

        threshold = self.threshold if context.conf_threshold is None else float(context.conf_threshold)
        kind = "polygon" if self.shape == "mask" and context.conv_mask_to_poly else self.shape
        detections = self.detector([pil_to_tensor(image)], threshold)[0]
        shapes, counts = to_shapes(detections, kind)
        self.counts.add(counts)
        make = {"rectangle": cvataa.rectangle, "polygon": cvataa.polygon, "mask": cvataa.mask}
        return [make[s.type](s.label, s.points) for s in shapes]


def create(model: str, threshold: float = DEFAULT_THRESHOLD, shape: str = "", device: str = "") -> ModelFunction:
    """The function cvat-cli builds from `-p` parameters (see the module docstring). Raises TrainingError for a
    model that cannot be read or a shape the model cannot give."""
    return ModelFunction(model, threshold, shape, device)
