"""CVAT for images / video 1.1 (annotations.xml) to COCO, every shape kind with its fate counted."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cvatflow.config import input_limits
from cvatflow.datasets.cvat_schema import Document, Shape, load
from cvatflow.datasets.report import DROPPED, DatasetReport, unlabelled_error
from cvatflow.datasets.shapes import ellipse_polygon, polygon_box, rotated_box
from cvatflow.errors import DatasetError

SKIPPED = ("polyline", "points", "cuboid", "skeleton")  # nothing a box/mask model learns from
_FRAME = re.compile(r"(\d+)(?=\.[^.]+$)")


def read(xml: Path, images: list[Path], report: DatasetReport, fix: bool = False) -> dict[str, Any]:
    """A COCO document (images with file_name, subset, tags; annotations with `_kind`) from `annotations.xml`.

    `images` are the export's image files, for matching video frames by number. Shapes a detector cannot learn
    from (polylines, points, cuboids, skeletons) are counted in `report` as dropped; outside track frames too.
    A label missing from <meta> becomes a class of its own; a shape with an empty label (label="") has none,
    and CVAT's importer refuses it ("not registered for this task"): with `fix` it is counted as dropped
    ("no label"), else it is an error.
    Raises DatasetError naming `xml` for a file that is not a CVAT XML file within the input limits
    (cvat_schema.load), for a mask on an image over the `mask_pixels` limit, and (without `fix`) for shapes
    without a label, naming each shape and its image or frame.
    """
    document = load(xml)
    coco: dict[str, Any] = {"info": {}, "licenses": [], "categories": [], "images": [], "annotations": []}
    category: dict[str, int] = {}
    unlabelled: list[str] = []  # shapes without a label, as "<box> 1 on image 'a.png'"

    def category_id(name: str) -> int:
        if name not in category:
            category[name] = len(category) + 1
            coco["categories"].append({"id": category[name], "name": name, "supercategory": ""})
        return category[name]

    # Skeleton parts (labels with a <parent>) are no classes of their own.
    for name in dict.fromkeys(label.name for label in document.labels if label.parent is None):
        if name:
            category_id(name)
    if document.video:
        frames = _video_frames(document, images)
        coco["images"] = [frames[f] for f in sorted(frames)]
        for number, track in enumerate(document.tracks):
            for shape in track.shapes:
                image = frames.get(shape.frame)
                if shape.outside:  # the track leaves the view here (maybe past the last frame)
                    report.obj(_kind(shape), DROPPED, "outside frame", f"track {track.id} frame {shape.frame}")
                    continue
                if image is None:
                    report.obj(_kind(shape), DROPPED, "no image", f"track {track.id} frame {shape.frame}")
                    continue
                converted = "" if shape.keyframe else "interpolated track frame"
                where = (f"<{shape.tag}> of <track> {number if track.id is None else track.id} at frame "
                         f"{shape.frame} ({image['file_name']!r})")
                _shape(xml, shape, track.label, image, coco, category_id, report, converted, where, fix, unlabelled)
        _refuse_unlabelled(xml, unlabelled)
        return coco
    for element in document.images:
        image = {"id": (len(coco["images"]) if element.id is None else element.id) + 1,
                 "file_name": element.name, "width": element.width, "height": element.height}
        if element.subset:
            image["subset"] = element.subset
        if element.tags:
            image["tags"] = sorted(set(element.tags))
        coco["images"].append(image)
        for index, shape in enumerate(element.shapes):
            where = f"<{shape.tag}> {index} on image {element.name!r}"
            _shape(xml, shape, shape.label, image, coco, category_id, report, "", where, fix, unlabelled)
    _refuse_unlabelled(xml, unlabelled)
    return coco


def _refuse_unlabelled(xml: Path, unlabelled: list[str]) -> None:
    if unlabelled:
        raise unlabelled_error(xml, unlabelled, '(label="")')


def _video_frames(document: Document, images: list[Path]) -> dict[int, dict[str, Any]]:
    """Frame number -> COCO image, from the export's files (frame_000012.jpg is frame 12)."""
    frames = {}
    for path in sorted(images):
        match = _FRAME.search(path.name)
        if match:
            number = int(match.group(1))
            frames[number] = {"id": number + 1, "file_name": path.name, "width": document.width,
                              "height": document.height}
    return frames


