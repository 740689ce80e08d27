"""Model state on disk (config.json + weights) and the experiment records written next to it."""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvatflow.atomic import check_replaceable
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
    """Write config.json and the weights into a fresh folder, replacing any old one only when complete.

    `folder` must be absent, empty, or an earlier model state (it has config.json): TrainingError otherwise.
    """
    import torch

    folder = Path(folder)
    check_replaceable(folder, lambda f: (f / CONFIG).is_file(), str(folder), TrainingError)
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


# -- the one loader: read -> build model -> load weights --------------------------------------------------

def family_of(settings: dict[str, Any], where: str) -> str:
    """The model family (adapter name) config.json records: settings.model, or for states written before it was
    recorded, the one family whose variant list holds settings.variant (variant names are unique across families).
    Raises TrainingError when neither tells."""
    from cvatflow.models import ADAPTERS, variants

    recorded = settings.get("model")
    if recorded:
        if recorded not in ADAPTERS:
            raise TrainingError(f"{where}: settings.model {recorded!r} is not a model family cvatflow knows "
                                f"({', '.join(ADAPTERS)})")
        return str(recorded)
    owners = [name for name in ADAPTERS if settings.get("variant") in variants(name)]
    if len(owners) != 1:
        raise TrainingError(f"{where}: settings.model is missing and variant {settings.get('variant')!r} belongs "
                            f"to no single family; add \"model\": one of {', '.join(ADAPTERS)} to settings")
    return owners[0]


@dataclass(frozen=True)
class ModelState:
    """A model state read and checked: config.json (settings, classes) and the weights file beside it.

    `family` is the adapter name config.json records (`detr`, `maskrcnn`, `rtdetr`); `classes` are the class titles
    in model-index order (0-based, no background); `image_size` is the longest side, in pixels, the model was
    trained at (images are resized to it before inference).
    """

    folder: Path
    config: dict[str, Any]
    family: str
    variant: str
    classes: tuple[str, ...]
    weights: Path
    image_size: int

    @classmethod
    def read(cls, path: Path | str, what: str = "--model") -> ModelState:
        """The model state in `path`: a state folder, a run's output folder, or a .tar (see find_model_dir).
        `what` names the user's input in errors. Raises TrainingError."""
        path = Path(path)
        if not path.exists():
            raise TrainingError(f"{what} {path}: does not exist (pass a model state folder, a run's output "
                                f"folder or a .tar)")
        folder = find_model_dir(path)
        config, weights = read_model_state(folder)
        settings = config["settings"]
        family = family_of(settings, f"{what} {path}")
        return cls(folder=folder, config=config, family=family, variant=str(settings["variant"]),
                   classes=tuple(class_titles(config)), weights=weights,
                   image_size=int(settings.get("image_size") or 800))

    @classmethod
    def fetch(cls, source: str, what: str = "model") -> ModelState:
        """Read a model state from a local path or a store URI (s3://, gs://, file://: a state folder, a run's
        output prefix or a .tar object), downloading a URI into a temporary folder first (it stays for the
        process's life: one per model a process loads). S3 and GCS credentials come from the environment."""
        if "://" not in source:
            return cls.read(Path(source), what)
        from cvatflow.storage import open_store

        parent, _, name = source.rstrip("/").rpartition("/")
        if "://" not in parent or not name:
            raise TrainingError(f"{what} {source}: name a folder or object under the bucket, e.g. "
                                f"s3://bucket/runs/RUN/output/model")
        target = Path(tempfile.mkdtemp(prefix="cvatflow-model-"))
        open_store(parent).download_prefix(name, target)
        local = target / name if (target / name).is_file() else target
        return cls.read(local, f"{what} {source}")

    def adapter(self):
        from cvatflow.models import get_adapter

        adapter = get_adapter(self.family)
        adapter.check_variant(self.variant)
        return adapter

    @property
    def masks(self) -> bool:
        """Whether the model predicts instance masks (Mask R-CNN)."""
        return bool(self.adapter().masks)

    def build(self, device: Any = "cpu"):
        """The torch model in eval mode on `device`, with the weights loaded. Raises TrainingError when the weights
        do not fit the variant and class count config.json gives."""
        adapter = self.adapter()
        model = adapter.build(dict(self.config["settings"]), len(self.classes), pretrained=False)
        try:
            model.load_state_dict(load_weights(self.weights))
        except RuntimeError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            raise TrainingError(f"{self.weights}: weights do not fit {self.variant} with {len(self.classes)} "
                                f"classes ({'; '.join(lines[1:3] or lines[:1])[:300]}); check settings.variant and "
                                f"out_classes in config.json") from None
        return model.to(device).eval()
