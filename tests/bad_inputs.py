"""The bad-input corpus, generated: export archives, templates, parameters and HTTP requests that must be refused.

Each case is (family, id, build) where build(workdir) makes the input on disk (large and nested ones are
made here, at run time) and returns what the runner needs. tests/project/test_bad_input_corpus.py runs them.
"""
from __future__ import annotations

import copy
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEEP = 100_000  # nesting of the deepest documents: far past any parser's recursion limit


@dataclass
class Case:
    family: str  # "archive", "template", "parameter", "http"
    id: str
    build: Callable[[Path], Any]
    names: str = ""  # what the error must mention (besides the input); "" = only the input itself
    extra: dict[str, Any] = field(default_factory=dict)


def base_coco() -> dict[str, Any]:
    """A small valid COCO document as CVAT writes it: 2 images, 2 categories, 2 annotations."""
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""},
        "categories": [{"id": 1, "name": "circle", "supercategory": ""},
                       {"id": 2, "name": "square", "supercategory": ""}],
        "images": [{"id": 1, "width": 32, "height": 32, "file_name": "a.png", "license": 0},
                   {"id": 2, "width": 32, "height": 32, "file_name": "b.png", "license": 0}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 10, 1, 10, 10]], "area": 40.5,
             "bbox": [1, 1, 9, 9], "iscrowd": 0, "attributes": {"occluded": False}},
            {"id": 2, "image_id": 2, "category_id": 2, "segmentation": {"size": [32, 32], "counts": [10, 5, 1009]},
             "area": 5.0, "bbox": [0, 10, 1, 5], "iscrowd": 1, "attributes": {}},
        ],
    }


