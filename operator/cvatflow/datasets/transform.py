"""A declarative transform pipeline over the COCO layout (Supervisely DTL's layers): each layer a pure function.

A pipeline is a YAML (or JSON) list of layers, each `{action: <name>, ...settings}`, applied in order to a list of
samples (one image, its object masks, tags and click points). Every layer counts the samples and objects it kept
and dropped; the counts go into the output's dataset_report.json under `options.transform`.
"""
from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from cvatflow.errors import DatasetError

UNUSED = "unused"  # a class mapped to this (or to null) is dropped, as DTL's `unused`
OTHER = "__other__"  # DTL's catch-all key of a class mapping


@dataclass
class Sample:
    """One image: `image` uint8 [H, W, 3]; `objects` [{"category": str, "mask": bool [H, W]}]; `tags`; and click
    points `pos`/`neg` as [[x, y], ...] in pixels (x right, y down, pixel centres at integer + 0.5)."""

    name: str
    image: np.ndarray
    objects: list[dict[str, Any]]
    tags: list[str] = field(default_factory=list)
    pos: list[list[float]] = field(default_factory=list)
    neg: list[list[float]] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class Counts:
    """What one layer did: samples and objects in and out, and drops by reason."""

    action: str
    samples_in: int = 0
    samples_out: int = 0
    objects_in: int = 0
    objects_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "samples_in": self.samples_in, "samples_out": self.samples_out,
                "objects_in": self.objects_in, "objects_out": self.objects_out, "dropped": dict(self.dropped)}


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassMapping(_Layer):
    """Rename classes; `__other__` maps every class not named; a class mapped to `unused` or null is dropped."""

    action: Literal["class_mapping"]
    mapping: dict[str, str | None]


class ObjectsFilter(_Layer):
    """Drop objects (of `classes`, all when empty) whose mask covers less than `min_area_percent` of the image."""

    action: Literal["objects_filter"]
    min_area_percent: float = Field(ge=0, le=100)
    classes: list[str] = []


class Padding(_Layer):
    """Padding per side as a percent of the object's box width (left/right) or height (top/bottom)."""

    left: float = Field(0, ge=0)
    right: float = Field(0, ge=0)
    top: float = Field(0, ge=0)
    bottom: float = Field(0, ge=0)


class InstancesCrop(_Layer):
    """One sample per object of `classes` (all when empty): its box plus padding, clipped to the image; the sample
    keeps only that object (the target), other objects are background there."""

    action: Literal["instances_crop"]
    classes: list[str] = []
    pad: Padding = Padding()


class SplitTags(_Layer):
    """Tag each sample `val` with probability `val_probability`, else `train` (seeded)."""

    action: Literal["split_tags"]
    val_probability: float = Field(0.1, ge=0, le=1)
    seed: int = 0


class Flip(_Layer):
    """Mirror: axis `vertical` (DTL's name: about the vertical axis, left-right) or `horizontal` (top-bottom);
    with `keep_original` the flipped copies are added to the originals."""

    action: Literal["flip"]
    axis: Literal["vertical", "horizontal"] = "vertical"
    keep_original: bool = True


class Multiply(_Layer):
    """Repeat every sample `times` times (random layers after it then differ per copy)."""

    action: Literal["multiply"]
    times: int = Field(ge=1)


class RandomCrop(_Layer):
    """A random window per sample, its height and width each `min_percent`..`max_percent` of the sample's (seeded);
    objects outside the window are dropped."""

    action: Literal["random_crop"]
    min_percent: float = Field(gt=0, le=100)
    max_percent: float = Field(gt=0, le=100)
    seed: int = 0


class SampleFilter(_Layer):
    """Drop samples smaller than `min_height` x `min_width` pixels or with fewer than `min_objects` objects."""

    action: Literal["sample_filter"]
    min_height: int = Field(0, ge=0)
    min_width: int = Field(0, ge=0)
    min_objects: int = Field(0, ge=0)


class Resize(_Layer):
    """Resize to `width` x `height` (nearest-neighbour masks); with `keep_aspect` the longer side fits instead."""

    action: Literal["resize"]
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    keep_aspect: bool = False


class GeneratePoints(_Layer):
    """Click points per sample: `min_points`..`max_points` positive points on the target object (the first object)
    and as many negative points off every object, uniformly at random (seeded)."""

    action: Literal["generate_points"]
    min_points: int = Field(1, ge=1)
    max_points: int = Field(1, ge=1)
    seed: int = 0


