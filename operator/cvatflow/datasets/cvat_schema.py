"""CVAT for images / video 1.1 XML as typed records with limits, checked before any code reads a shape."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cvatflow.config import InputLimits, input_limits
from cvatflow.datasets.coco_schema import limits_of, name_length, side
from cvatflow.datasets.safety import name_problem
from cvatflow.datasets.xmlsafe import parse
from cvatflow.errors import DatasetError

# The attributes each shape kind needs (CVAT always writes them); other kinds are only counted.
NEEDED = {"box": ("xtl", "ytl", "xbr", "ybr"), "polygon": ("points",), "ellipse": ("cx", "cy", "rx", "ry"),
          "mask": ("rle", "left", "top", "width", "height")}


def _number(value: Any) -> float:
    """An XML attribute as a finite number (CVAT writes "12.5", "0.00")."""
    try:
        number = float(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise ValueError("not a number") from None
    if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number):
        raise ValueError("not a finite number")
    return float(number)


def _whole(value: Any) -> int:
    """A whole number written as "32" or "32.0" (some writers add the fraction); "32.5" counts as 32, as before."""
    number = _number(value)
    if abs(number) > 2 ** 62:
        raise ValueError("too large")
    return int(number)


def _flag(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true"):
        return True
    if text in ("0", "false", ""):
        return False
    raise ValueError("not 0 or 1")


def _numbers(text: Any, info: ValidationInfo, separator: str) -> list[float]:
    if not isinstance(text, str):
        raise ValueError("not text")  # noqa: TRY004 (pydantic reports ValueError, not TypeError)
    parts = [p for p in text.replace(" ", "").split(separator) if p]
    limit = limits_of(info).coordinates
    if len(parts) > limit:
        raise ValueError(f"over {limit} numbers (CVATFLOW_MAX_COORDINATES)")
    return parts  # type: ignore[return-value]  (converted by the caller)


Number = Annotated[float, Field(allow_inf_nan=False)]  # pydantic reads "12.5" itself: fast for millions
Whole = Annotated[int, BeforeValidator(_whole), Field(ge=0)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Text = Annotated[str, Field(strict=True)]


class Shape(BaseModel, extra="ignore"):  # z_order, source, group_id, ...: CVAT's own, not read
    """One shape of an image, or one frame of a track: its kind is the XML element's name (`tag`)."""

    tag: Text
    label: Text = ""
    occluded: Flag = False
    outside: Flag = False
    keyframe: Flag = False
    frame: Whole | None = None
    rotation: Number = 0.0
    attributes: dict[str, str | None] = {}
    xtl: Number | None = None
    ytl: Number | None = None
    xbr: Number | None = None
    ybr: Number | None = None
    cx: Number | None = None
    cy: Number | None = None
    rx: Number | None = None
    ry: Number | None = None
    points: list[float] | None = None
    rle: list[Annotated[int, Field(ge=0)]] | None = None
    left: Whole | None = None
    top: Whole | None = None
    width: Whole | None = None
    height: Whole | None = None

    _label = field_validator("label")(name_length)

    @field_validator("points", mode="before")
    @classmethod
    def _points(cls, value: Any, info: ValidationInfo) -> list[float]:
        """"x1,y1;x2,y2;..." -> [x1, y1, x2, y2, ...]."""
        pairs = _numbers(value, info, ";")
        flat = []
        for pair in pairs:
            xy = pair.split(",")
            if len(xy) != 2:
                raise ValueError(f"{pair!r} is not a point x,y")
            flat += [_number(v) for v in xy]
        if len(flat) > limits_of(info).coordinates:
            raise ValueError(f"over {limits_of(info).coordinates} numbers (CVATFLOW_MAX_COORDINATES)")
        return flat

    @field_validator("rle", mode="before")
    @classmethod
    def _runs(cls, value: Any, info: ValidationInfo) -> list[int]:
        """CVAT's "2, 3, 4, 3": run lengths of 0s and 1s from a 0."""
        return [_whole(v) for v in _numbers(value, info, ",")]

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, str | None], info: ValidationInfo) -> dict[str, str | None]:
        limits = limits_of(info)
        if len(value) > limits.categories:
            raise ValueError(f"over {limits.categories} attributes (CVATFLOW_MAX_CATEGORIES)")
        for name in value:
            name_length(name, info)
        return value

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Shape:
        missing = [k for k in NEEDED.get(self.tag, ()) if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a <{self.tag}> needs {', '.join(missing)}")
        if self.tag == "mask":
            limit = limits_of(info).mask_pixels
            if self.width * self.height > limit:
                raise ValueError(f"a mask of {self.width}x{self.height} pixels, over the limit of {limit} "
                                 f"(CVATFLOW_MAX_MASK_PIXELS)")
        return self


class Image(BaseModel, extra="ignore"):
    """One `<image>` of CVAT for images: its file, size, subset, tags and shapes."""

    id: Whole | None = None
    name: Annotated[str, Field(strict=True, min_length=1)]
    width: Whole = 0
    height: Whole = 0
    subset: Text | None = None
    tags: list[Text] = []
    shapes: list[Shape] = []

    _sides = field_validator("width", "height")(side)
    _subset = field_validator("subset")(name_length)

    @field_validator("name")
    @classmethod
    def _relative(cls, value: str, info: ValidationInfo) -> str:
        name_length(value, info)
        problem = name_problem(value)
        if problem:  # a name reaching outside the export would read a file of the server
            raise ValueError(problem)
        return value


class Track(BaseModel, extra="ignore"):
    """One `<track>` of CVAT for video: a label and one shape per frame (`frame` required)."""

    id: Whole | None = None
    label: Text = ""
    shapes: list[Shape] = []

    _label = field_validator("label")(name_length)

    @model_validator(mode="after")
    def _frames(self) -> Track:
        if any(shape.frame is None for shape in self.shapes):
            raise ValueError("every shape of a track needs its frame number")
        return self


class Label(BaseModel, extra="ignore"):
    name: Text = ""
    parent: Text | None = None  # a skeleton's part

    _name = field_validator("name")(name_length)


class Document(BaseModel):
    """annotations.xml: the task's labels and either images (CVAT for images) or tracks (CVAT for video)."""

    labels: list[Label] = []
    images: list[Image] = []
    tracks: list[Track] = []
    width: Whole = 0  # the video's original_size
    height: Whole = 0

    _sides = field_validator("width", "height")(side)

    @property
    def video(self) -> bool:
        """A "CVAT for video 1.1" document: tracks and no images."""
        return bool(self.tracks) and not self.images


def _raw(element: ET.Element) -> dict[str, Any]:
    """An element's XML attributes, its <attribute> children by name, and its tag."""
    return {**element.attrib, "tag": element.tag,
            "attributes": {a.get("name", ""): a.text for a in element if a.tag == "attribute"}}


def load(xml: Path, limits: InputLimits | None = None, limit: int = 5) -> Document:
    """annotations.xml at `xml` as a Document, within `limits` (default: the configured input limits).

    Raises one DatasetError naming `xml` and each wrong element (up to `limit`): not XML, entities or external
    references (see xmlsafe.parse), a value of the wrong type (a coordinate that is no finite number, a flag
    that is not 0/1, a side that is negative or over the limit), a shape missing the attributes its kind
    needs, an image name leaving the export's folder, or more images, shapes or labels than the limits allow.
    """
    limits = limits or input_limits()
    root = parse(xml, "CVAT XML file")
    if root.tag != "annotations":
        raise DatasetError(f"{xml}: the root element is <{root.tag[:40]}>, not <annotations>; this is not a CVAT "
                           f"for images/video 1.1 file (export the task again in that format)")
    labels = [{"name": label.findtext("name") or "", "parent": label.findtext("parent")}
              for label in root.iterfind("meta/*/labels/label")]
    images, tracks, shapes = [], [], 0
    for kind, elements, out in (("image", root.iterfind("image"), images), ("track", root.iterfind("track"), tracks)):
        for element in elements:
            raw = _raw(element)
            children = [child for child in element if child.tag not in ("tag", "attribute")]
            shapes += len(children)
            if len(out) >= limits.images or shapes > limits.annotations:
                over = "images" if len(out) >= limits.images else "annotations"
                raise DatasetError(f"{xml}: more {'shapes' if over == 'annotations' else kind + 's'} than the "
                                   f"limit of {getattr(limits, over):,} (CVATFLOW_MAX_{over.upper()}); split the "
                                   f"task, or raise the limit")
            raw["shapes"] = [_raw(child) for child in children]
            raw["tags"] = [tag.get("label", "") for tag in element.iterfind("tag")]
            out.append(raw)
    if len(labels) > limits.categories:
        raise DatasetError(f"{xml}: {len(labels):,} labels, over the limit of {limits.categories:,} "
                           f"(CVATFLOW_MAX_CATEGORIES)")
    raw = {"labels": labels, "images": images, "tracks": tracks,
           "width": root.findtext("meta/*/original_size/width") or 0,
           "height": root.findtext("meta/*/original_size/height") or 0}
    try:
        return Document.model_validate(raw, context={"limits": limits})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        lines = [_where(e["loc"], raw) + f": {_message(e)}" for e in errors[:limit]]
        more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
        raise DatasetError(f"{xml}: not a CVAT XML file cvatflow can read: {'; '.join(lines)}{more}; export the "
                           f"task again from CVAT, or correct these elements") from None


def _message(error: dict) -> str:
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str) and error["type"] != "missing":
        shown = repr(value)
        message += f" (got {shown[:40] + '...' if len(shown) > 40 else shown})"
    return message


def _where(loc: tuple, raw: dict[str, Any]) -> str:
    """("images", 3, "shapes", 1, "xtl") -> "<image> 3 ('a.png') <box> 1: xtl", from the raw document."""
    parts, node = [], raw
    for i, part in enumerate(loc):
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
            if isinstance(node, dict):
                kind = {"images": "image", "tracks": "track", "labels": "label"}.get(str(loc[i - 1]), node.get("tag"))
                name = node.get("name") or node.get("label") or ""
                parts.append(f"<{kind}> {part}" + (f" ({str(name)[:40]!r})" if name and kind != "label" else ""))
            else:
                parts.append(f"[{part}]")
        elif isinstance(node, dict) and part in node:
            node = node[part]
            if part not in ("images", "tracks", "shapes", "labels"):
                parts.append(str(part))
        else:
            parts.append(str(part))
    return " ".join(parts) or "the file"
