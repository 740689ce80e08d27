"""CVAT for images / video 1.1 (annotations.xml) to COCO, every shape kind with its fate counted."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from cvatflow.datasets.report import DROPPED, DatasetReport
from cvatflow.datasets.shapes import ellipse_polygon, polygon_box, rotated_box
from cvatflow.errors import DatasetError

SKIPPED = ("polyline", "points", "cuboid", "skeleton")  # nothing a box/mask model learns from
_FRAME = re.compile(r"(\d+)(?=\.[^.]+$)")


def is_video(root: ET.Element) -> bool:
    """A "CVAT for video 1.1" document: tracks at the top level and no <image> elements."""
    return root.find("track") is not None and root.find("image") is None


def read(xml: Path, images: list[Path], report: DatasetReport) -> dict[str, Any]:
    """A COCO document (images with file_name, subset, tags; annotations with `_kind`) from `annotations.xml`.

    `images` are the export's image files, for matching video frames by number. Shapes a detector cannot learn
    from (polylines, points, cuboids, skeletons) are counted in `report` as dropped; outside track frames too.
    """
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise DatasetError(f"{xml.name}: not valid XML ({exc}); export the task again") from None
    # Skeleton parts (labels with a <parent>) are no classes of their own.
    labels = [label.findtext("name") or "" for label in root.iterfind("meta/*/labels/label")
              if label.find("parent") is None]
    coco: dict[str, Any] = {"info": {}, "licenses": [], "categories": [], "images": [], "annotations": []}
    category: dict[str, int] = {}

    def category_id(name: str) -> int:
        if not name:
            return 0  # a shape without a label: validation reports it (or --fix drops it as "unknown category")
        if name not in category:
            category[name] = len(category) + 1
            coco["categories"].append({"id": category[name], "name": name, "supercategory": ""})
        return category[name]

    for name in dict.fromkeys(labels):
        if name:
            category_id(name)
    if is_video(root):
        frames = _video_frames(root, images)
        coco["images"] = [frames[f] for f in sorted(frames)]
        for track in root.iterfind("track"):
            for shape in track:
                frame = int(shape.get("frame", -1))
                image = frames.get(frame)
                if shape.get("outside") == "1":  # the track leaves the view here (maybe past the last frame)
                    report.obj(_kind(shape), DROPPED, "outside frame", f"track {track.get('id')} frame {frame}")
                    continue
                if image is None:
                    report.obj(_kind(shape), DROPPED, "no image", f"track {track.get('id')} frame {frame}")
                    continue
                shape.set("label", track.get("label", ""))
                converted = "" if shape.get("keyframe") == "1" else "interpolated track frame"
                _shape(shape, image["id"], coco, category_id, report, converted)
        return coco
    for element in root.iterfind("image"):
        image = {"id": int(element.get("id", len(coco["images"]))) + 1, "file_name": element.get("name", ""),
                 "width": int(float(element.get("width", 0))), "height": int(float(element.get("height", 0)))}
        if element.get("subset"):
            image["subset"] = element.get("subset")
        tags = [tag.get("label", "") for tag in element.iterfind("tag")]
        if tags:
            image["tags"] = sorted(set(tags))
        coco["images"].append(image)
        for shape in element:
            if shape.tag not in ("tag", "attribute"):
                _shape(shape, image["id"], coco, category_id, report, "")
    return coco


def _video_frames(root: ET.Element, images: list[Path]) -> dict[int, dict[str, Any]]:
    """Frame number -> COCO image, from the export's files (frame_000012.jpg is frame 12)."""
    width = int(float(root.findtext("meta/*/original_size/width") or 0))
    height = int(float(root.findtext("meta/*/original_size/height") or 0))
    frames = {}
    for path in sorted(images):
        match = _FRAME.search(path.name)
        if match:
            number = int(match.group(1))
            frames[number] = {"id": number + 1, "file_name": path.name, "width": width, "height": height}
    return frames


