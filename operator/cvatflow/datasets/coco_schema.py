"""The COCO annotation file as a typed model with limits, checked before any code reads a record."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from cvatflow.datasets.safety import name_problem
from cvatflow.errors import DatasetError

MAX_IMAGES = 10_000_000
MAX_ANNOTATIONS = 50_000_000
MAX_CATEGORIES = 100_000
MAX_NAME = 1024  # characters in a file_name or category name (S3 keys are at most 1,024 bytes)
MAX_COORDINATES = 1_000_000  # numbers in one polygon or uncompressed RLE
MAX_SIDE = 100_000  # pixels; larger images are not photographs CVAT can show

Id = Annotated[int, Field(strict=True, ge=-(2 ** 63), le=2 ** 63 - 1)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Side = Annotated[int, Field(strict=True, ge=0, le=MAX_SIDE)]  # 0: unknown (datumaro writes it)


class _Record(BaseModel):
    # COCO files carry fields of their own (attributes, subset, tags, ...): keep them, check what we read.
    model_config = ConfigDict(extra="allow")


class Image(_Record):
    id: Id
    file_name: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_NAME)]
    width: Side | None = None
    height: Side | None = None

    @field_validator("file_name")
    @classmethod
    def _relative(cls, value: str) -> str:
        problem = name_problem(value)
        if problem:  # a file_name reaching outside images/ would read a file of the server
            raise ValueError(f"file_name {problem}")
        return value


class Category(_Record):
    id: Id
    name: Annotated[str, Field(strict=True, max_length=MAX_NAME)]
    supercategory: Annotated[str, Field(strict=True, max_length=MAX_NAME)] | None = None


class Annotation(_Record):
    id: Id | None = None
    image_id: Id
    category_id: Id
    bbox: Annotated[list[Number], Field(max_length=16)] | None = None
    area: Number | None = None
    iscrowd: Annotated[int, Field(strict=True, ge=0, le=1)] | None = None
    segmentation: Any = None

    @field_validator("segmentation")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if value is None or value == [] or value == {}:
            return value
        if isinstance(value, list):
            if len(value) > MAX_COORDINATES or not all(isinstance(p, list) for p in value):
                raise ValueError("polygons must be a list of lists of numbers")
            if sum(len(p) for p in value) > MAX_COORDINATES:
                raise ValueError(f"polygons have more than {MAX_COORDINATES} coordinates")
            if not all(_finite(v) for p in value for v in p):
                raise ValueError("a polygon coordinate is not a finite number")
            return value
        if isinstance(value, dict):
            size, counts = value.get("size"), value.get("counts")
            if not (isinstance(size, list) and len(size) == 2 and all(_count(v) for v in size)):
                raise ValueError("an RLE mask needs size [height, width] of whole numbers")
            if isinstance(counts, list):
                if len(counts) > MAX_COORDINATES or not all(_count(v) for v in counts):
                    raise ValueError("RLE counts must be whole numbers of pixels (or one compressed string)")
            elif not (isinstance(counts, str) and len(counts) <= 4 * MAX_COORDINATES):
                raise ValueError("RLE counts must be a list of whole numbers or one compressed string")
            return value
        raise ValueError("segmentation must be polygons (a list of lists) or an RLE mask (an object)")


class Document(_Record):
    images: Annotated[list[Image], Field(max_length=MAX_IMAGES)]
    annotations: Annotated[list[Annotation], Field(max_length=MAX_ANNOTATIONS)] | None = None
    categories: Annotated[list[Category], Field(max_length=MAX_CATEGORIES)] | None = None
    info: dict[str, Any] | None = None
    licenses: list[Any] | None = None


_DOCUMENT = TypeAdapter(Document)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check(data: Any, source: str | Path, limit: int = 5) -> None:
    """Raise one DatasetError naming `source` and each wrong record (up to `limit`) unless `data`, a parsed
    COCO file, has the types and sizes COCO (as CVAT writes it) has. Counts and values are not judged here:
    `coco.validate` reports those with the images at hand."""
    try:
        _DOCUMENT.validate_python(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        lines = [f"{_where(e['loc'])}: {e['msg']}{_got(e)}" for e in errors[:limit]]
        more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
        raise DatasetError(f"{source}: not a COCO file cvatflow can read: {'; '.join(lines)}{more}; export the "
                           f"task again from CVAT, or correct these records") from None


def _where(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the file"


def _got(error: dict) -> str:
    if error.get("type") in ("missing",) or "input" not in error:
        return ""
    value = error["input"]
    if isinstance(value, (dict, list)):
        return f" (got {'an object' if isinstance(value, dict) else 'a list'})"
    shown = repr(value)
    return f" (got {type(value).__name__} {shown[:40] + '...' if len(shown) > 40 else shown})"