def _kind(shape: Shape) -> str:
    if shape.tag == "box":
        return "rotated rectangle" if shape.rotation % 360 else "rectangle"
    return {"polygon": "polygon", "mask": "mask", "ellipse": "ellipse"}.get(shape.tag, shape.tag)


def _shape(xml: Path, shape: Shape, label: str, image: dict[str, Any], coco: dict[str, Any], category_id,
           report: DatasetReport, converted: str, where: str, fix: bool, unlabelled: list[str]) -> None:
    """Append one shape as a COCO annotation, or count it as dropped by kind; `where` names it for the user.

    A shape without a label is dropped ("no label") with `fix`, else added to `unlabelled` (an error later).
    """
    kind = _kind(shape)
    if shape.tag in SKIPPED or kind not in ("rectangle", "rotated rectangle", "polygon", "mask", "ellipse"):
        report.obj(kind, DROPPED, "not a detection shape", where)
        return
    if not label:
        if fix:
            report.obj(kind, DROPPED, "no label", where)
        else:
            unlabelled.append(where)
        return
    attributes: dict[str, Any] = dict(shape.attributes)
    attributes["occluded"] = shape.occluded
    ann: dict[str, Any] = {"id": len(coco["annotations"]) + 1, "image_id": image["id"],
                           "category_id": category_id(label), "iscrowd": 0, "attributes": attributes, "_kind": kind}
    if shape.tag == "box":
        x0, y0, x1, y1 = shape.xtl, shape.ytl, shape.xbr, shape.ybr
        ann["bbox"], ann["segmentation"] = [x0, y0, x1 - x0, y1 - y0], []
        if kind == "rotated rectangle":
            polygon = rotated_box(x0, y0, x1 - x0, y1 - y0, shape.rotation)
            ann["segmentation"], ann["bbox"] = [polygon], polygon_box(polygon)
            converted = "rotated rectangle to rotated polygon mask + enclosing box"
    elif shape.tag == "polygon":
        flat = shape.points
        ann["segmentation"] = [flat]
        ann["bbox"] = polygon_box(flat) if len(flat) >= 2 else [0, 0, 0, 0]
    elif shape.tag == "ellipse":
        flat = ellipse_polygon(shape.cx, shape.cy, shape.rx, shape.ry, shape.rotation)
        ann["segmentation"], ann["bbox"] = [flat], polygon_box(flat)
        converted = converted or "ellipse to polygon mask + box"
    else:  # mask
        ann["segmentation"], ann["bbox"] = _mask(xml, shape, image)
    if converted:
        ann["_converted"] = converted
    coco["annotations"].append(ann)


def _mask(xml: Path, shape: Shape, image: dict[str, Any]) -> tuple[dict[str, Any], list[float]]:
    """CVAT's XML mask (run lengths from 0 over its left/top/width/height box, row by row) as a COCO RLE."""
    import numpy as np
    from pycocotools import mask as mask_utils

    limit = input_limits().mask_pixels
    if image["width"] * image["height"] > limit:  # the mask is decoded at the image's size
        raise DatasetError(f"{xml}: a mask on image {image['file_name']!r} of {image['width']}x{image['height']} "
                           f"pixels, over the limit of {limit:,} (CVATFLOW_MAX_MASK_PIXELS); raise it if the "
                           f"images are this large")
    left, top, width, height = shape.left, shape.top, shape.width, shape.height
    flat = np.zeros(width * height, dtype=np.uint8)
    position, value = 0, 0
    for run in shape.rle:
        flat[position:position + run] = value
        position, value = position + run, 1 - value
    full = np.zeros((image["height"], image["width"]), dtype=np.uint8, order="F")
    full[top:top + height, left:left + width] = flat.reshape(height, width)[:max(0, image["height"] - top),
                                                                            :max(0, image["width"] - left)]
    rle = mask_utils.encode(np.asfortranarray(full))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}, \
        [float(v) for v in mask_utils.toBbox(rle)]