def _kind(shape: ET.Element) -> str:
    if shape.tag == "box":
        return "rotated rectangle" if float(shape.get("rotation", 0) or 0) % 360 else "rectangle"
    return {"polygon": "polygon", "mask": "mask", "ellipse": "ellipse"}.get(shape.tag, shape.tag)


def _points(text: str) -> list[float]:
    return [float(v) for pair in (text or "").split(";") if pair for v in pair.split(",")]


def _shape(shape: ET.Element, image_id: int, coco: dict[str, Any], category_id, report: DatasetReport,
           converted: str) -> None:
    """Append one shape as a COCO annotation, or count it as dropped by kind."""
    kind = _kind(shape)
    where = f"{shape.tag} on image {image_id - 1}"
    if shape.tag in SKIPPED or kind not in ("rectangle", "rotated rectangle", "polygon", "mask", "ellipse"):
        report.obj(kind, DROPPED, "not a detection shape", where)
        return
    attributes = {a.get("name", ""): a.text for a in shape.iterfind("attribute")}
    attributes["occluded"] = shape.get("occluded") == "1"
    ann: dict[str, Any] = {"id": len(coco["annotations"]) + 1, "image_id": image_id,
                           "category_id": category_id(shape.get("label", "")), "iscrowd": 0,
                           "attributes": attributes, "_kind": kind}
    rotation = float(shape.get("rotation", 0) or 0)
    if shape.tag == "box":
        x0, y0, x1, y1 = (float(shape.get(k, 0)) for k in ("xtl", "ytl", "xbr", "ybr"))
        ann["bbox"], ann["segmentation"] = [x0, y0, x1 - x0, y1 - y0], []
        if kind == "rotated rectangle":
            polygon = rotated_box(x0, y0, x1 - x0, y1 - y0, rotation)
            ann["segmentation"], ann["bbox"] = [polygon], polygon_box(polygon)
            converted = "rotated rectangle to rotated polygon mask + enclosing box"
    elif shape.tag == "polygon":
        flat = _points(shape.get("points", ""))
        ann["segmentation"] = [flat]
        ann["bbox"] = polygon_box(flat) if len(flat) >= 2 else [0, 0, 0, 0]
    elif shape.tag == "ellipse":
        cx, cy, rx, ry = (float(shape.get(k, 0)) for k in ("cx", "cy", "rx", "ry"))
        flat = ellipse_polygon(cx, cy, rx, ry, rotation)
        ann["segmentation"], ann["bbox"] = [flat], polygon_box(flat)
        converted = converted or "ellipse to polygon mask + box"
    else:  # mask
        ann["segmentation"], ann["bbox"] = _mask(shape, coco, image_id)
    if converted:
        ann["_converted"] = converted
    coco["annotations"].append(ann)


def _mask(shape: ET.Element, coco: dict[str, Any], image_id: int) -> tuple[dict[str, Any], list[float]]:
    """CVAT's XML mask (run lengths from 0 over its left/top/width/height box, row by row) as a COCO RLE."""
    import numpy as np
    from pycocotools import mask as mask_utils

    image = next(i for i in coco["images"] if i["id"] == image_id)
    left, top, width, height = (int(float(shape.get(k, 0))) for k in ("left", "top", "width", "height"))
    runs = [int(v) for v in (shape.get("rle") or "").replace(" ", "").split(",") if v]
    flat = np.zeros(width * height, dtype=np.uint8)
    position, value = 0, 0
    for run in runs:
        flat[position:position + run] = value
        position, value = position + run, 1 - value
    full = np.zeros((image["height"], image["width"]), dtype=np.uint8, order="F")
    full[top:top + height, left:left + width] = flat.reshape(height, width)[:max(0, image["height"] - top),
                                                                            :max(0, image["width"] - left)]
    rle = mask_utils.encode(np.asfortranarray(full))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}, \
        [float(v) for v in mask_utils.toBbox(rle)]
