"""Typed checks of the files datumaro reads (VOC, LabelMe, MOT, YOLO 1.1, Datumaro), before it reads them."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, ValidationInfo, field_validator

from cvatflow.config import InputLimits, input_limits
from cvatflow.datasets.coco_schema import name_length, side
from cvatflow.datasets.cvat_schema import Number, Whole
from cvatflow.datasets.safety import name_problem
from cvatflow.datasets.xmlsafe import parse, read_text
from cvatflow.datasets.yolo_schema import label_lines, obj_names, parse_line
from cvatflow.errors import DatasetError


def _relative(value: str | None, info: ValidationInfo) -> str | None:
    """A field validator: a path inside the export (datumaro would open it), within the name length limit."""
    if value:
        name_length(value, info)
        problem = name_problem(value)
        if problem:
            raise ValueError(problem)
    return value


def _integer(value: Any) -> int:
    """An integer as datumaro's int() reads it ("1", "-1"; not "1.0")."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError("not a whole number") from None


Integer = Annotated[int, BeforeValidator(_integer)]
Path_ = Annotated[str | None, BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v)]


class VocBox(BaseModel):
    xmin: Number
    ymin: Number
    xmax: Number
    ymax: Number


class VocObject(BaseModel, extra="ignore"):
    name: Annotated[str, Field(min_length=1)]
    bndbox: VocBox | None = None

    _name = field_validator("name")(name_length)


class VocFile(BaseModel, extra="ignore"):
    """One PASCAL VOC Annotations/<id>.xml: its image's name and size, and its objects."""

    filename: Path_ = None
    width: Whole = 0
    height: Whole = 0
    objects: list[VocObject] = []

    _filename = field_validator("filename")(_relative)
    _sides = field_validator("width", "height")(side)


class LabelMeObject(BaseModel, extra="ignore"):
    name: str = ""
    mask: Path_ = None
    scribble: Path_ = None

    _name = field_validator("name")(name_length)
    _files = field_validator("mask", "scribble")(_relative)


class LabelMeFile(BaseModel, extra="ignore"):
    """One LabelMe <annotation>: the folder and file of its image (used as paths), and its objects."""

    filename: Path_ = None
    folder: Path_ = None
    objects: list[LabelMeObject] = []

    _files = field_validator("filename", "folder")(_relative)


class MotRow(BaseModel):
    """One line of MOT's gt.txt: frame, track id, box (x, y, w, h), and optionally confidence, class and
    visibility (CVAT writes all nine)."""

    frame: Annotated[int, BeforeValidator(_integer), Field(ge=0)]
    track: Integer
    x: Number
    y: Number
    w: Number
    h: Number
    confidence: Number | None = None
    label: Integer | None = None
    visibility: Number | None = None