Layer = Annotated[ClassMapping | ObjectsFilter | InstancesCrop | SplitTags | Flip | Multiply | RandomCrop |
                  SampleFilter | Resize | GeneratePoints, Field(discriminator="action")]
_PIPELINE = TypeAdapter(list[Layer])
ACTIONS = ("class_mapping", "objects_filter", "instances_crop", "split_tags", "flip", "multiply", "random_crop",
           "sample_filter", "resize", "generate_points")

# The seed's Pascal-VOC Smart Tool pipeline (Supervisely's DTL, ../shared/seeds/004): classes -> obj, drop tiny
# objects, crop each instance with 200% padding, 5% val, flips, x3 random crops, drop small samples, 256x256,
# drop objects under 15%, keep samples with an object, one positive and one negative click at least.
SMARTTOOL_PIPELINE = [
    {"action": "class_mapping", "mapping": {"neutral": UNUSED, OTHER: "obj"}},
    {"action": "objects_filter", "classes": ["obj"], "min_area_percent": 1},
    {"action": "instances_crop", "classes": ["obj"], "pad": {"left": 200, "right": 200, "top": 200, "bottom": 200}},
    {"action": "split_tags", "val_probability": 0.05, "seed": 0},
    {"action": "flip", "axis": "vertical", "keep_original": True},
    {"action": "multiply", "times": 3},
    {"action": "random_crop", "min_percent": 15, "max_percent": 95, "seed": 0},
    {"action": "sample_filter", "min_height": 50, "min_width": 50},
    {"action": "resize", "width": 256, "height": 256},
    {"action": "objects_filter", "classes": ["obj"], "min_area_percent": 15},
    {"action": "sample_filter", "min_objects": 1},
    {"action": "generate_points", "min_points": 1, "max_points": 3, "seed": 0},
]


def parse(layers: Any, source: str = "pipeline") -> list[Any]:
    """Typed layers from a list of dicts; DatasetError naming `source`, the layer number and the field otherwise."""
    if not isinstance(layers, list) or not layers:
        raise DatasetError(f"{source}: a pipeline is a non-empty list of layers like "
                           f"`- {{action: flip, axis: vertical}}` (actions: {', '.join(ACTIONS)})")
    try:
        return _PIPELINE.validate_python(layers)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DatasetError(f"{source}: layer {where}: {first['msg']} (actions: {', '.join(ACTIONS)})") from None


def load_pipeline(path: str | Path) -> list[Any]:
    """Layers from a YAML or JSON file (DatasetError naming the file on bad YAML or a bad layer)."""
    from cvatflow.templates.yamlsafe import load_file

    path = Path(path)
    data = load_file(path, "pipeline file", "write a YAML list of layers", DatasetError, source=f"--pipeline {path}")
    return parse(data, f"--pipeline {path.name}")


# -- the layers: each takes samples and a Counts, returns new samples (inputs are not changed) ----------------
def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), exclusive ends, of a mask's pixels; None when empty."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _crop(sample: Sample, x0: int, y0: int, x1: int, y1: int, counts: Counts, reason: str) -> Sample:
    objects = []
    for obj in sample.objects:
        mask = obj["mask"][y0:y1, x0:x1]
        if mask.any():
            objects.append({**obj, "mask": mask})
        else:
            counts.drop(reason)
    def shift(pts: list[list[float]]) -> list[list[float]]:
        return [[x - x0, y - y0] for x, y in pts if x0 <= x < x1 and y0 <= y < y1]

    return replace(sample, image=sample.image[y0:y1, x0:x1], objects=objects, pos=shift(sample.pos),
                   neg=shift(sample.neg))


def class_mapping(samples: list[Sample], layer: ClassMapping, counts: Counts) -> list[Sample]:
    out = []
    for s in samples:
        objects = []
        for obj in s.objects:
            new = layer.mapping.get(obj["category"], layer.mapping.get(OTHER, obj["category"]))
            if new in (None, UNUSED):
                counts.drop(f"class {obj['category']!r} mapped to unused")
            else:
                objects.append({**obj, "category": new})
        out.append(replace(s, objects=objects))
    return out


