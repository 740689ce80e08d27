"""The COCO annotation file as a typed model with limits, checked before any code reads a record."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator

from cvatflow.config import InputLimits, input_limits
from cvatflow.datasets.safety import name_problem
from cvatflow.errors import DatasetError

# The size limits are input limits (config.py, CVATFLOW_MAX_*), passed to validation as its context.
Id = Annotated[int, Field(strict=True, ge=-(2 ** 63), le=2 ** 63 - 1)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Side = Annotated[int, Field(strict=True, ge=0)]  # 0: unknown (datumaro writes it); the upper limit below
Name = Annotated[str, Field(strict=True)]


def limits_of(info: ValidationInfo) -> InputLimits:
    """The input limits a validation runs under (its context), else the configured ones."""
    return (info.context or {}).get("limits") or input_limits()


def name_length(value: str | None, info: ValidationInfo) -> str | None:
    """A field validator: `value` no longer than the `name_length` limit."""
    limit = limits_of(info).name_length
    if value is not None and len(value) > limit:
        raise ValueError(f"longer than {limit} characters (CVATFLOW_MAX_NAME_LENGTH)")
    return value


def side(value: int | None, info: ValidationInfo) -> int | None:
    """A field validator: an image side no larger than the `image_side` limit."""
    limit = limits_of(info).image_side
    if value is not None and value > limit:
        raise ValueError(f"over {limit} pixels (CVATFLOW_MAX_IMAGE_SIDE)")
    return value


def at_most(value: Any, limit: int, variable: str) -> Any:
    """A before-validator's check: a list of at most `limit` items (counted before each is validated)."""
    if isinstance(value, list) and len(value) > limit:
        raise ValueError(f"{len(value)} entries, over the limit of {limit} ({variable})")
    return value


class _Record(BaseModel, extra="allow"):
    """COCO files carry fields of their own (attributes, subset, tags, ...): keep them, check what we read."""


class Image(_Record):
    id: Id
    file_name: Annotated[str, Field(strict=True, min_length=1)]
    width: Side | None = None
    height: Side | None = None

    _sides = field_validator("width", "height")(side)

    @field_validator("file_name")
    @classmethod
    def _relative(cls, value: str, info: ValidationInfo) -> str:
        name_length(value, info)
        problem = name_problem(value)
        if problem:  # a file_name reaching outside images/ would read a file of the server
            raise ValueError(f"file_name {problem}")
        return value


class Category(_Record):
    id: Id
    name: Name
    supercategory: Name | None = None

    _names = field_validator("name", "supercategory")(name_length)


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
    def _shape(cls, value: Any, info: ValidationInfo) -> Any:
        most = limits_of(info).coordinates
        if value is None or value == [] or value == {}:
            return value
        if isinstance(value, list):
            if len(value) > most or not all(isinstance(p, list) for p in value):
                raise ValueError("polygons must be a list of lists of numbers")
            if sum(len(p) for p in value) > most:
                raise ValueError(f"polygons have more than {most} coordinates (CVATFLOW_MAX_COORDINATES)")
            if not all(_finite(v) for p in value for v in p):
                raise ValueError("a polygon coordinate is not a finite number")
            return value
        if isinstance(value, dict):
            size, counts = value.get("size"), value.get("counts")
            if not (isinstance(size, list) and len(size) == 2 and all(_count(v) for v in size)):
                raise ValueError("an RLE mask needs size [height, width] of whole numbers")
            if isinstance(counts, list):
                if len(counts) > most or not all(_count(v) for v in counts):
                    raise ValueError("RLE counts must be whole numbers of pixels (or one compressed string)")
            elif not (isinstance(counts, str) and len(counts) <= 4 * most):
                raise ValueError("RLE counts must be a list of whole numbers or one compressed string")
            return value
        raise ValueError("segmentation must be polygons (a list of lists) or an RLE mask (an object)")


class Document(_Record):
    images: list[Image]
    annotations: list[Annotation] | None = None
    categories: list[Category] | None = None
    info: dict[str, Any] | None = None
    licenses: list[Any] | None = None

    @field_validator("images", "annotations", "categories", mode="before")
    @classmethod
    def _counts(cls, value: Any, info: ValidationInfo) -> Any:
        field = str(info.field_name)  # each is also the name of its input limit
        return at_most(value, getattr(limits_of(info), field), f"CVATFLOW_MAX_{field.upper()}")


_DOCUMENT = TypeAdapter(Document)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check(data: Any, source: str | Path, limit: int = 5, limits: InputLimits | None = None) -> None:
    """Raise one DatasetError naming `source` and each wrong record (up to `limit`) unless `data`, a parsed
    COCO file, has the types and sizes COCO (as CVAT writes it) has, within `limits` (default: the configured
    input limits). Counts and values are not judged here: `coco.validate` reports those with the images at hand."""
    try:
        _DOCUMENT.validate_python(data, context={"limits": limits or input_limits()})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        lines = [f"{_where(e['loc'])}: {e['msg'].removeprefix('Value error, ')}{_got(e)}" for e in errors[:limit]]
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