class DatumaroItem(BaseModel, extra="allow"):
    """One item of a Datumaro 1.0 annotations/<subset>.json: its id and image path (both paths datumaro opens)."""

    id: Annotated[str, Field(strict=True, min_length=1)]
    image: dict[str, Any] | None = None
    annotations: list[dict[str, Any]] = []

    _id = field_validator("id")(_relative)

    @field_validator("image")
    @classmethod
    def _image(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if value and value.get("path") is not None:
            if not isinstance(value["path"], str):
                raise ValueError("image.path must be text")
            _relative(value["path"], info)
        return value


class DatumaroFile(BaseModel, extra="allow"):
    items: list[DatumaroItem] = []
    categories: dict[str, Any] = {}


def check(source: Path, fmt: str, limits: InputLimits | None = None) -> None:
    """Check every annotation file of a `fmt` export at `source` that datumaro will read.

    XML is parsed by xmlsafe (no entities); values are read into the typed records above, within `limits`
    (default: the configured input limits). Raises one DatasetError naming the file (and line or element) and
    the fix for the first file that does not fit.
    """
    limits = limits or input_limits()
    if fmt == "PASCAL VOC 1.1":
        for path in sorted((source / "Annotations").rglob("*.xml")):
            _validate(VocFile, _voc(path), path, limits)
    elif fmt == "LabelMe 3.0":
        for path in sorted(p for p in source.rglob("*.xml") if p.is_file()):
            _validate(LabelMeFile, _labelme(path), path, limits)
    elif fmt == "MOT 1.1":
        for path in sorted(source.rglob("gt.txt")):
            _mot(path, limits)
        for path in sorted(source.rglob("labels.txt")):
            obj_names(path, limits)
    elif fmt == "YOLO 1.1":
        _yolo(source, limits)
    elif fmt == "Datumaro 1.0":
        from cvatflow.jsonlimits import loads

        for path in sorted((source / "annotations").glob("*.json")):
            text = read_text(path, "Datumaro annotation file")
            _validate(DatumaroFile, loads(text, str(path), error=DatasetError), path, limits)
    elif fmt == "Segmentation mask 1.1":
        for path in sorted(source.rglob("labelmap.txt")):
            read_text(path, "labelmap.txt")
        for path in sorted((source / "ImageSets").rglob("*.txt")) if (source / "ImageSets").is_dir() else []:
            _names(path, read_text(path, "image list"), limits)


def _voc(path: Path) -> dict[str, Any]:
    root = parse(path, "VOC annotation file")
    objects = []
    for element in root.iterfind("object"):
        box = element.find("bndbox")
        objects.append({"name": (element.findtext("name") or "").strip(),
                        "bndbox": None if box is None else {k: box.findtext(k) for k in VocBox.model_fields}})
    return {"filename": root.findtext("filename"), "width": root.findtext("size/width") or 0,
            "height": root.findtext("size/height") or 0, "objects": objects}


def _labelme(path: Path) -> dict[str, Any]:
    root = parse(path, "LabelMe annotation file")
    objects = [{"name": (element.findtext("name") or "").strip(), "mask": element.findtext("segm/mask"),
                "scribble": element.findtext("segm/scribbles/scribble_name")} for element in root.iterfind("object")]
    return {"filename": root.findtext("filename"), "folder": root.findtext("folder"), "objects": objects}


def _validate(model: type[BaseModel], raw: Any, path: Path, limits: InputLimits) -> None:
    objects = raw.get("objects") or raw.get("items") if isinstance(raw, dict) else None
    if objects is not None and len(objects) > limits.annotations:
        raise DatasetError(f"{path}: {len(objects):,} objects, over the limit of {limits.annotations:,} "
                           f"(CVATFLOW_MAX_ANNOTATIONS)")
    try:
        model.model_validate(raw, context={"limits": limits})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        lines = [f"{'.'.join(str(p) for p in e['loc']) or 'the file'}: {e['msg'].removeprefix('Value error, ')}"
                 for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise DatasetError(f"{path}: {'; '.join(lines)}{more}; export the task again from CVAT, or correct "
                           f"the file") from None


def _mot(path: Path, limits: InputLimits) -> None:
    lines = label_lines(path, str(path), limits)
    fields = list(MotRow.model_fields)
    for number, line in lines:
        values = [v.strip() for v in line.split(",")]
        if not 6 <= len(values) <= len(fields):
            raise DatasetError(f"{path}:{number}: {len(values)} values; a MOT line is frame,id,x,y,w,h[,confidence,"
                               f"class,visibility]; export the task again")
        try:
            MotRow.model_validate(dict(zip(fields, values, strict=False)))
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            raise DatasetError(f"{path}:{number}: {error['loc'][0]}: {error['msg'].removeprefix('Value error, ')} "
                               f"(got {str(error.get('input'))[:40]!r}); export the task again") from None


def _yolo(source: Path, limits: InputLimits) -> None:
    """YOLO 1.1: obj.names, the image lists (paths datumaro opens) and every `class cx cy w h` line."""
    for path in sorted(source.rglob("obj.names")):
        obj_names(path, limits)
    for path in sorted(p for p in source.glob("*.txt") if p.name not in ("obj.names",)):
        _names(path, read_text(path, "image list"), limits)
    seen = 0
    for path in sorted(p for p in source.rglob("*.txt") if p.parent != source):
        lines = label_lines(path, str(path), limits, seen)
        seen += len(lines)
        for number, line in lines:
            parsed = parse_line(line, limits)
            if parsed is None or len(parsed.numbers) != 4:
                raise DatasetError(f"{path}:{number}: {line[:60]!r} is not `class cx cy w h` (a class index and four "
                                   f"finite numbers); export the task again")


def _names(path: Path, text: str, limits: InputLimits) -> None:
    """An image list: one path a line, each inside the export."""
    for number, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        problem = name and (name_problem(name, limits.entry_name) or
                            (f"is longer than {limits.name_length} characters" if len(name) > limits.name_length
                             else None))
        if problem:
            raise DatasetError(f"{path}:{number}: the image path {name[:60]!r} {problem}; export the task again")