def png(size: int = 32) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (120, 30, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def write_zip(path: Path, files: dict[str, bytes], **options: Any) -> Path:
    with zipfile.ZipFile(path, "w", compression=options.get("compression", zipfile.ZIP_DEFLATED)) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def export_files(coco: Any = None, raw: bytes | None = None) -> dict[str, bytes]:
    """A CVAT COCO export's files, with `coco` (or `raw` bytes) as its annotation file."""
    text = raw if raw is not None else json.dumps(base_coco() if coco is None else coco).encode()
    image = png()
    return {"annotations/instances_default.json": text, "images/a.png": image, "images/b.png": image}


# -- COCO records of the wrong type or size --------------------------------------------------------------

def _set(path: str, value: Any) -> Callable[[dict], dict]:
    """A mutation of the base document: `images.0.width` = value (a callable value is called with the doc)."""
    def mutate(doc: dict) -> dict:
        target: Any = doc
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        new = value(doc) if callable(value) else value
        if last.isdigit():
            target[int(last)] = new
        else:
            target[last] = new
        return doc
    return mutate


def _nested(depth: int) -> Callable[[dict], Any]:
    return lambda doc: json.loads("[" * 50 + "]" * 50) if depth <= 50 else NestedMarker(depth)


class NestedMarker:
    """Stands for a list nested `depth` deep; written as text, since json.dumps would recurse."""

    def __init__(self, depth: int) -> None:
        self.depth = depth


def dumps(doc: Any) -> bytes:
    """json.dumps, except NestedMarker values become `[[[...]]]` text of their depth."""
    markers: list[NestedMarker] = []

    def default(value: Any) -> str:
        if isinstance(value, NestedMarker):
            markers.append(value)
            return f"@@NESTED{len(markers) - 1}@@"
        raise TypeError(type(value).__name__)

    text = json.dumps(doc, default=default, allow_nan=True)
    for i, marker in enumerate(markers):
        text = text.replace(f'"@@NESTED{i}@@"', "[" * marker.depth + "]" * marker.depth)
    return text.encode()


COCO_MUTATIONS: dict[str, Callable[[dict], Any]] = {
    "categories-as-strings": _set("categories", ["circle", "square"]),
    "categories-as-number": _set("categories", 7),
    "category-as-list": _set("categories.0", [1, "circle"]),
    "category-id-string": _set("categories.0.id", "1"),
    "category-id-list": _set("categories.0.id", [1]),
    "category-id-float": _set("categories.0.id", 1.5),
    "category-id-bool": _set("categories.0.id", True),
    "category-name-number": _set("categories.0.name", 42),
    "category-name-5000": _set("categories.0.name", "c" * 5000),
    "category-missing-id": lambda d: (d["categories"][0].pop("id"), d)[1],
    "images-as-numbers": _set("images", [1, 2]),
    "images-as-object": _set("images", {"1": {"file_name": "a.png"}}),
    "images-as-string": _set("images", "a.png"),
    "image-as-null": _set("images.0", None),
    "image-id-list": _set("images.0.id", [1]),
    "image-id-string": _set("images.0.id", "1"),
    "image-id-null": _set("images.0.id", None),
    "image-id-huge": _set("images.0.id", 10 ** 40),
    "width-string": _set("images.0.width", "32"),
    "width-negative": _set("images.0.width", -32),
    "width-float": _set("images.0.width", 32.5),
    "width-huge": _set("images.0.width", 10 ** 9),
    "height-list": _set("images.0.height", [32]),
    "height-bool": _set("images.0.height", True),
    "file-name-5000": _set("images.0.file_name", "a" * 5000 + ".png"),
    "file-name-number": _set("images.0.file_name", 17),
    "file-name-empty": _set("images.0.file_name", ""),
    "file-name-absolute": _set("images.0.file_name", "/etc/passwd"),
    "file-name-traversal": _set("images.0.file_name", "../../../../etc/passwd"),
    "file-name-backslash-traversal": _set("images.0.file_name", "..\\..\\secret.png"),
    "file-name-windows-drive": _set("images.0.file_name", "C:/Windows/win.ini"),
    "file-name-newline": _set("images.0.file_name", "a\n.png"),
    "file-name-nul": _set("images.0.file_name", "a\x00.png"),
    "subset-traversal": _set("images.0.file_name", "x/../../../etc/hosts"),
    "annotations-as-string": _set("annotations", "none"),
    "annotations-as-object": _set("annotations", {"1": {}}),
    "annotation-as-number": _set("annotations.0", 5),
    "annotation-id-list": _set("annotations.0.id", [1]),
    "annotation-image-id-string": _set("annotations.0.image_id", "1"),
    "annotation-image-id-null": _set("annotations.0.image_id", None),
    "annotation-category-id-float": _set("annotations.0.category_id", 1.0),
    "bbox-strings": _set("annotations.0.bbox", ["1", "1", "9", "9"]),
    "bbox-nan": _set("annotations.0.bbox", [float("nan"), 1, 9, 9]),
    "bbox-infinity": _set("annotations.0.bbox", [1, 1, float("inf"), 9]),
    "bbox-object": _set("annotations.0.bbox", {"x": 1}),
    "bbox-1000-numbers": _set("annotations.0.bbox", list(range(1000))),
    "area-string": _set("annotations.0.area", "big"),
    "area-nan": _set("annotations.0.area", float("nan")),
    "iscrowd-string": _set("annotations.0.iscrowd", "yes"),
    "iscrowd-5": _set("annotations.0.iscrowd", 5),
    "segmentation-string": _set("annotations.0.segmentation", "polygon"),
    "segmentation-number": _set("annotations.0.segmentation", 3),
    "polygon-strings": _set("annotations.0.segmentation", [["1", "1", "10", "1", "10", "10"]]),
    "polygon-nan": _set("annotations.0.segmentation", [[1, 1, float("nan"), 1, 10, 10]]),
    "polygon-flat": _set("annotations.0.segmentation", [1, 1, 10, 1, 10, 10]),
    "rle-counts-strings": _set("annotations.1.segmentation.counts", ["10", "5", "1009"]),
    "rle-counts-number": _set("annotations.1.segmentation.counts", 1024),
    "rle-counts-negative": _set("annotations.1.segmentation.counts", [-10, 5, 1029]),
    "rle-size-strings": _set("annotations.1.segmentation.size", ["32", "32"]),
    "rle-size-three": _set("annotations.1.segmentation.size", [32, 32, 3]),
    "rle-no-size": lambda d: (d["annotations"][1]["segmentation"].pop("size"), d)[1],
    "info-deep-100000": _set("info", _nested(DEEP)),
    "annotation-attributes-deep-1000": _set("annotations.0.attributes", _nested(1000)),
}

WHOLE_FILE: dict[str, Callable[[], bytes]] = {
    "top-level-list": lambda: b"[]",
    "top-level-string": lambda: b'"coco"',
    "top-level-null": lambda: b"null",
    "top-level-number": lambda: b"12",
    "empty-file": lambda: b"",
    "not-json": lambda: b"this is not json",
    "truncated-json": lambda: json.dumps(base_coco()).encode()[:-40],
    "nested-100000-arrays": lambda: b"[" * DEEP + b"]" * DEEP,
    "nested-100000-objects": lambda: b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "binary-garbage": lambda: bytes(range(256)) * 8,
    "invalid-utf8": lambda: b'{"images": [], "info": {"x": "\xff\xfe\xfa"}}',
    "no-images-key": lambda: json.dumps({"annotations": [], "categories": []}).encode(),
}


def _coco_case(name: str, mutate: Callable[[dict], Any]) -> Callable[[Path], Path]:
    def build(work: Path) -> Path:
        doc = mutate(copy.deepcopy(base_coco()))
        return write_zip(work / f"{name}.zip", export_files(raw=dumps(doc)))
    return build


def _file_case(name: str, make: Callable[[], bytes]) -> Callable[[Path], Path]:
    return lambda work: write_zip(work / f"{name}.zip", export_files(raw=make()))


# -- archives that are not safe or not archives ----------------------------------------------------------

def _zip_with_mode(name: str, entry: str, mode: int, data: bytes = b"x") -> Callable[[Path], Path]:
    def build(work: Path) -> Path:
        path = work / f"{name}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for key, value in export_files().items():
                zf.writestr(key, value)
            info = zipfile.ZipInfo(entry)
            info.external_attr = mode << 16
            zf.writestr(info, data)
        return path
    return build


def _encrypted(work: Path) -> Path:
    path = write_zip(work / "encrypted.zip", export_files(), compression=zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = 0
    while (at := raw.find(b"PK\x03\x04", at)) >= 0:
        raw[at + 6] |= 1
        at += 4
    at = 0
    while (at := raw.find(b"PK\x01\x02", at)) >= 0:
        raw[at + 8] |= 1
        at += 4
    path.write_bytes(bytes(raw))
    return path


def _bomb(work: Path) -> Path:
    return write_zip(work / "bomb.zip", {**export_files(), "images/zeros.png": b"\0" * (64 * 1024 * 1024)})


def _tar(name: str, add: Callable[[tarfile.TarFile], None], mode: str = "w") -> Callable[[Path], Path]:
    def build(work: Path) -> Path:
        suffix = ".tar.gz" if mode.endswith("gz") else ".tar"
        path = work / f"{name}{suffix}"
        with tarfile.open(path, mode) as tf:
            for key, value in export_files().items():
                info = tarfile.TarInfo(key)
                info.size = len(value)
                tf.addfile(info, io.BytesIO(value))
            add(tf)
        return path
    return build


def _tar_member(name: str, kind: bytes, link: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        tf.addfile(info)
    return add


def _tar_file(name: str) -> Callable[[tarfile.TarFile], None]:
    def add(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    return add


def _raw(name: str, data: bytes) -> Callable[[Path], Path]:
    def build(work: Path) -> Path:
        path = work / name
        path.write_bytes(data)
        return path
    return build


def _truncated_zip(work: Path) -> Path:
    path = write_zip(work / "truncated.zip", export_files())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _truncated_tgz(work: Path) -> Path:
    path = _tar("truncated", lambda tf: None, "w:gz")(work)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _folder(name: str, spoil: Callable[[Path, Path], None]) -> Callable[[Path], Path]:
    def build(work: Path) -> Path:
        folder = work / name
        for key, value in export_files().items():
            (folder / key).parent.mkdir(parents=True, exist_ok=True)
            (folder / key).write_bytes(value)
        outside = work / "outside-secret.txt"
        outside.write_text("secret")
        spoil(folder, outside)
        return folder
    return build


ARCHIVES: dict[str, Callable[[Path], Path]] = {
    "zip-slip": _zip_with_mode("zip-slip", "../evil.txt", 0o100644),
    "zip-slip-deep": _zip_with_mode("zip-slip-deep", "images/../../evil.txt", 0o100644),
    "zip-absolute": _zip_with_mode("zip-absolute", "/tmp/evil.txt", 0o100644),
    "zip-windows-drive": _zip_with_mode("zip-windows-drive", "C:/evil.txt", 0o100644),
    "zip-backslash-slip": _zip_with_mode("zip-backslash-slip", "..\\evil.txt", 0o100644),
    "zip-symlink": _zip_with_mode("zip-symlink", "images/c.png", 0o120777, b"/etc/passwd"),
    "zip-fifo": _zip_with_mode("zip-fifo", "images/pipe", 0o010644),
    "zip-device": _zip_with_mode("zip-device", "images/dev", 0o020644),
    "zip-control-name": _zip_with_mode("zip-control-name", "images/a\x01.png", 0o100644),
    "zip-encrypted": _encrypted,
    "zip-bomb": _bomb,
    "zip-truncated": _truncated_zip,
    "zip-empty-file": _raw("empty.zip", b""),
    "zip-random-bytes": _raw("random.zip", os.urandom(2048)),
    "zip-no-export-inside": lambda work: write_zip(work / "nothing.zip", {"readme.txt": b"hello"}),
    "zip-empty-archive": lambda work: write_zip(work / "empty-archive.zip", {}),
    "tar-symlink": _tar("tar-symlink", _tar_member("images/c.png", tarfile.SYMTYPE, "/etc/passwd")),
    "tar-hardlink": _tar("tar-hardlink", _tar_member("images/c.png", tarfile.LNKTYPE, "/etc/passwd")),
    "tar-char-device": _tar("tar-char-device", _tar_member("images/null", tarfile.CHRTYPE)),
    "tar-block-device": _tar("tar-block-device", _tar_member("images/sda", tarfile.BLKTYPE)),
    "tar-fifo": _tar("tar-fifo", _tar_member("images/pipe", tarfile.FIFOTYPE)),
    "tar-slip": _tar("tar-slip", _tar_file("../evil.txt")),
    "tar-absolute": _tar("tar-absolute", _tar_file("/tmp/evil.txt")),
    "tgz-symlink": _tar("tgz-symlink", _tar_member("images/c.png", tarfile.SYMTYPE, "../../x"), "w:gz"),
    "tgz-truncated": _truncated_tgz,
    "folder-symlink": _folder("folder-symlink", lambda f, out: os.symlink(out, f / "images" / "c.png")),
    "folder-symlink-dir": _folder("folder-symlink-dir", lambda f, out: os.symlink(out.parent, f / "images" / "up")),
    "folder-dangling-symlink": _folder("folder-dangling", lambda f, out: os.symlink("/nonexistent", f / "x")),
    "folder-hardlink": _folder("folder-hardlink", lambda f, out: os.link(out, f / "images" / "c.png")),
    "folder-fifo": _folder("folder-fifo", lambda f, out: os.mkfifo(f / "images" / "pipe.png")),
    "folder-coco-symlink": _folder("folder-coco-symlink", lambda f, out: (
        (f / "annotations" / "instances_default.json").unlink(),
        os.symlink(out, f / "annotations" / "instances_default.json"))),
    "missing-path": lambda work: work / "does-not-exist.zip",
}


# -- the other formats' files: CVAT XML, Ultralytics, YOLO 1.1, VOC, MOT, LabelMe ---------------------------

CVAT_HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version><meta><task><labels>'
             '<label><name>circle</name></label></labels></task></meta>')
CVAT_BOX = '<box label="circle" occluded="0" xtl="1" ytl="2" xbr="10" ybr="12" z_order="0"/>'


def cvat_xml(image: str = '<image id="0" name="a.png" width="32" height="32">{shapes}</image>',
             shapes: str = CVAT_BOX, head: str = CVAT_HEAD) -> bytes:
    """A CVAT for images 1.1 annotations.xml with one image (a.png) and `shapes` on it."""
    return (head + image.format(shapes=shapes) + "</annotations>").encode()


def format_files(fmt: str) -> dict[str, bytes]:
    """A small valid export of `fmt` (cvat, video, ultralytics, yolo, voc, mot, labelme): 32x32 PNG images."""
    image = png()
    if fmt == "cvat":
        return {"annotations.xml": cvat_xml(), "images/a.png": image}
    if fmt == "video":
        track = ('<track id="0" label="circle" source="manual"><box frame="0" keyframe="1" outside="0" occluded="0" '
                 'xtl="1" ytl="2" xbr="10" ybr="12" z_order="0"/></track>')
        head = CVAT_HEAD.replace("</labels>", "</labels><original_size><width>32</width><height>32</height>"
                                              "</original_size>")
        return {"annotations.xml": (head + track + "</annotations>").encode(), "images/frame_000000.png": image}
    if fmt == "ultralytics":
        return {"data.yaml": b"path: ./\ntrain: train.txt\nnames:\n  0: circle\n", "train.txt": b"images/train/a.png\n",
                "images/train/a.png": image, "labels/train/a.txt": b"0 0.5 0.5 0.25 0.25\n"}
    if fmt == "yolo":
        return {"obj.names": b"circle\n", "obj.data": b"classes = 1\ntrain = data/train.txt\nnames = data/obj.names\n",
                "train.txt": b"data/obj_train_data/a.png\n", "obj_train_data/a.png": image,
                "obj_train_data/a.txt": b"0 0.5 0.5 0.25 0.25\n"}
    if fmt == "voc":
        return {"Annotations/a.xml": b"<annotation><filename>a.png</filename><size><width>32</width><height>32</height>"
                                     b"<depth>3</depth></size><object><name>circle</name><bndbox><xmin>1</xmin>"
                                     b"<ymin>2</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object></annotation>",
                "JPEGImages/a.png": image, "ImageSets/Main/default.txt": b"a\n",
                "labelmap.txt": b"# label:color_rgb:parts:actions\ncircle:1,2,3::\n"}
    if fmt == "mot":
        return {"gt/gt.txt": b"1,1,1,2,9,10,1,1,1.0\n", "gt/labels.txt": b"circle\n", "img1/000001.png": image}
    if fmt == "labelme":
        return {"a.xml": b"<annotation><filename>a.png</filename><folder></folder><object><name>circle</name>"
                         b"<deleted>0</deleted><verified>0</verified><occluded>no</occluded><attributes/><id>0</id>"
                         b"<polygon><username>u</username><pt><x>1</x><y>2</y></pt><pt><x>10</x><y>2</y></pt>"
                         b"<pt><x>10</x><y>12</y></pt></polygon></object><imagesize><nrows>32</nrows>"
                         b"<ncols>32</ncols></imagesize></annotation>", "a.png": image}
    raise ValueError(fmt)


LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
          b'<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
          b'<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>'
          b'<annotations><version>&lol2;</version></annotations>')
XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b'<annotations><image id="0" name="&x;" width="32" height="32"/></annotations>')

# name -> (format, the files replaced or added, what the error must mention)
FORMAT_MUTATIONS: dict[str, tuple[str, dict[str, bytes], str]] = {
    "cvat-billion-laughs": ("cvat", {"annotations.xml": LAUGHS}, "entities"),
    "cvat-external-entity": ("cvat", {"annotations.xml": XXE}, "entities"),
    "cvat-not-xml": ("cvat", {"annotations.xml": cvat_xml()[:-30]}, "not valid XML"),
    "cvat-box-nan": ("cvat", {"annotations.xml": cvat_xml(shapes=CVAT_BOX.replace('xtl="1"', 'xtl="nan"'))}, "xtl"),
    "cvat-box-inf": ("cvat", {"annotations.xml": cvat_xml(shapes=CVAT_BOX.replace('ybr="12"', 'ybr="inf"'))}, "ybr"),
    "cvat-box-text": ("cvat", {"annotations.xml": cvat_xml(shapes=CVAT_BOX.replace('xbr="10"', 'xbr="ten"'))}, "xbr"),
    "cvat-box-no-corner": ("cvat", {"annotations.xml": cvat_xml(shapes=CVAT_BOX.replace('xtl="1" ', ''))}, "xtl"),
    "cvat-occluded-maybe": ("cvat", {"annotations.xml": cvat_xml(shapes=CVAT_BOX.replace('occluded="0"',
                                                                                         'occluded="maybe"'))},
                            "occluded"),
    "cvat-polygon-half-point": ("cvat", {"annotations.xml": cvat_xml(
        shapes='<polygon label="circle" points="1,2;3,4;5" z_order="0"/>')}, "points"),
    "cvat-polygon-million-points": ("cvat", {"annotations.xml": cvat_xml(
        shapes='<polygon label="circle" points="' + ";".join(f"{i % 9973},{i % 7919}" for i in range(600_000)) + '" z_order="0"/>')},
                                    "CVATFLOW_MAX_COORDINATES"),
    "cvat-mask-huge": ("cvat", {"annotations.xml": cvat_xml(
        shapes='<mask label="circle" rle="1, 2" left="0" top="0" width="100000" height="100000"/>')},
                       "CVATFLOW_MAX_MASK_PIXELS"),
    "cvat-mask-negative-run": ("cvat", {"annotations.xml": cvat_xml(
        shapes='<mask label="circle" rle="1, -2" left="0" top="0" width="2" height="2"/>')}, "rle"),
    "cvat-image-traversal": ("cvat", {"annotations.xml": cvat_xml(
        image='<image id="0" name="../../../etc/passwd" width="32" height="32">{shapes}</image>')}, "name: goes up"),
    "cvat-image-absolute": ("cvat", {"annotations.xml": cvat_xml(
        image='<image id="0" name="/etc/passwd" width="32" height="32">{shapes}</image>')}, "name: is an absolute"),
    "cvat-image-width-negative": ("cvat", {"annotations.xml": cvat_xml(
        image='<image id="0" name="a.png" width="-32" height="32">{shapes}</image>')}, "width"),
    "cvat-image-height-huge": ("cvat", {"annotations.xml": cvat_xml(
        image='<image id="0" name="a.png" width="32" height="1e9">{shapes}</image>')}, "CVATFLOW_MAX_IMAGE_SIDE"),
    "cvat-image-id-text": ("cvat", {"annotations.xml": cvat_xml(
        image='<image id="first" name="a.png" width="32" height="32">{shapes}</image>')}, "id"),
    "cvat-label-5000": ("cvat", {"annotations.xml": cvat_xml(shapes=CVAT_BOX.replace('label="circle"',
                                                                                     'label="' + "c" * 5000 + '"'))},
                        "CVATFLOW_MAX_NAME_LENGTH"),
    "cvat-image-twice": ("cvat", {"annotations.xml": cvat_xml(  # found by tests/datasets/test_fuzz_formats.py
        image='<image id="0" name="a.png" width="32" height="32">{shapes}</image><image id="1" name="a.png" '
              'width="32" height="32"/>')}, "same file"),
    "video-frame-negative": ("video", {"annotations.xml": format_files("video")["annotations.xml"].replace(
        b'frame="0"', b'frame="-1"')}, "frame: Input should be greater"),
    "video-frame-missing": ("video", {"annotations.xml": format_files("video")["annotations.xml"].replace(
        b'frame="0" ', b"")}, "needs its frame number"),
    "ultralytics-yaml-not-yaml": ("ultralytics", {"data.yaml": b"names: [unclosed\n"}, "data.yaml"),
    "ultralytics-yaml-no-names": ("ultralytics", {"data.yaml": b"path: ./\n"}, "names"),
    "ultralytics-yaml-names-nested": ("ultralytics", {"data.yaml": b"names: [[a], {b: c}]\n"}, "names"),
    "ultralytics-yaml-alias-bomb": ("ultralytics", {"data.yaml": b"a: &a [x,x,x,x,x,x,x,x,x]\n"
                                    b"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                                    b"names: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"}, "data.yaml"),
    "ultralytics-yaml-binary": ("ultralytics", {"data.yaml": bytes(range(256))}, "data.yaml: not UTF-8"),
    "ultralytics-labels-binary": ("ultralytics", {"labels/train/a.txt": b"\xff\xfe\x00garbage"}, "a.txt: not UTF-8"),
    "ultralytics-name-5000": ("ultralytics", {"data.yaml": b"names: [" + b"a" * 5000 + b"]\n"},
                              "CVATFLOW_MAX_NAME_LENGTH"),
    "yolo-line-nan": ("yolo", {"obj_train_data/a.txt": b"0 nan 0.5 0.25 0.25\n"}, "a.txt:1"),
    "yolo-line-short": ("yolo", {"obj_train_data/a.txt": b"0 0.5 0.5\n"}, "a.txt:1"),
    "yolo-image-list-traversal": ("yolo", {"train.txt": b"../../../etc/passwd\n"}, "train.txt:1"),
    "yolo-image-list-absolute": ("yolo", {"train.txt": b"/etc/passwd\n"}, "train.txt:1"),
    "voc-billion-laughs": ("voc", {"Annotations/a.xml": LAUGHS.replace(b"annotations", b"annotation")}, "entities"),
    "voc-box-nan": ("voc", {"Annotations/a.xml": format_files("voc")["Annotations/a.xml"].replace(
        b"<xmin>1</xmin>", b"<xmin>nan</xmin>")}, "xmin"),
    "voc-box-text": ("voc", {"Annotations/a.xml": format_files("voc")["Annotations/a.xml"].replace(
        b"<ymax>12</ymax>", b"<ymax>twelve</ymax>")}, "ymax"),
    "voc-size-huge": ("voc", {"Annotations/a.xml": format_files("voc")["Annotations/a.xml"].replace(
        b"<width>32</width>", b"<width>99999999</width>")}, "CVATFLOW_MAX_IMAGE_SIDE"),
    "voc-filename-traversal": ("voc", {"Annotations/a.xml": format_files("voc")["Annotations/a.xml"].replace(
        b"<filename>a.png", b"<filename>../../etc/passwd")}, "filename"),
    "mot-line-text": ("mot", {"gt/gt.txt": b"1,1,one,2,9,10,1,1,1.0\n"}, "gt.txt:1"),
    "mot-line-nan": ("mot", {"gt/gt.txt": b"1,1,1,2,nan,10,1,1,1.0\n"}, "gt.txt:1"),
    "mot-line-short": ("mot", {"gt/gt.txt": b"1,1,1\n"}, "gt.txt:1"),
    "mot-frame-negative": ("mot", {"gt/gt.txt": b"-5,1,1,2,9,10,1,1,1.0\n"}, "gt.txt:1"),
    "labelme-folder-traversal": ("labelme", {"a.xml": format_files("labelme")["a.xml"].replace(
        b"<folder></folder>", b"<folder>../../../escaped</folder>")}, "folder"),
    "labelme-external-entity": ("labelme", {"a.xml": XXE.replace(b"annotations", b"annotation")}, "entities"),
}


def _format_case(fmt: str, files: dict[str, bytes]) -> Callable[[Path], Path]:
    return lambda work: write_zip(work / "export.zip", {**format_files(fmt), **files})


def archive_cases() -> list[Case]:
    cases = [Case("archive", f"coco-{name}", _coco_case(name, mutate)) for name, mutate in COCO_MUTATIONS.items()]
    cases += [Case("archive", f"format-{name}", _format_case(fmt, files), names)
              for name, (fmt, files, names) in FORMAT_MUTATIONS.items()]
    cases += [Case("archive", f"coco-file-{name}", _file_case(name, make)) for name, make in WHOLE_FILE.items()]
    cases += [Case("archive", name, build) for name, build in ARCHIVES.items()]
    return cases


# -- templates -------------------------------------------------------------------------------------------

TEMPLATES: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "not-yaml": lambda: b"kind: [unclosed\n  - : :",
    "a-list": lambda: b"- a\n- b\n",
    "a-string": lambda: b"just a string\n",
    "a-number": lambda: b"42\n",
    "binary": lambda: bytes(range(256)),
    "tabs": lambda: b"kind:\tWorkflowTemplate\n\tspec: {}\n",
    "kind-pod": lambda: b"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n",
    "no-spec": lambda: b"apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: x}\n",
    "spec-a-string": lambda: b"apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: x}\n"
                             b"spec: nothing\n",
    "metadata-a-list": lambda: b"apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: [x]\nspec: {}\n",
    "nested-yaml": lambda: b"a: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
    "billion-laughs": lambda: (b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
                               + b"".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},"
                                          f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
                                          f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n".encode()
                                          for i in range(8))),
    "python-object-tag": lambda: b"!!python/object/apply:os.system ['echo owned']\n",
    "onepanel-arguments-a-string": lambda: b"arguments: nothing\nentrypoint: main\ntemplates: []\n",
    "onepanel-parameters-not-list": lambda: b"arguments:\n  parameters: {a: 1}\nentrypoint: main\ntemplates: []\n",
    "huge-name": lambda: (b"apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: "
                          + b"x" * 5000 + b"}\nspec: {entrypoint: main, templates: []}\n"),
    "utf16": lambda: "kind: WorkflowTemplate\n".encode("utf-16"),
}