def objects_filter(samples: list[Sample], layer: ObjectsFilter, counts: Counts) -> list[Sample]:
    out = []
    for s in samples:
        area = s.height * s.width
        keep = []
        for obj in s.objects:
            if (not layer.classes or obj["category"] in layer.classes) and \
                    100.0 * int(obj["mask"].sum()) / area < layer.min_area_percent:
                counts.drop(f"area under {layer.min_area_percent:g}% of the image")
            else:
                keep.append(obj)
        out.append(replace(s, objects=keep))
    return out


def instances_crop(samples: list[Sample], layer: InstancesCrop, counts: Counts) -> list[Sample]:
    out = []
    for s in samples:
        targets = [o for o in s.objects if not layer.classes or o["category"] in layer.classes]
        if not targets:
            counts.drop("samples without an object to crop")
        counts.drop("other object in the instance's crop", (len(s.objects) - 1) * len(targets))
        counts.drop("not of the cropped classes", len(s.objects) - len(targets))
        for k, obj in enumerate(targets):
            x0, y0, x1, y1 = _box(obj["mask"])
            w, h = x1 - x0, y1 - y0
            p = layer.pad
            x0, x1 = max(0, x0 - round(w * p.left / 100)), min(s.width, x1 + round(w * p.right / 100))
            y0, y1 = max(0, y0 - round(h * p.top / 100)), min(s.height, y1 + round(h * p.bottom / 100))
            crop = Sample(f"{s.name}.obj{k}", s.image[y0:y1, x0:x1], [{**obj, "mask": obj["mask"][y0:y1, x0:x1]}],
                          list(s.tags))
            out.append(crop)
    return out


def split_tags(samples: list[Sample], layer: SplitTags, counts: Counts) -> list[Sample]:
    rng = random.Random(layer.seed)
    return [replace(s, tags=[t for t in s.tags if t not in ("train", "val")] +
                    ["val" if rng.random() < layer.val_probability else "train"]) for s in samples]


def flip(samples: list[Sample], layer: Flip, counts: Counts) -> list[Sample]:
    axis = 1 if layer.axis == "vertical" else 0
    out = list(samples) if layer.keep_original else []
    for s in samples:
        w, h = s.width, s.height
        moved = [[[w - x, y] if axis == 1 else [x, h - y] for x, y in pts] for pts in (s.pos, s.neg)]
        out.append(replace(s, name=f"{s.name}.flip", image=np.flip(s.image, axis).copy(),
                           objects=[{**o, "mask": np.flip(o["mask"], axis).copy()} for o in s.objects],
                           pos=moved[0], neg=moved[1]))
    return out


def multiply(samples: list[Sample], layer: Multiply, counts: Counts) -> list[Sample]:
    return [replace(s, name=f"{s.name}.x{i}" if layer.times > 1 else s.name) for s in samples
            for i in range(layer.times)]


def random_crop(samples: list[Sample], layer: RandomCrop, counts: Counts) -> list[Sample]:
    if layer.min_percent > layer.max_percent:
        raise DatasetError(f"random_crop: min_percent {layer.min_percent} is above max_percent {layer.max_percent}")
    rng = random.Random(layer.seed)
    out = []
    for s in samples:
        h = max(1, round(s.height * rng.uniform(layer.min_percent, layer.max_percent) / 100))
        w = max(1, round(s.width * rng.uniform(layer.min_percent, layer.max_percent) / 100))
        y0, x0 = rng.randint(0, s.height - h), rng.randint(0, s.width - w)
        out.append(_crop(s, x0, y0, x0 + w, y0 + h, counts, "outside the random crop"))
    return out


def sample_filter(samples: list[Sample], layer: SampleFilter, counts: Counts) -> list[Sample]:
    out = []
    for s in samples:
        why = ("sample under the minimum height" if s.height < layer.min_height else
               "sample under the minimum width" if s.width < layer.min_width else
               "sample with too few objects" if len(s.objects) < layer.min_objects else None)
        if why:
            counts.drop(why)
            counts.drop("on a dropped sample", len(s.objects))
        else:
            out.append(s)
    return out


