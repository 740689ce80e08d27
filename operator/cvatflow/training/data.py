"""COCO datasets from `--data`: validation, file resolution, train/val split, fast decoding and batching."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cvatflow.datasets.stratify import split_stats, stratified
from cvatflow.errors import TrainingError
from cvatflow.training.sampler import EpochBatchSampler

ANNOTATIONS = Path("annotations") / "instances_default.json"
SPLIT_FILE = "train_val_split.json"


@dataclass
class CocoData:
    """A validated COCO dataset: categories, images with resolved paths, annotations per image, the split."""

    root: Path
    coco: dict[str, Any]
    categories: list[dict[str, Any]]  # sorted by id; model class index = position in this list
    paths: dict[int, Path]  # image id -> file
    anns: dict[int, list[dict[str, Any]]]  # image id -> annotations
    train_ids: list[int] = field(default_factory=list)
    val_ids: list[int] = field(default_factory=list)
    split: dict[str, Any] = field(default_factory=dict)
    report: Any = None  # the DatasetReport (dataset_report.json, or counted at load for an unprepared export)

    @property
    def class_titles(self) -> list[str]:
        return [c["name"] for c in self.categories]

    @property
    def cat_to_idx(self) -> dict[int, int]:
        return {c["id"]: i for i, c in enumerate(self.categories)}

    @property
    def has_masks(self) -> bool:
        return any(a.get("segmentation") for anns in self.anns.values() for a in anns)

    def images(self, ids: list[int]) -> list[dict[str, Any]]:
        by_id = {img["id"]: img for img in self.coco["images"]}
        return [by_id[i] for i in ids]

    def subset_coco(self, ids: list[int]) -> dict[str, Any]:
        """The COCO document of some images (ground truth for evaluation), original coordinates."""
        wanted = set(ids)
        anns = [dict(a, iscrowd=a.get("iscrowd", 0), area=a.get("area") or a["bbox"][2] * a["bbox"][3])
                for a in self.coco["annotations"] if a["image_id"] in wanted]
        return {"images": self.images(ids), "annotations": anns, "categories": self.categories}


def resolve_image(root: Path, file_name: str) -> Path | None:
    """The file of a COCO `file_name`, trying the places CVAT exports and Onepanel mounts put it."""
    images = root / "images"
    name = PurePosixPath(file_name.replace("\\", "/"))
    candidates = []
    if name.is_absolute():
        candidates.append(Path(str(name)))
    relative = str(name).lstrip("/")
    candidates += [images / relative, root / relative]
    # Onepanel rewrote file_name to an absolute mount prefix (/mnt/data/datasets/images/x.jpg) that may be
    # mounted elsewhere here: keep the part after the last `images/` component.
    parts = name.parts
    if "images" in parts:
        last = len(parts) - 1 - parts[::-1].index("images")
        candidates.append(images.joinpath(*parts[last + 1:]))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    # an unprepared CVAT export keeps each subset's files in images/<subset>/ (looked at last: it lists images/)
    if images.is_dir() and not name.is_absolute():
        for sub in sorted(p for p in images.iterdir() if p.is_dir()):
            if (sub / relative).is_file():
                return sub / relative
    return None


def load(root: Path | str, val_percent: float = 10.0, seed: int = 0, min_objects: int = 1,
         allow_untrained: bool = False) -> CocoData:
    """Read and check `<root>/annotations/instances_default.json` and its images; split train/val (stratified by
    class). A class with no training instance is a TrainingError unless `allow_untrained`.

    A dataset cvatflow prepared carries dataset_report.json and its annotations' fates are settled
    (`iscrowd` 1 = an ignore region). A raw COCO export gets ingest's rules here (iscrowd:1 masks are
    objects, rotated rectangles become polygons, ...) and a report counted now. Fewer than `min_objects`
    usable objects raise TrainingError with the report, before any model is built.
    """
    from cvatflow.datasets import report as reportlib
    from cvatflow.datasets import shapes

    root = Path(root)
    path = root / ANNOTATIONS
    if not path.is_file():
        raise TrainingError(f"--data {root}: {ANNOTATIONS} not found (pass the folder of a COCO 1.0 export "
                            f"with annotations/ and images/)")
    try:
        coco = json.loads(path.read_text())
    except ValueError as exc:
        raise TrainingError(f"--data {path}: not valid JSON ({exc}); export the task again as COCO 1.0") from None
    if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise TrainingError(f"--data {path}: not a COCO instances file (needs lists `images`, `annotations` "
                            f"and `categories`); export the task as COCO 1.0")
    if not coco["images"]:
        raise TrainingError(f"--data {path}: the dataset has no images (annotate some frames in CVAT and "
                            f"export again)")
    if not coco["categories"]:
        raise TrainingError(f"--data {path}: the dataset has no categories (add labels to the CVAT task)")
    if not coco["annotations"]:
        raise TrainingError(f"--data {path}: the dataset has no annotations (annotate objects in CVAT and "
                            f"export again)")
    report = reportlib.read(root)
    if report is None:
        report = reportlib.DatasetReport(source=str(root), format="COCO 1.0", options={"crowd": "object"})
        shapes.normalise(coco, report)
        shapes.tally(coco, report)
        for _ in coco["images"]:
            report.image(reportlib.KEPT)
    reportlib.require_usable(report, f"--data {root}", min_objects, error=TrainingError)
    categories = sorted(({"id": int(c["id"]), "name": str(c["name"]), "supercategory": c.get("supercategory", "")}
                         for c in coco["categories"]), key=lambda c: c["id"])
    known = {c["id"] for c in categories}
    image_ids = {img["id"] for img in coco["images"]}
    anns: dict[int, list[dict[str, Any]]] = {i: [] for i in image_ids}
    for ann in coco["annotations"]:
        if ann.get("category_id") not in known:
            raise TrainingError(f"--data {path}: annotation {ann.get('id')} has category_id "
                                f"{ann.get('category_id')} that is not in `categories` (fix the export)")
        if ann.get("image_id") not in anns:
            raise TrainingError(f"--data {path}: annotation {ann.get('id')} refers to image {ann.get('image_id')} "
                                f"that is not in `images` (fix the export)")
        anns[ann["image_id"]].append(ann)
    paths: dict[int, Path] = {}
    missing = []
    for img in coco["images"]:
        found = resolve_image(root, str(img["file_name"]))
        if found is None:
            missing.append(str(img["file_name"]))
        else:
            paths[img["id"]] = found
    if missing:
        raise TrainingError(f"--data {root}: {len(missing)} of {len(coco['images'])} images are missing "
                            f"(e.g. {', '.join(missing[:3])}); export the task with 'Save images' on, or put "
                            f"the files under {root / 'images'}")
    data = CocoData(root=root, coco=coco, categories=categories, paths=paths, anns=anns, report=report)
    _split(data, val_percent, seed)
    data.split.update(split_stats(coco, data.split, allow_untrained, f"--data {root}", TrainingError))
    return data


def _split(data: CocoData, val_percent: float, seed: int) -> None:
    """Use `train_val_split.json` when present, else a seeded split of `val_percent`, stratified by class."""
    split_path = data.root / SPLIT_FILE
    ids = sorted(data.paths)
    if split_path.is_file():
        try:
            split = json.loads(split_path.read_text())
            train, val = [int(i) for i in split["train"]], [int(i) for i in split["val"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise TrainingError(f"--data {split_path}: expected {{\"train\": [image ids], \"val\": [image ids]}} "
                                f"({exc}); fix or delete the file") from None
        unknown = sorted(set(train + val) - set(ids))
        if unknown:
            raise TrainingError(f"--data {split_path}: image ids {unknown[:5]} are not in the annotations "
                                f"(regenerate the split or delete the file)")
        if not train:
            raise TrainingError(f"--data {split_path}: the train list is empty (put images into it)")
        data.split = {**split, "train": train, "val": val}
    else:
        train, val = (sorted(part) for part in stratified(data.coco, val_percent, seed))
        data.split = {"train": train, "val": val, "method": "random", "seed": seed, "val_percent": val_percent,
                      "stratified": "rarest class first"}
    data.train_ids, data.val_ids = train, val or train  # a one-image dataset validates on its training image


def _target_size(height: int, width: int, image_size: int) -> tuple[int, int, float]:
    """Resize so that the longest side is `image_size` (small images are enlarged too)."""
    scale = image_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale)), scale


class DetectionDataset:
    """Map-style dataset: decoded, resized uint8 images and targets in model-input pixels (0-based labels)."""

    def __init__(self, data: CocoData, ids: list[int], image_size: int, masks: bool, hflip: float = 0.0,
                 seed: int = 0):
        self.data, self.ids, self.image_size, self.masks, self.hflip = data, list(ids), image_size, masks, hflip
        self.seed = seed
        self.cat_to_idx = data.cat_to_idx
        self.meta = {img["id"]: img for img in data.coco["images"]}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        import torch
        from torchvision.transforms.v2 import functional as F

        from cvatflow.datasets.images import decode_rgb

        epoch, index = divmod(index, len(self.ids))  # EpochBatchSampler adds epoch * len to shuffled indices
        image_id = self.ids[index]
        meta = self.meta[image_id]
        # One decode: torchvision for JPEG/PNG/GIF/WebP (16-bit scaled), PIL for BMP/TIFF; EXIF orientation as
        # CVAT shows the image, unless ingest found the annotations drawn on the stored pixels.
        image = decode_rgb(self.data.paths[image_id], apply_exif=meta.get("exif", True))
        height, width = image.shape[-2:]
        new_h, new_w, _ = _target_size(height, width, self.image_size)
        if (new_h, new_w) != (height, width):
            image = F.resize(image, [new_h, new_w], antialias=True)
        # Annotations are in the coordinates of the size they were drawn on (ingest refuses files of another size).
        ann_w, ann_h = int(meta.get("width") or width), int(meta.get("height") or height)
        sx, sy = new_w / ann_w, new_h / ann_h
        boxes, labels, masks = [], [], []
        for ann in self.data.anns[image_id]:
            if ann.get("iscrowd"):
                continue  # an ignore region (ingest's crowd rule, VOC difficult, MOT ignored): no positive
            x, y, w, h = (float(v) for v in ann["bbox"])
            box = [max(0.0, x * sx), max(0.0, y * sy), min(new_w, (x + w) * sx), min(new_h, (y + h) * sy)]
            if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
                continue  # nothing left inside the image; ingest counted it (empty box / outside the image)
            boxes.append(box)
            labels.append(self.cat_to_idx[ann["category_id"]])
            if self.masks:
                masks.append(_rasterize(ann, ann_h, ann_w, new_h, new_w, box))
        target: dict[str, Any] = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "image_id": image_id,
            "scale": (sy, sx),
            "orig_size": (height, width),
        }
        if self.masks:
            target["masks"] = (torch.from_numpy(__import__("numpy").stack(masks)) if masks
                               else torch.zeros((0, new_h, new_w), dtype=torch.uint8))
        # augmentation seeded by (seed, epoch, sample): the same in any worker, on any rerun
        if self.hflip and random.Random(f"{self.seed}:{epoch}:{index}").random() < self.hflip:
            image = image.flip(-1)
            b = target["boxes"]
            target["boxes"] = torch.stack([new_w - b[:, 2], b[:, 1], new_w - b[:, 0], b[:, 3]], dim=1)
            if self.masks:
                target["masks"] = target["masks"].flip(-1)
        return image, target


def _rasterize(ann: dict[str, Any], height: int, width: int, new_h: int, new_w: int, box: list[float]):
    """The instance mask at model-input size: polygons are scaled then rasterised; RLE is decoded and resized."""
    import numpy as np
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    sx, sy = new_w / width, new_h / height
    if isinstance(seg, list) and seg:
        polygons = [[v * (sx if i % 2 == 0 else sy) for i, v in enumerate(poly)] for poly in seg if len(poly) >= 6]
        if polygons:
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, new_h, new_w))
            return mask_utils.decode(rle)
    elif isinstance(seg, dict):
        rle = mask_utils.frPyObjects(seg, height, width) if isinstance(seg.get("counts"), list) else seg
        full = mask_utils.decode(rle)
        rows = (np.arange(new_h) / sy).astype(int).clip(0, height - 1)
        cols = (np.arange(new_w) / sx).astype(int).clip(0, width - 1)
        return np.ascontiguousarray(full[rows][:, cols])
    # a rectangle without a mask: the box is the best mask there is
    mask = np.zeros((new_h, new_w), dtype=np.uint8)
    x0, y0, x1, y1 = (round(v) for v in box)
    mask[y0:y1, x0:x1] = 1
    return mask


def collate(batch: list[tuple[Any, dict[str, Any]]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Detection batches stay lists: images differ in size; adapters pad or not as their model needs."""
    return [b[0] for b in batch], [b[1] for b in batch]


def _seed_worker(worker_id: int) -> None:
    import torch

    from cvatflow.training.preemption import ignore_in_workers

    random.seed(torch.initial_seed() % 2**32)
    ignore_in_workers()


def loader(dataset: DetectionDataset, batch_size: int, num_workers: int, seed: int, shuffle: bool,
           pin_memory: bool = False, sampler: Any = None):
    """A DataLoader with the fast options: workers that persist, prefetching, pinned memory on GPUs. `sampler`
    (a batch sampler) replaces the one-process EpochBatchSampler, e.g. a rank's GlobalBatchSampler."""
    import torch
    from torch.utils.data import DataLoader

    if sampler is None:
        sampler = EpochBatchSampler(len(dataset), batch_size, seed, shuffle)
    generator = torch.Generator().manual_seed(seed)
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=4, worker_init_fn=_seed_worker)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate,
                      pin_memory=pin_memory, generator=generator, **kwargs)