def template_cases() -> list[Case]:
    def build(name: str, make: Callable[[], bytes]) -> Callable[[Path], Path]:
        def write(work: Path) -> Path:
            path = work / f"{name}.yaml"
            path.write_bytes(make())
            return path
        return write

    cases = [Case("template", f"template-{name}", build(name, make)) for name, make in TEMPLATES.items()]
    cases.append(Case("template", "template-missing-file", lambda work: work / "missing.yaml"))
    cases.append(Case("template", "template-a-folder", lambda work: (work / "folder.yaml").mkdir() or
                      work / "folder.yaml"))
    return cases


# -- parameters (`cvatflow run detr-training --data export.zip -p ...`) ---------------------------------------

PARAMETERS: dict[str, tuple[list[str], str]] = {
    # id: (-p arguments, what the error names)
    "epochs-word": (["epochs=ten"], "epochs"),
    "epochs-empty": (["epochs="], "epochs"),
    "batch-size-word": (["batch-size=two"], "batch-size"),
    "unknown-parameter": (["learning-rate-typo=1"], "learning-rate-typo"),
    "no-equals": (["epochs"], "epochs"),
    "empty-name": (["=5"], "=5"),
    "output-path-dotdot": (["cvat-output-path=../../etc"], "cvat-output-path"),
    "output-path-dotdot-inner": (["cvat-output-path=outputs/../../x"], "cvat-output-path"),
    "output-path-absolute": (["cvat-output-path=/etc/cron.d"], "cvat-output-path"),
    "output-path-newline": (["cvat-output-path=outputs\nx"], "cvat-output-path"),
    "output-path-nul": (["cvat-output-path=outputs\x00x"], "cvat-output-path"),
    "output-path-tab": (["cvat-output-path=out\tputs"], "cvat-output-path"),
    "output-path-100000": (["cvat-output-path=" + "a" * 100_000], "cvat-output-path"),
    "output-path-uri": (["cvat-output-path=s3://other-bucket/x"], "cvat-output-path"),
    "output-path-backslash": (["cvat-output-path=..\\..\\x"], "cvat-output-path"),
    "legacy-output-path-dotdot": (["sys-output-path=../x"], "cvat-output-path"),
    "checkpoint-quotes": (["cvat-finetune-checkpoint=a'b"], "cvat-finetune-checkpoint"),
    "checkpoint-newline": (["cvat-finetune-checkpoint=a\nb"], "cvat-finetune-checkpoint"),
    "checkpoint-missing": (["cvat-finetune-checkpoint=outputs/none"], "Checkpoint"),
    "dump-format-unknown": (["dump-format=cvat_pdf"], "dump-format"),
    "model-not-an-option": (["cvat-model=resnet9000"], "cvat-model"),
    "hyperparameters-not-yaml": (["hyperparameters=a: [unclosed"], "hyperparameters"),
    "hyperparameters-a-list": (["hyperparameters=- 1\n- 2"], "hyperparameters"),
    "hyperparameters-unknown-key": (["hyperparameters=not_a_setting: 3"], "hyperparameters"),
    "hyperparameters-python-tag": (["hyperparameters=!!python/object/apply:os.system ['id']"], "hyperparameters"),
    "hyperparameters-nested": (["hyperparameters=a: " + "[" * 5000 + "]" * 5000], "hyperparameters"),
    "hyperparameters-alias-bomb": ([("hyperparameters=a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                                     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]")],
                                   "hyperparameters"),
    "two-bad-at-once": (["epochs=ten", "cvat-output-path=../x"], "epochs"),
}