def resize(samples: list[Sample], layer: Resize, counts: Counts) -> list[Sample]:
    from PIL import Image

    out = []
    for s in samples:
        w, h = layer.width, layer.height
        if layer.keep_aspect:
            scale = min(w / s.width, h / s.height)
            w, h = max(1, round(s.width * scale)), max(1, round(s.height * scale))
        sx, sy = w / s.width, h / s.height
        image = np.asarray(Image.fromarray(s.image).resize((w, h), Image.BILINEAR))
        rows = ((np.arange(h) + 0.5) / sy).astype(int).clip(0, s.height - 1)
        cols = ((np.arange(w) + 0.5) / sx).astype(int).clip(0, s.width - 1)
        objects = []
        for o in s.objects:
            mask = o["mask"][rows][:, cols]
            if mask.any():
                objects.append({**o, "mask": mask})
            else:
                counts.drop("vanished in the resize")
        pos, neg = ([[x * sx, y * sy] for x, y in pts] for pts in (s.pos, s.neg))
        out.append(replace(s, image=image, objects=objects, pos=pos, neg=neg))
    return out


def generate_points(samples: list[Sample], layer: GeneratePoints, counts: Counts) -> list[Sample]:
    if layer.min_points > layer.max_points:
        raise DatasetError(f"generate_points: min_points {layer.min_points} is above max_points {layer.max_points}")
    rng = np.random.default_rng(layer.seed)
    out = []
    for s in samples:
        if not s.objects:
            out.append(s)
            continue
        target = s.objects[0]["mask"]
        anything = np.zeros_like(target)
        for o in s.objects:
            anything |= o["mask"]
        n = int(rng.integers(layer.min_points, layer.max_points + 1))
        pos = _pick(rng, target, n)
        neg = _pick(rng, ~anything, n)
        out.append(replace(s, pos=s.pos + pos, neg=s.neg + neg))
    return out


def _pick(rng: np.random.Generator, mask: np.ndarray, n: int) -> list[list[float]]:
    """`n` distinct pixel centres of `mask` (fewer when it has fewer pixels), as [x, y]."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return []
    chosen = rng.choice(len(xs), size=min(n, len(xs)), replace=False)
    return [[float(xs[i]) + 0.5, float(ys[i]) + 0.5] for i in sorted(chosen)]


LAYERS = {"class_mapping": class_mapping, "objects_filter": objects_filter, "instances_crop": instances_crop,
          "split_tags": split_tags, "flip": flip, "multiply": multiply, "random_crop": random_crop,
          "sample_filter": sample_filter, "resize": resize, "generate_points": generate_points}


def apply(samples: list[Sample], layers: list[Any]) -> tuple[list[Sample], list[Counts]]:
    """Run typed `layers` over `samples`; returns the samples and each layer's counts."""
    every = []
    for layer in layers:
        counts = Counts(layer.action, samples_in=len(samples), objects_in=sum(len(s.objects) for s in samples))
        samples = LAYERS[layer.action](samples, layer, counts)
        counts.samples_out, counts.objects_out = len(samples), sum(len(s.objects) for s in samples)
        every.append(counts)
    return samples, every


# -- COCO in and out -----------------------------------------------------------------------------------------
def read_samples(root: Path) -> list[Sample]:
    """Samples of a COCO-layout folder (annotations/instances_default.json, images/); masks from polygons, RLE or
    boxes, as training rasterises them."""
    from PIL import Image

    from cvatflow.training.data import _rasterize, resolve_image

    data = json.loads((root / "annotations" / "instances_default.json").read_text())
    names = {c["id"]: c["name"] for c in data.get("categories", [])}
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for ann in data.get("annotations", []):
        if ann.get("iscrowd"):
            continue  # ignore regions are no target
        by_image.setdefault(ann["image_id"], []).append(ann)
    samples = []
    for img in data["images"]:
        path = resolve_image(root, str(img["file_name"]))
        if path is None:
            raise DatasetError(f"{img['file_name']}: image missing from the dataset; prepare it with --fix")
        with Image.open(path) as opened:
            image = np.asarray(opened.convert("RGB"))
        h, w = image.shape[:2]
        objects = []
        for ann in by_image.get(img["id"], []):
            x, y, bw, bh = ann.get("bbox") or [0, 0, 0, 0]
            mask = _rasterize(ann, h, w, h, w, [x, y, x + bw, y + bh]).astype(bool)
            if mask.any():
                objects.append({"category": names.get(ann["category_id"], str(ann["category_id"])), "mask": mask})
        samples.append(Sample(Path(str(img["file_name"])).stem, image, objects, list(img.get("tags") or [])))
    return samples


