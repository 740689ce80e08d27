"""COCO annotation files: merge CVAT's subsets into one, validate every record, and fix what is safe to fix."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvatflow.datasets import coco_schema
from cvatflow.errors import DatasetError, Problem
from cvatflow.jsonlimits import loads

COCO_FILE = "annotations/instances_default.json"


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = loads(Path(path).read_bytes(), str(path), error=DatasetError)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; a COCO dataset has annotations/instances_default.json") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path}: not a COCO annotation file (no `images` list)")
    coco_schema.check(data, path)  # types and limits, before any record is read
    return data


def merge(files: dict[str, Path]) -> dict[str, Any]:
    """One COCO document from CVAT's per-subset files; each image remembers its subset.

    Categories are matched by name, since subsets exported separately may number them differently;
    image and annotation ids are renumbered so they stay unique.
    """
    merged: dict[str, Any] = {"info": {}, "licenses": [], "categories": [], "images": [], "annotations": []}
    by_name: dict[str, int] = {}
    for subset, path in sorted(files.items()):
        data = read_json(path)
        merged["info"] = data.get("info") or merged["info"]
        merged["licenses"] = data.get("licenses") or merged["licenses"]
        _check_ids(data, path, subset)
        category_ids = {}
        for category in data.get("categories") or []:
            name = category.get("name")
            if name not in by_name:
                by_name[name] = len(by_name) + 1
                merged["categories"].append({**category, "id": by_name[name]})
            category_ids[category.get("id")] = by_name[name]
        image_ids = {}
        for image in data["images"]:
            new_id = len(merged["images"]) + 1
            image_ids[image.get("id")] = new_id
            merged["images"].append({**image, "id": new_id, "subset": image.get("subset", subset)})
        for annotation in data.get("annotations") or []:
            merged["annotations"].append({
                **annotation, "id": len(merged["annotations"]) + 1,
                "image_id": image_ids.get(annotation.get("image_id"), -1),
                "category_id": category_ids.get(annotation.get("category_id"), annotation.get("category_id")),
            })
    return merged


def _check_ids(data: dict[str, Any], path: Path, subset: str) -> None:
    """Refuse what merging would hide: an image or category id used twice, and a file_name that leaves the
    export (absolute, or with `..`), each named by its entry."""
    from pathlib import PurePosixPath

    where = f"{Path(path).name}"
    for key in ("images", "categories"):
        seen: set = set()
        for i, entry in enumerate(data.get(key) or []):
            if not isinstance(entry, dict):
                raise DatasetError(f"{where}: {key}[{i}] is not an object; export the task again")
            if entry.get("id") in seen:
                noun = "image" if key == "images" else "category"
                raise DatasetError(f"{where}: {key}[{i}] reuses {noun} id {entry.get('id')!r}; every {noun} "
                                   f"needs its own id (fix the file or export the task again)")
            seen.add(entry.get("id"))
    for i, image in enumerate(data.get("images") or []):
        name = str(image.get("file_name", "")).replace("\\", "/")
        pure = PurePosixPath(name)
        if pure.is_absolute() or (len(name) > 1 and name[1] == ":") or ".." in pure.parts:
            raise DatasetError(f"{where}: images[{i}] file_name {name!r} points outside the export "
                               f"({'absolute path' if '..' not in pure.parts else 'goes up with ..'}); "
                               f"use a path relative to images/{subset}/")


@dataclass
class Report:
    """What validation found: counts, and problems (errors block training; `--fix` repairs some)."""

    images: int = 0
    annotations: int = 0
    categories: list[str] = field(default_factory=list)
    per_category: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    fixed: int = 0


def validate(data: dict[str, Any], images_dir: Path, fix: bool = False, ingest=None) -> Report:
    """Check a COCO document against its images folder; with `fix`, clip boxes and drop empty ones in place.

    `ingest` (a DatasetReport) counts what `fix` drops, by kind and reason.
    """
    from cvatflow.datasets.shapes import drop

    def dropped(ann: dict[str, Any], reason: str) -> None:
        report.fixed += 1
        if ingest is not None:
            drop(ann, ingest, reason)
    report = Report(images=len(data.get("images") or []), annotations=len(data.get("annotations") or []))
    problems = report.problems
    categories = {}
    for i, category in enumerate(data.get("categories") or []):
        if category.get("id") in categories:
            problems.append(Problem(f"categories[{i}]", f"category id {category.get('id')} is used twice",
                                    "give each category its own id"))
        categories[category.get("id")] = category.get("name")
    report.categories = [c for c in categories.values()]
    if not categories:
        problems.append(Problem("categories", "the dataset has no categories", "add labels to the CVAT task"))
    images = {}
    present = []
    for i, image in enumerate(data.get("images") or []):
        if image.get("id") in images:
            problems.append(Problem(f"images[{i}]", f"image id {image.get('id')} is used twice",
                                    "give each image its own id"))
        name = str(image.get("file_name", ""))
        if not name or not (images_dir / name).is_file():
            if fix:
                report.fixed += 1
                if ingest is not None:
                    ingest.image("dropped", "image missing", name)
                continue  # dropped, with its annotations (below they find no image)
            problems.append(Problem(f"images[{i}]", f"image file {name!r} is missing from images/",
                                    "export the task with images (save_images), add the file, or use --fix"))
        images[image.get("id")] = image
        present.append(image)
    if not images:
        problems.append(Problem("images", "the dataset has no images", "annotate at least one image in CVAT"))
    seen: set = set()
    kept = []
    for i, ann in enumerate(data.get("annotations") or []):
        where = f"annotations[{i}]"
        if ann.get("id") in seen:
            problems.append(Problem(where, f"annotation id {ann.get('id')} is used twice", "renumber annotations"))
        seen.add(ann.get("id"))
        image = images.get(ann.get("image_id"))
        unusable = None  # a record that refers to nothing: dropped with --fix, else reported
        reason = "no image" if image is None else "unknown category"
        if image is None:
            unusable = Problem(where, f"refers to image {ann.get('image_id')}, which does not exist",
                               "remove the annotation, add the image, or use --fix")
        elif ann.get("category_id") not in categories:
            unusable = Problem(where, f"refers to category {ann.get('category_id')}, which does not exist",
                               "add the category, fix category_id, or use --fix to drop it")
        if unusable is not None:
            if fix:
                dropped(ann, reason)
            else:
                problems.append(unusable)
            continue
        problem = _segmentation_problem(ann, image)
        if problem and fix:
            dropped(ann, "broken segmentation")
            continue
        if problem:
            problems.append(Problem(where, problem, "redraw the shape in CVAT, or use --fix to drop it"))
        keep = _check_box(ann, image, where, problems, fix)
        if keep:
            kept.append(ann)
            name = categories[ann["category_id"]]
            report.per_category[name] = report.per_category.get(name, 0) + 1
        else:
            dropped(ann, "empty box")
    if fix:
        report.fixed += sum(1 for a in kept if a.pop("_clipped", False))
        data["annotations"] = kept
        data["images"] = present
        report.annotations, report.images = len(kept), len(present)
    return report


def _check_box(ann: dict[str, Any], image: dict[str, Any], where: str, problems: list[Problem], fix: bool) -> bool:
    box = ann.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        problems.append(Problem(where, f"bbox {box!r} is not [x, y, width, height]", "redraw the box"))
        return not fix
    x, y, w, h = box
    width, height = image.get("width") or 0, image.get("height") or 0
    outside = width and height and (x < -0.5 or y < -0.5 or x + w > width + 0.5 or y + h > height + 0.5)
    if outside:
        if not fix:
            problems.append(Problem(where, f"bbox {box} leaves the {width}x{height} image", "use --fix to clip it"))
        else:
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(float(width), x + w), min(float(height), y + h)
            x, y, w, h = x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)
            ann["bbox"], ann["_clipped"] = [x, y, w, h], True
    if w <= 0 or h <= 0:
        if not fix:
            problems.append(Problem(where, f"bbox {ann['bbox']} is empty", "use --fix to drop it"))
            return True
        return False
    return True


def _segmentation_problem(ann: dict[str, Any], image: dict[str, Any]) -> str | None:
    segmentation = ann.get("segmentation")
    if segmentation in (None, [], {}):
        return None
    if isinstance(segmentation, list):
        for polygon in segmentation:
            if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                return "a polygon needs an even number of coordinates, at least 3 points"
            if not all(isinstance(v, (int, float)) for v in polygon):
                return "a polygon has coordinates that are not numbers"
        return None
    if isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if not (isinstance(size, list) and len(size) == 2):
            return "an RLE mask needs size [height, width]"
        if image.get("height") and image.get("width") and list(size) != [image["height"], image["width"]]:
            return f"RLE size {size} does not match the image {image['height']}x{image['width']}"
        if isinstance(counts, list):
            if sum(counts) != size[0] * size[1]:
                return "RLE counts do not add up to height x width"
        elif not isinstance(counts, str):
            return "RLE counts must be a list or a compressed string"
        return None
    return "segmentation must be polygons or an RLE mask"
