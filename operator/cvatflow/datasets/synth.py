"""A seeded synthetic dataset: circles, squares and triangles on textured backgrounds, as a CVAT COCO 1.0 zip."""
from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cvatflow.atomic import atomic_path

CATEGORIES = ("circle", "square", "triangle")

# Saturated colours that stand out against the muted backgrounds below.
PALETTE = (
    (230, 40, 40), (40, 200, 60), (40, 90, 230), (240, 200, 20), (220, 40, 220), (20, 210, 220),
    (250, 130, 20), (250, 250, 250), (20, 20, 20),
)

# Fixed zip timestamps, so the same seed gives the same bytes.
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """Low-frequency colour noise plus fine grain and faint stripes: texture, but muted."""
    cells = int(rng.integers(3, 9))
    base = rng.uniform(70, 170, size=(cells, cells, 3))
    grey = base.mean(axis=2, keepdims=True)
    base = grey + (base - grey) * 0.35  # desaturate so shapes keep their contrast
    image = Image.fromarray(base.astype(np.uint8), "RGB").resize((size, size), Image.BICUBIC)
    pixels = np.asarray(image, dtype=np.float32)
    period = rng.uniform(6, 24)
    angle = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period) * rng.uniform(4, 14)
    pixels += stripes[..., None] + rng.normal(0, 6, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").filter(ImageFilter.SMOOTH)


def _polygon(kind: str, cx: float, cy: float, side: float, angle: float) -> list[tuple[float, float]]:
    """The outline of one shape as (x, y) points; `side` is the width of its bounding square."""
    r = side / 2
    if kind == "circle":
        steps = 32
        return [(cx + r * math.cos(2 * math.pi * i / steps), cy + r * math.sin(2 * math.pi * i / steps))
                for i in range(steps)]
    if kind == "square":
        cos, sin = math.cos(angle), math.sin(angle)
        h = r / (abs(cos) + abs(sin))  # half the square's side, so the rotated square fits its bounding square
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        return [(cx + h * (x * cos - y * sin), cy + h * (x * sin + y * cos)) for x, y in corners]
    # triangle: equilateral, pointing in a random direction, inscribed in the circle of radius r
    return [(cx + r * math.cos(angle + k * 2 * math.pi / 3), cy + r * math.sin(angle + k * 2 * math.pi / 3))
            for k in range(3)]


def _area(points: list[tuple[float, float]]) -> float:
    """Polygon area by the shoelace formula (what CVAT writes for polygons)."""
    s = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2


def _overlaps(box: tuple[float, float, float, float], others: list[tuple[float, float, float, float]]) -> bool:
    x, y, w, h = box
    margin = 2
    return any(x < ox + ow + margin and ox < x + w + margin and y < oy + oh + margin and oy < y + h + margin
               for ox, oy, ow, oh in others)


def render_image(rng: np.random.Generator, size: int) -> tuple[Image.Image, list[dict[str, Any]]]:
    """One image and its objects: `{"category": name, "polygon": [(x, y)...], "bbox": [x, y, w, h]}`."""
    image = _background(rng, size)
    draw = ImageDraw.Draw(image)
    wanted = int(rng.integers(1, 5))
    objects: list[dict[str, Any]] = []
    boxes: list[tuple[float, float, float, float]] = []
    colours = rng.permutation(len(PALETTE))
    for attempt in range(60):
        if len(objects) == wanted:
            break
        kind = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
        side = float(rng.uniform(0.15, 0.40)) * size
        cx = float(rng.uniform(side / 2 + 1, size - side / 2 - 1))
        cy = float(rng.uniform(side / 2 + 1, size - side / 2 - 1))
        angle = float(rng.uniform(0, 2 * math.pi))
        if kind == "square":
            angle = float(rng.uniform(-math.pi / 8, math.pi / 8))
        points = _polygon(kind, cx, cy, side, angle)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        if _overlaps(box, boxes):
            continue
        colour = PALETTE[int(colours[len(objects) % len(PALETTE)])]
        draw.polygon(points, fill=colour, outline=tuple(max(0, c - 90) for c in colour))
        boxes.append(box)
        objects.append({"category": kind, "polygon": points, "bbox": list(box)})
    return image, objects


def make_coco(rng: np.random.Generator, images: int, size: int,
              name: str = "synth") -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """The COCO document (CVAT's field set) and the encoded JPEG files of `images` synthetic images."""
    coco: dict[str, Any] = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": f"cvatflow synthetic shapes ({name})",
                 "url": "", "version": "", "year": ""},
        "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(CATEGORIES)],
        "images": [],
        "annotations": [],
    }
    files: list[tuple[str, bytes]] = []
    ann_id = 1
    for index in range(images):
        image, objects = render_image(rng, size)
        file_name = f"{name}_{index:05d}.jpg"
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=92)
        files.append((file_name, buffer.getvalue()))
        image_id = index + 1
        coco["images"].append({"id": image_id, "width": size, "height": size, "file_name": file_name,
                               "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0})
        for obj in objects:
            flat = [round(v, 2) for point in obj["polygon"] for v in point]
            coco["annotations"].append({
                "id": ann_id, "image_id": image_id, "category_id": CATEGORIES.index(obj["category"]) + 1,
                "segmentation": [flat], "area": round(_area(obj["polygon"]), 2),
                "bbox": [round(v, 2) for v in obj["bbox"]], "iscrowd": 0,
                "attributes": {"occluded": False},
            })
            ann_id += 1
    return coco, files


def make_export(out: Path, images: int = 60, seed: int = 0, size: int = 256) -> Path:
    """Write a CVAT-style "COCO 1.0" export zip and return its path.

    Layout: `annotations/instances_default.json` and `images/<file_name>` (the layout CVAT task exports have,
    and the normalised layout training reads). Three categories (circle=1, square=2, triangle=3), 1-4 shapes per
    image whose side is 15-40% of the image, each with a bbox and a polygon mask. The same arguments give the
    same bytes. If `out` is a folder (or has no .zip suffix and exists as a folder) the zip is written inside it
    as `synth-<images>-<seed>.zip`.
    """
    out = Path(out)
    if out.is_dir():
        out = out / f"synth-{images}-{seed}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    coco, files = make_coco(rng, images, size)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        def add(name: str, data: bytes, compress: int) -> None:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = compress
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)

        add("annotations/instances_default.json", json.dumps(coco).encode(), zipfile.ZIP_DEFLATED)
        for file_name, data in files:
            add(f"images/{file_name}", data, zipfile.ZIP_STORED)  # JPEGs do not compress further
    return out


# CVAT 2.x formats the synthetic shapes can be written in (see write_format).
WRITTEN_FORMATS = ("Ultralytics YOLO Detection 1.0", "Ultralytics YOLO Segmentation 1.0",
                   "Ultralytics YOLO Oriented Bounding Boxes 1.0", "CVAT for video 1.1", "COCO Keypoints 1.0",
                   "Segmentation mask 1.1")
# Segmentation mask 1.1: a colour per class in labelmap.txt, and VOC's palette for the instances.
CLASS_COLOURS = {"circle": (128, 0, 0), "square": (0, 128, 0), "triangle": (128, 128, 0)}


def _voc_colour(index: int) -> tuple[int, int, int]:
    """Colour `index` of the PASCAL VOC palette (the bit-interleaving colormap CVAT uses for instances)."""
    r = g = b = 0
    for shift in range(7, -1, -1):
        r |= ((index >> 0) & 1) << shift
        g |= ((index >> 1) & 1) << shift
        b |= ((index >> 2) & 1) << shift
        index >>= 3
    return r, g, b


def write_format(out: Path, fmt: str, images: int = 4, seed: int = 0, size: int = 64) -> dict[str, Any]:
    """Write the synthetic shapes as an unpacked CVAT export in `fmt` (one of WRITTEN_FORMATS) into the folder
    `out`, laid out as CVAT writes it; return the COCO document of the same objects (the truth to compare with).

    Ultralytics: data.yaml, train.txt, images/train/, labels/train/*.txt with normalised `cls cx cy w h`,
    polygons, or 4 corners (a square's rotated corners, else its box). CVAT for video: annotations.xml with one
    track per object, a keyframe box on its frame and `outside` on the next. COCO Keypoints:
    annotations/person_keypoints_default.json, each object's first three outline points as key points.
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    coco, files = make_coco(rng, images, size)
    if fmt.startswith("Ultralytics"):
        names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CATEGORIES))
        (out / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (out / "data.yaml").write_text(f"path: ./\ntrain: train.txt\nnames:\n{names}\n")
        (out / "train.txt").write_text("".join(f"images/train/{name}\n" for name, _ in files))
        for (name, data), image in zip(files, coco["images"]):
            (out / "images" / "train").mkdir(parents=True, exist_ok=True)
            (out / "images" / "train" / name).write_bytes(data)
            lines = []
            for ann in (a for a in coco["annotations"] if a["image_id"] == image["id"]):
                x, y, w, h = ann["bbox"]
                if fmt.startswith("Ultralytics YOLO Detection"):
                    values = [(x + w / 2) / size, (y + h / 2) / size, w / size, h / size]
                elif fmt.startswith("Ultralytics YOLO Segmentation"):
                    values = [v / size for v in ann["segmentation"][0]]
                else:
                    square = ann["category_id"] == CATEGORIES.index("square") + 1
                    corners = ann["segmentation"][0] if square else [x, y, x + w, y, x + w, y + h, x, y + h]
                    values = [v / size for v in corners]
                lines.append(" ".join([str(ann["category_id"] - 1)] + [f"{v:.6f}" for v in values]))
            (out / "labels" / "train" / Path(name).with_suffix(".txt")).write_text("\n".join(lines) + "\n")
    elif fmt == "CVAT for video 1.1":
        (out / "images").mkdir(parents=True, exist_ok=True)
        labels = "".join(f"<label><name>{n}</name></label>" for n in CATEGORIES)
        tracks = []
        for index, ((_, data), image) in enumerate(zip(files, coco["images"])):
            (out / "images" / f"frame_{index:06d}.jpg").write_bytes(data)
            image["file_name"] = f"frame_{index:06d}.jpg"
            for ann in (a for a in coco["annotations"] if a["image_id"] == image["id"]):
                x, y, w, h = ann["bbox"]
                box = f'xtl="{x}" ytl="{y}" xbr="{x + w}" ybr="{y + h}" occluded="0" z_order="0"'
                tracks.append(f'<track id="{len(tracks)}" label="{CATEGORIES[ann["category_id"] - 1]}" '
                              f'source="manual"><box frame="{index}" keyframe="1" outside="0" {box}/>'
                              f'<box frame="{index + 1}" keyframe="1" outside="1" {box}/></track>')
        (out / "annotations.xml").write_text(
            f'<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version><meta><task>'
            f'<size>{images}</size><mode>interpolation</mode><labels>{labels}</labels><original_size><width>{size}'
            f'</width><height>{size}</height></original_size></task></meta>{"".join(tracks)}</annotations>')
        for ann in coco["annotations"]:
            ann["segmentation"] = []  # the video export carries boxes
    elif fmt == "COCO Keypoints 1.0":
        (out / "images" / "default").mkdir(parents=True, exist_ok=True)
        (out / "annotations").mkdir(parents=True, exist_ok=True)
        for name, data in files:
            (out / "images" / "default" / name).write_bytes(data)
        points = [dict(a) for a in coco["annotations"]]
        for ann in points:
            ann["keypoints"] = [v for i in range(3) for v in (*ann["segmentation"][0][2 * i:2 * i + 2], 2)]
            ann["num_keypoints"], ann["segmentation"] = 3, []
        keypoints = {**coco, "annotations": points,
                     "categories": [{**c, "keypoints": ["p1", "p2", "p3"], "skeleton": [[1, 2], [2, 3]]}
                                    for c in coco["categories"]]}
        (out / "annotations" / "person_keypoints_default.json").write_text(json.dumps(keypoints))
        for ann in coco["annotations"]:
            ann["segmentation"] = []
    elif fmt == "Segmentation mask 1.1":
        for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
            (out / folder).mkdir(parents=True, exist_ok=True)
        (out / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n" + "".join(
            f"{name}:{','.join(str(c) for c in CLASS_COLOURS[name])}::\n" for name in CATEGORIES))
        stems = []
        for (name, data), image in zip(files, coco["images"]):
            stem = Path(name).stem
            stems.append(stem)
            (out / "JPEGImages" / name).write_bytes(data)
            classes = Image.new("RGB", (size, size))
            instances = Image.new("RGB", (size, size))
            for k, ann in enumerate(a for a in coco["annotations"] if a["image_id"] == image["id"]):
                flat = ann["segmentation"][0]
                points = list(zip(flat[0::2], flat[1::2]))
                ImageDraw.Draw(classes).polygon(points, fill=CLASS_COLOURS[CATEGORIES[ann["category_id"] - 1]])
                ImageDraw.Draw(instances).polygon(points, fill=_voc_colour(k + 1))
            classes.save(out / "SegmentationClass" / f"{stem}.png")
            instances.save(out / "SegmentationObject" / f"{stem}.png")
        (out / "ImageSets" / "Segmentation" / "default.txt").write_text("".join(f"{s}\n" for s in stems))
    else:
        raise ValueError(f"write_format: {fmt!r} is not one of {', '.join(WRITTEN_FORMATS)}")
    return coco