def write_samples(samples: list[Sample], out: Path) -> dict[str, Any]:
    """COCO layout in `out`: PNG images (lossless, so masks and pixels stay aligned), RLE masks, image `tags`
    and `points` ({"pos": [[x, y]], "neg": [...]}); train_val_split.json from the `train`/`val` tags when any."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    (out / "images").mkdir(parents=True)
    (out / "annotations").mkdir()
    categories = sorted({o["category"] for s in samples for o in s.objects})
    cat_ids = {name: i + 1 for i, name in enumerate(categories)}
    images, annotations = [], []
    for i, s in enumerate(samples, 1):
        name = f"{i:06d}.png"
        Image.fromarray(np.ascontiguousarray(s.image)).save(out / "images" / name)
        images.append({"id": i, "file_name": name, "width": s.width, "height": s.height, "tags": s.tags,
                       "points": {"pos": s.pos, "neg": s.neg}, "source": s.name})
        for o in s.objects:
            rle = mask_utils.encode(np.asfortranarray(o["mask"].astype(np.uint8)))
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": cat_ids[o["category"]],
                                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                                "area": float(mask_utils.area(rle)), "bbox": [x, y, w, h], "iscrowd": 0})
    coco = {"info": {"description": "cvatflow transform"}, "licenses": [], "images": images,
            "annotations": annotations,
            "categories": [{"id": cat_ids[n], "name": n, "supercategory": ""} for n in categories]}
    (out / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    tagged = [img for img in images if {"train", "val"} & set(img["tags"])]
    if tagged:
        split = {"train": [img["id"] for img in images if "val" not in img["tags"]],
                 "val": [img["id"] for img in images if "val" in img["tags"]], "method": "tags"}
        (out / "train_val_split.json").write_text(json.dumps(split, indent=1))
    return coco


def transform(source: str | Path, out_dir: str | Path, layers: list[Any] | None = None) -> dict[str, Any]:
    """Transform a CVAT export (zip or folder, any format ingest reads) or a prepared dataset into `out_dir`.

    `layers` are typed layers (`parse`) or plain dicts; default the Smart Tool pipeline. Writes the COCO layout
    plus dataset_report.json, whose `options.transform` lists each layer's counts; all into a temporary folder
    renamed at the end. Returns {"samples", "objects", "layers"}. Raises DatasetError on bad input or when no
    sample is left (naming the layer that dropped the last ones).
    """
    from cvatflow.datasets.ingest import ingest
    from cvatflow.datasets.prepare import is_prepared
    from cvatflow.datasets.report import DatasetReport
    from cvatflow.datasets.report import read as read_report
    from cvatflow.datasets.shown import rename

    source, out_dir = Path(source), Path(out_dir)
    if layers is None or any(isinstance(layer, dict) for layer in layers):
        layers = parse(SMARTTOOL_PIPELINE if layers is None else layers)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".transform-", dir=out_dir.parent))
    try:
        if is_prepared(source):
            root, report = source, read_report(source) or DatasetReport(source=source.name, format="COCO 1.0")
        else:
            info = ingest(source, work / "ingested")
            root, report = work / "ingested", info.ingest
        samples, counts = apply(read_samples(root), layers)
        if not samples or not any(s.objects for s in samples):
            last = next((c for c in reversed(counts) if c.samples_in and (not c.samples_out or not c.objects_out)),
                        counts[-1])
            raise DatasetError(f"{source}: the transform left no sample with an object (layer {last.action} "
                               f"dropped the last: {last.dropped}); loosen that layer's settings")
        staged = work / "out"
        write_samples(samples, staged)
        report.options = {**report.options, "transform": [c.to_dict() for c in counts]}
        report.write(staged)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staged.replace(out_dir)
        return {"samples": len(samples), "objects": sum(len(s.objects) for s in samples),
                "layers": [c.to_dict() for c in counts]}
    except DatasetError as error:
        rename(error, {work: source})
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summary(counts: list[dict[str, Any]]) -> list[str]:
    """One line per layer: samples and objects in -> out, and what it dropped."""
    lines = []
    for i, c in enumerate(counts, 1):
        dropped = "; ".join(f"{n} {why}" for why, n in sorted(c["dropped"].items()))
        lines.append(f"{i:2d} {c['action']}: samples {c['samples_in']} -> {c['samples_out']}, objects "
                     f"{c['objects_in']} -> {c['objects_out']}" + (f" (dropped: {dropped})" if dropped else ""))
    return lines
