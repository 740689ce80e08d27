"""Ultralytics YOLO exports (Detection, Segmentation, Oriented Bounding Boxes, Pose 1.0) to COCO, kinds counted."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cvatflow.config import input_limits
from cvatflow.datasets.images import IMAGE_SUFFIXES
from cvatflow.datasets.report import DROPPED, DatasetReport
from cvatflow.datasets.shapes import polygon_box
from cvatflow.datasets.yolo_schema import data_yaml, label_lines, parse_line

META = "data.yaml"


def is_ultralytics(root: Path) -> bool:
    """CVAT's Ultralytics layout: data.yaml beside labels/<subset>/*.txt (and images/<subset>/)."""
    return (root / META).is_file() and (root / "labels").is_dir()


def names(root: Path) -> tuple[list[str], bool]:
    """Class names in class-index order from data.yaml (`names` as a list or {index: name}), and whether it is a
    Pose export (`kpt_shape`). Raises DatasetError naming data.yaml (yolo_schema.data_yaml)."""
    meta = data_yaml(root / META)
    return meta.labels(), "kpt_shape" in meta.model_fields_set


def fmt(root: Path) -> str:
    """The CVAT format name, by the label lines: 5 values a box, 9 an oriented box, more a polygon."""
    if names(root)[1]:
        return "Ultralytics YOLO Pose 1.0"
    limits, seen, lengths = input_limits(), 0, set()
    for path in sorted((root / "labels").rglob("*.txt")):
        lines = label_lines(path, str(root / "labels"), limits, seen)
        seen += len(lines)
        lengths |= {len(line.split()) for _, line in lines}
    if lengths and lengths <= {5, 6}:
        return "Ultralytics YOLO Detection 1.0"
    if lengths == {9}:
        return "Ultralytics YOLO Oriented Bounding Boxes 1.0"
    return "Ultralytics YOLO Segmentation 1.0"


def read(root: Path, report: DatasetReport) -> dict[str, Any]:
    """A COCO document of the export: normalised coordinates scaled by each image's size (read from the file,
    EXIF orientation applied, as CVAT shows it). Lines that are no class index and finite numbers are counted as
    dropped. Raises DatasetError naming the file for a data.yaml or label file that cannot be read (not UTF-8,
    over the input limits)."""
    from cvatflow.datasets.images import probe

    limits, seen = input_limits(), 0

    labels, pose = names(root)
    kind_of_format = fmt(root)
    coco: dict[str, Any] = {"info": {}, "licenses": [], "images": [], "annotations": [],
                            "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(labels)]}
    images = sorted(p for p in (root / "images").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()) \
        if (root / "images").is_dir() else []
    for path in images:
        relative = path.relative_to(root / "images")
        subset, name = (relative.parts[0], Path(*relative.parts[1:]).as_posix()) if len(relative.parts) > 1 \
            else ("", relative.as_posix())
        facts = probe(path)
        image_id = len(coco["images"]) + 1
        coco["images"].append({"id": image_id, "file_name": name, "width": facts.width, "height": facts.height,
                               **({"subset": subset} if subset else {})})
        label_file = (root / "labels" / relative).with_suffix(".txt")
        if not label_file.is_file() or not facts.width:
            continue
        lines = label_lines(label_file, str(root / "labels"), limits, seen)
        seen += len(lines)
        for number, line in lines:
            _line(line, f"{label_file.relative_to(root)}:{number}", image_id, facts.width, facts.height,
                  pose, kind_of_format, coco, report)
    return coco


def _line(line: str, where: str, image_id: int, width: int, height: int, pose: bool, kind_of_format: str,
          coco: dict[str, Any], report: DatasetReport) -> None:
    parsed = parse_line(line)
    if parsed is None:
        report.obj("line", DROPPED, "broken segmentation", where)
        return
    category, numbers = parsed.index + 1, parsed.numbers
    ann: dict[str, Any] = {"id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": category,
                           "iscrowd": 0, "segmentation": [], "attributes": {}}
    if pose or len(numbers) in (4, 5):  # cx cy w h [track id] (Pose: then the key points)
        if len(numbers) < 4:
            report.obj("rectangle", DROPPED, "broken segmentation", where)
            return
        cx, cy, w, h = numbers[:4]
        ann["bbox"] = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
        ann["_kind"] = "skeleton" if pose else "rectangle"
        if pose:
            ann["_converted"] = "box of an Ultralytics Pose object (key points not trained)"
    elif len(numbers) >= 6 and len(numbers) % 2 == 0:
        flat = [v * (width if i % 2 == 0 else height) for i, v in enumerate(numbers)]
        ann["segmentation"], ann["bbox"] = [flat], polygon_box(flat)
        if kind_of_format.startswith("Ultralytics YOLO Oriented"):
            ann["_kind"], ann["_converted"] = "rotated rectangle", \
                "rotated rectangle to rotated polygon mask + enclosing box"
        else:
            ann["_kind"] = "polygon"
    else:
        report.obj("line", DROPPED, "broken segmentation", where)
        return
    coco["annotations"].append(ann)
