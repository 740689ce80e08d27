"""Model state on disk (config.json + weights) and the experiment records written next to it."""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from cvatflow.errors import TrainingError

CONFIG = "config.json"
WEIGHTS = "model.pt"
# Distinct colours for the classes CVAT shows; the same title always gets the same colour.
PALETTE = ("#E6194B", "#3CB44B", "#4363D8", "#FFE119", "#F58231", "#911EB4", "#46F0F0", "#F032E6",
           "#BCF60C", "#FABEBE", "#008080", "#E6BEFF", "#9A6324", "#800000", "#AAFFC3", "#808000")


def write_json(path: Path, data: Any) -> None:
    """Write JSON under a temporary name, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def model_config(settings: dict[str, Any], class_titles: list[str], shape: str) -> dict[str, Any]:
    """config.json of a model state: settings, out_classes, class_title_to_idx (0-based, no background)."""
    return {
        "settings": settings,
        "out_classes": [{"title": t, "shape": shape, "color": PALETTE[i % len(PALETTE)]}
                        for i, t in enumerate(class_titles)],
        "class_title_to_idx": {t: i for i, t in enumerate(class_titles)},
    }


def write_model_state(folder: Path, config: dict[str, Any], state_dict: dict[str, Any]) -> Path:
    """Write config.json and the weights into a fresh folder, replacing any old one only when complete."""
    import torch

    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(state_dict, tmp / WEIGHTS)
    write_json(tmp / CONFIG, config)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def class_titles(config: dict[str, Any]) -> list[str]:
    """Class titles in model-index order; accepts `out_classes` and the SDK trainer's `classes` key."""
    mapping = config.get("class_title_to_idx")
    if isinstance(mapping, dict) and mapping:
        return [t for t, _ in sorted(mapping.items(), key=lambda item: item[1])]
    classes = config.get("out_classes") or config.get("classes") or []
    return [c["title"] for c in classes if isinstance(c, dict) and "title" in c]


def find_model_dir(models: Path | str) -> Path:
    """The model state in a `--models` folder: output/model/, then model/, then the root (DESIGN.md)."""
    root = Path(models)
    if root.is_file() and tarfile.is_tarfile(root):
        return unpack(root)
    for candidate in (root / "output" / "model", root / "model", root):
        if (candidate / CONFIG).is_file():
            return candidate
    raise TrainingError(f"--models {root}: no model state found (looked for config.json in output/model/, "
                        f"model/ and the folder itself); pass the output folder of a training run or a "
                        f"folder with config.json and {WEIGHTS}")


def unpack(tar: Path) -> Path:
    """Extract a model-state .tar (files at the top level) into a temporary folder."""
    target = Path(tempfile.mkdtemp(prefix="cvatflow-model-"))
    with tarfile.open(tar) as archive:
        archive.extractall(target, filter="data")
    return target


def read_model_state(folder: Path | str) -> tuple[dict[str, Any], Path]:
    """config.json (checked) and the weights file of a model state folder."""
    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG).read_text())
    except FileNotFoundError:
        raise TrainingError(f"{folder}: no {CONFIG} (a model state is config.json plus {WEIGHTS})") from None
    except ValueError as exc:
        raise TrainingError(f"{folder / CONFIG}: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or not class_titles(config):
        raise TrainingError(f"{folder / CONFIG}: needs `out_classes` [{{title, shape, color}}] and "
                            f"`class_title_to_idx` (see `cvatflow model import`)")
    settings = config.get("settings") or {}
    if not settings.get("variant"):
        raise TrainingError(f"{folder / CONFIG}: settings.variant is missing (the model variant the weights "
                            f"belong to, e.g. maskrcnn_resnet50_fpn)")
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise TrainingError(f"{folder}: weights file {WEIGHTS} is missing")
    return config, weights


def load_weights(path: Path) -> dict[str, Any]:
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(payload, dict) and "model" in payload and isinstance(payload["model"], dict):
        payload = payload["model"]  # a training checkpoint rather than bare weights
    return payload


def model_meta(class_titles: list[str], shape: str) -> dict[str, Any]:
    """model_meta.json: the classes the model predicts, in the ProjectMeta shape CVAT-side tools read."""
    return {"classes": [{"title": t, "shape": shape, "color": PALETTE[i % len(PALETTE)], "id": i}
                        for i, t in enumerate(class_titles)],
            "tags": [], "projectType": "images"}


def dir_size(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
