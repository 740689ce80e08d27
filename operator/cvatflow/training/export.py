"""ONNX export of a trained model (TorchScript-based exporter) and its check against torch with onnxruntime."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from cvatflow.errors import TrainingError


def export_onnx(adapter, model, path: Path, image_size: int) -> Path:
    """Write `path` (written under a temporary name, then renamed); one float image [1, 3, H, W] in 0..1 in."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module, example, outputs = adapter.export_module(model.eval().cpu(), image_size)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent shapes are expected here
        try:
            axes = {} if adapter.export_fixed_size else {"image": {2: "height", 3: "width"},
                                                           **{name: {0: "detections"} for name in outputs}}
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=17,
                              input_names=["image"], output_names=outputs, dynamic_axes=axes)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise TrainingError(f"ONNX export of {path.name} failed: {exc}") from exc
    os.replace(tmp, path)
    return path


def run_onnx(path: Path, image) -> list[Any]:
    """Outputs of the exported model on one float image [1, 3, H, W] (numpy or torch), with onnxruntime."""
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    array = image.numpy() if hasattr(image, "numpy") else np.asarray(image)
    return session.run(None, {"image": array.astype(np.float32)})