def _const(value: Any) -> Callable[[Path], Any]:
    """A build step that makes nothing on disk: the input is `value` itself."""
    return lambda work: value


def parameter_cases() -> list[Case]:
    cases = [Case("parameter", f"param-{name}", _const(args), names=names)
             for name, (args, names) in PARAMETERS.items()]
    cases.append(Case("parameter", "param-label-no-value", lambda work: [], names="label",
                      extra={"options": ["--label", "novalue"]}))
    cases.append(Case("parameter", "param-label-bad-key", lambda work: [], names="label",
                      extra={"options": ["--label", "bad key!=x"]}))
    cases.append(Case("parameter", "param-name-invalid", lambda work: [], names="Bad_Name",
                      extra={"options": ["--name", "Bad_Name!"]}))
    cases.append(Case("parameter", "param-dataset-uri-elsewhere", lambda work: [], names="s3://elsewhere",
                      extra={"data": "s3://elsewhere/x/"}))
    return cases


# -- HTTP requests -------------------------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    token: bool = True
    signed: bool = False  # a webhook body, signed with the test secret


def _deep(n: int) -> bytes:
    return b'{"template": "tiny-training", "parameters": ' + b"[" * n + b"]" * n + b"}"


EXEC = "/api/v1/executions"


def http_cases(task_id: int = 1) -> list[Case]:
    good = {"template": "tiny-training", "cvatTask": task_id}
    requests: dict[str, Request] = {
        "text-plain": Request("POST", EXEC, content=json.dumps(good).encode(), headers={"Content-Type": "text/plain"}),
        "form-encoded": Request("POST", EXEC, content=b"template=tiny-training",
                                headers={"Content-Type": "application/x-www-form-urlencoded"}),
        "no-content-type": Request("POST", EXEC, content=json.dumps(good).encode()),
        "xml": Request("POST", EXEC, content=b"<x/>", headers={"Content-Type": "application/xml"}),
        "empty-body": Request("POST", EXEC, content=b"", headers={"Content-Type": "application/json"}),
        "null-body": Request("POST", EXEC, json=None, content=b"null", headers={"Content-Type": "application/json"}),
        "list-body": Request("POST", EXEC, json=[good]),
        "string-body": Request("POST", EXEC, json="tiny-training"),
        "not-json": Request("POST", EXEC, content=b"{template:", headers={"Content-Type": "application/json"}),
        "nan-token": Request("POST", EXEC, content=b'{"template": "tiny-training", "cvatTask": NaN}',
                             headers={"Content-Type": "application/json"}),
        "deep-100000": Request("POST", EXEC, content=_deep(DEEP), headers={"Content-Type": "application/json"}),
        "deep-1000": Request("POST", EXEC, content=_deep(1000), headers={"Content-Type": "application/json"}),
        "two-megabytes": Request("POST", EXEC, content=b'{"template": "' + b"a" * (2 << 20) + b'"}',
                                 headers={"Content-Type": "application/json"}),
        "template-int": Request("POST", EXEC, json={"template": 5, "cvatTask": task_id}),
        "template-path": Request("POST", EXEC, json={"template": "../../etc/passwd", "cvatTask": task_id}),
        "template-yaml-name": Request("POST", EXEC, json={"template": "tiny-training.yaml", "cvatTask": task_id}),
        "template-unknown": Request("POST", EXEC, json={"template": "no-such-template", "cvatTask": task_id}),
        "template-5000": Request("POST", EXEC, json={"template": "a" * 5000, "cvatTask": task_id}),
        "template-missing": Request("POST", EXEC, json={"cvatTask": task_id}),
        "cvat-task-string": Request("POST", EXEC, json={"template": "tiny-training", "cvatTask": "abc"}),
        "cvat-task-negative": Request("POST", EXEC, json={"template": "tiny-training", "cvatTask": -1}),
        "cvat-task-huge": Request("POST", EXEC, json={"template": "tiny-training", "cvatTask": 2 ** 40}),
        "cvat-task-float": Request("POST", EXEC, json={"template": "tiny-training", "cvatTask": 1.5}),
        "cvat-task-unknown": Request("POST", EXEC, json={"template": "tiny-training", "cvatTask": 99999}),
        "both-task-and-dataset": Request("POST", EXEC, json={**good, "dataset": "s3://x/y"}),
        "parameters-list": Request("POST", EXEC, json={**good, "parameters": ["epochs", 2]}),
        "parameter-value-object": Request("POST", EXEC, json={**good, "parameters": {"epochs": {"a": 1}}}),
        "parameter-value-list": Request("POST", EXEC, json={**good, "parameters": {"epochs": [1]}}),
        "parameter-word": Request("POST", EXEC, json={**good, "parameters": {"epochs": "ten"}}),
        "parameter-unknown": Request("POST", EXEC, json={**good, "parameters": {"typo": "1"}}),
        "parameter-output-path-newline": Request("POST", EXEC, json={**good, "parameters": {"epochs": "1\nx"}}),
        "labels-reserved": Request("POST", EXEC, json={**good, "labels": {"cvatflow.io/trigger": "x"}}),
        "labels-bad-key": Request("POST", EXEC, json={**good, "labels": {"bad key!": "x"}}),
        "labels-value-object": Request("POST", EXEC, json={**good, "labels": {"a": {"b": 1}}}),
        "name-invalid": Request("POST", EXEC, json={**good, "name": "Bad_Name!"}),
        "name-5000": Request("POST", EXEC, json={**good, "name": "a" * 5000}),
        "extra-field": Request("POST", EXEC, json={**good, "sneaky": True}),
        "dataset-etc": Request("POST", EXEC, json={"template": "tiny-training", "dataset": "/etc"}),
        "dataset-traversal": Request("POST", EXEC, json={"template": "tiny-training", "dataset": "../../../etc"}),
        "dataset-nul": Request("POST", EXEC, json={"template": "tiny-training", "dataset": "a\x00b"}),
        "dataset-5000": Request("POST", EXEC, json={"template": "tiny-training", "dataset": "a" * 5000}),
        "dataset-missing": Request("POST", EXEC, json={"template": "tiny-training", "dataset": "nothing.zip"}),
        "dataset-other-store": Request("POST", EXEC, json={"template": "tiny-training", "dataset": "s3://else/x/"}),
        "no-token": Request("POST", EXEC, json=good, token=False),
        "get-template-yaml": Request("GET", "/api/v1/templates/tiny-training.yaml"),
        "get-template-traversal": Request("GET", "/api/v1/templates/..%2F..%2Fetc%2Fpasswd"),
        "get-template-5000": Request("GET", "/api/v1/templates/" + "a" * 5000),
        "get-execution-bad-name": Request("GET", "/api/v1/executions/Bad_Name"),
        "get-execution-unknown": Request("GET", "/api/v1/executions/no-such-run"),
        "list-task-word": Request("GET", "/api/v1/executions?cvatTask=abc"),
        "list-label-no-value": Request("GET", "/api/v1/executions?label=novalue"),
        "annotate-threshold-word": Request("POST", EXEC + "/no-such-run/annotate",
                                           json={"cvatTask": task_id, "threshold": "high"}),
        "annotate-text-plain": Request("POST", EXEC + "/no-such-run/annotate", content=b"{}",
                                       headers={"Content-Type": "text/plain"}),
        "onepanel-execute-bad-body": Request("POST", f"/onepanelio/execute_workflow/{task_id}",
                                             json={"workflow_template": "../x"}),
        "onepanel-execute-text-plain": Request("POST", f"/onepanelio/execute_workflow/{task_id}",
                                               content=b'{"workflow_template": "tiny-training"}',
                                               headers={"Content-Type": "text/plain"}),
        "onepanel-execute-deep": Request("POST", f"/onepanelio/execute_workflow/{task_id}",
                                         content=b'{"parameters": ' + b"[" * DEEP + b"]" * DEEP + b"}",
                                         headers={"Content-Type": "application/json"}),
        "onepanel-template-yaml": Request("GET", "/onepanelio/workflow_templates/tiny-training.yaml/versions/0"),
        "webhook-unsigned": Request("POST", "/api/v1/webhooks/cvat", json={"event": "update:task"}, token=False),
        "webhook-bad-signature": Request("POST", "/api/v1/webhooks/cvat", json={"event": "update:task"},
                                         headers={"X-Signature-256": "sha256=" + "0" * 64}, token=False),
        "webhook-signed-not-json": Request("POST", "/api/v1/webhooks/cvat", content=b"event=ping", signed=True,
                                           token=False),
        "webhook-signed-list": Request("POST", "/api/v1/webhooks/cvat", content=b"[1, 2]", signed=True, token=False),
        "webhook-signed-no-event": Request("POST", "/api/v1/webhooks/cvat", content=b'{"task": {}}', signed=True,
                                           token=False),
        "webhook-signed-deep": Request("POST", "/api/v1/webhooks/cvat",
                                       content=b'{"event": "update:task", "x": ' + b"[" * DEEP + b"]" * DEEP + b"}",
                                       signed=True, token=False),
        "webhook-signed-big": Request("POST", "/api/v1/webhooks/cvat",
                                      content=b'{"event": "x", "pad": "' + b"a" * (2 << 20) + b'"}',
                                      signed=True, token=False),
        "webhook-signed-stale": Request("POST", "/api/v1/webhooks/cvat", content=json.dumps(
            {"event": "update:task", "task": {"id": task_id, "status": "completed",
                                              "updated_date": "2020-01-01T00:00:00Z"},
             "before_update": {"status": "annotation"}}).encode(), signed=True, token=False),
        "webhook-text-plain": Request("POST", "/api/v1/webhooks/cvat", content=b'{"event": "ping"}', signed=True,
                                      token=False, headers={"Content-Type": "text/plain"}),
    }
    return [Case("http", f"http-{name}", _const(request)) for name, request in requests.items()]


def all_cases(task_id: int = 1) -> list[Case]:
    return archive_cases() + template_cases() + parameter_cases() + http_cases(task_id)
