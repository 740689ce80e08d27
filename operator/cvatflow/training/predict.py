"""Batch inference: COCO results and a COCO 1.0 annotation file CVAT imports as pre-annotations."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cvatflow import events
from cvatflow.datasets.images import IMAGE_SUFFIXES  # every type CVAT image tasks take
from cvatflow.errors import TrainingError
from cvatflow.training import data as datalib
from cvatflow.training import state as statelib


def load_model(adapter_name: str, model_dir: Path, device):
    """(adapter, model in eval mode, config.json) of a model state folder, a run's output or a .tar."""
    state = _state(adapter_name, model_dir)
    return state.adapter(), state.build(device), state.config


def _state(adapter_name: str, model_dir: Path) -> statelib.ModelState:
    """The model state, checked to be of the family the command names."""
    state = statelib.ModelState.read(model_dir)
    if state.family != adapter_name:
        raise TrainingError(f"--model {model_dir}: a {state.family} model, not {adapter_name} (run "
                            f"`cvatflow-train {state.family} predict`)")
    return state


def _images(root: Path) -> list[dict[str, Any]]:
    """The images to predict: those of the COCO file when there is one, else every image file found."""
    annotations = root / datalib.ANNOTATIONS
    if annotations.is_file():
        coco = json.loads(annotations.read_text())
        found = []
        for img in coco.get("images", []):
            path = datalib.resolve_image(root, str(img["file_name"]))
            if path is None:
                raise TrainingError(f"--data {root}: image {img['file_name']} is missing (put it under "
                                    f"{root / 'images'})")
            found.append({**img, "path": path})
        return found
    base = root / "images" if (root / "images").is_dir() else root
    files = sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [{"id": i + 1, "file_name": str(p.relative_to(base)), "path": p} for i, p in enumerate(files)]


def predict(adapter_name: str, model_dir: Path, data: Path, output: Path, threshold: float = 0.5,
            batch_size: int = 4, device: str | None = None) -> dict[str, Any]:
    """Predict every image of `data`; write predictions.json and annotations/instances_default.json."""
    from cvatflow.datasets.images import decode_rgb
    from cvatflow.training.evaluation import to_results
    from cvatflow.training.infer import Detector

    detector = Detector(_state(adapter_name, Path(model_dir)), device)
    titles = list(detector.state.classes)
    images = _images(Path(data))
    if not images:
        raise TrainingError(f"--data {data}: no images found (put .jpg/.png files under {Path(data) / 'images'})")
    category_ids = list(range(1, len(titles) + 1))
    results: list[dict[str, Any]] = []
    coco_images = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        pixels = [decode_rgb(img["path"], apply_exif=img.get("exif", True)) for img in chunk]
        for img, (pred, scale, (h, w)) in zip(chunk, detector.raw(pixels, threshold)):
            coco_images.append({"id": img["id"], "file_name": img["file_name"], "width": w, "height": h})
            results += to_results(img["id"], pred, scale, (h, w), category_ids, detector.adapter.masks)
        events.emit(events.progress("predict", min(start + batch_size, len(images)), len(images)))
    output = Path(output)
    statelib.write_json(output / "predictions.json", results)
    statelib.write_json(output / datalib.ANNOTATIONS, _cvat_coco(coco_images, titles, results))
    print(f"{len(results)} objects on {len(images)} images (score >= {threshold}) in {output}", flush=True)
    return {"images": len(images), "objects": len(results)}


def _cvat_coco(images: list[dict[str, Any]], titles: list[str], results: list[dict[str, Any]]) -> dict[str, Any]:
    """COCO 1.0 as CVAT imports it: masks as RLE with iscrowd=1 (CVAT makes mask shapes of those)."""
    from pycocotools import mask as mask_utils

    annotations = []
    for i, r in enumerate(results, start=1):
        ann = {"id": i, "image_id": r["image_id"], "category_id": r["category_id"], "bbox": r["bbox"],
               "area": r["bbox"][2] * r["bbox"][3], "iscrowd": 0, "segmentation": [], "score": r["score"],
               "attributes": {"occluded": False, "score": round(r["score"], 4)}}
        if "segmentation" in r:
            ann.update(segmentation=r["segmentation"], iscrowd=1,
                       area=float(mask_utils.area(r["segmentation"])))
        annotations.append(ann)
    return {"licenses": [{"name": "", "id": 0, "url": ""}],
            "info": {"description": "cvatflow predictions", "contributor": "", "url": "", "version": "",
                     "year": "", "date_created": ""},
            "categories": [{"id": i + 1, "name": t, "supercategory": ""} for i, t in enumerate(titles)],
            "images": images, "annotations": annotations}
