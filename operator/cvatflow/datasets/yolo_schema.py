"""YOLO files (Ultralytics data.yaml, YOLO 1.1 obj.names, label lines) as typed records with limits."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, ValidationInfo, field_validator

from cvatflow.config import InputLimits, input_limits
from cvatflow.datasets.coco_schema import at_most, limits_of, name_length
from cvatflow.datasets.xmlsafe import read_text
from cvatflow.errors import CvatflowError, DatasetError


def _name(value: Any) -> str:
    """A class name: text (data_yaml gives numbers and yes/no as written); a list, mapping or null is no name."""
    if not isinstance(value, str):
        raise ValueError("a class name must be text")  # noqa: TRY004 (pydantic reports ValueError)
    return value


ClassName = Annotated[str, BeforeValidator(_name)]


class DataYaml(BaseModel, extra="allow"):  # path, train, val, nc, ...: Ultralytics' own, not read
    """Ultralytics' data.yaml: `names` (a list, or {index: name}) and, in a Pose export, `kpt_shape`."""

    names: list[ClassName] | dict[Annotated[int, Field(ge=0)], ClassName]
    kpt_shape: Any = None

    @field_validator("names", mode="before")
    @classmethod
    def _count(cls, value: Any, info: ValidationInfo) -> Any:
        limit = limits_of(info).categories
        if isinstance(value, dict):
            at_most(list(value), limit, "CVATFLOW_MAX_CATEGORIES")
        return at_most(value, limit, "CVATFLOW_MAX_CATEGORIES")

    @field_validator("names")
    @classmethod
    def _lengths(cls, value: list[str] | dict[int, str], info: ValidationInfo) -> list[str] | dict[int, str]:
        for name in value.values() if isinstance(value, dict) else value:
            name_length(name, info)
        return value

    def labels(self) -> list[str]:
        """Class names in class-index order."""
        return [self.names[k] for k in sorted(self.names)] if isinstance(self.names, dict) else list(self.names)


def data_yaml(path: Path, limits: InputLimits | None = None) -> DataYaml:
    """The data.yaml at `path`, read with cvatflow's safe YAML reader (no tags, no alias bombs, a depth limit).

    Raises one DatasetError naming `path` and the field for a file that is not YAML, over the size limit, or
    without `names` as text.
    """
    from cvatflow.templates.yamlsafe import load_documents, source_text

    text = read_text(path, "data.yaml")
    try:
        documents = load_documents(text, str(path))
    except CvatflowError as exc:
        raise DatasetError(f"{exc}".replace("fix the syntax and try again", "export the task again")) from None
    meta = documents[0] if len(documents) == 1 else None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: not one YAML mapping with `names` of the classes; export the task again")
    if meta.get("names") is None:
        raise DatasetError(f"{path}: no `names` of the classes; export the task again")
    names = meta["names"]
    if isinstance(names, (list, dict)):  # `1`, `1.5` or `yes` is the name its author wrote, not a number
        keys = range(len(names)) if isinstance(names, list) else list(names)
        written = [source_text(names, k) if isinstance(names[k], (bool, int, float)) else names[k] for k in keys]
        meta = {**meta, "names": written if isinstance(names, list) else dict(zip(keys, written, strict=True))}
    try:
        return DataYaml.model_validate(dict(meta), context={"limits": limits or input_limits()})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # `names` is a list or a mapping: report the arm of the union the file wrote, as names.<index or key>
        arm = "dict" if isinstance(meta["names"], dict) else "list"
        error = next((e for e in errors if len(e["loc"]) > 1 and str(e["loc"][1]).startswith(arm)), errors[0])
        where = ".".join(str(p) for p in error["loc"][:1] + error["loc"][2:] if p != "[key]")
        raise DatasetError(f"{path}: {where}: {error['msg'].removeprefix('Value error, ')}; export the task "
                           f"again") from None


def obj_names(path: Path, limits: InputLimits | None = None) -> list[str]:
    """YOLO 1.1's obj.names: one class name a line. DatasetError naming `path` over the limits."""
    limits = limits or input_limits()
    names = [line.strip() for line in read_text(path, "obj.names").splitlines() if line.strip()]
    if len(names) > limits.categories:
        raise DatasetError(f"{path}: {len(names):,} class names, over the limit of {limits.categories:,} "
                           f"(CVATFLOW_MAX_CATEGORIES)")
    for number, name in enumerate(names, start=1):
        if len(name) > limits.name_length:
            raise DatasetError(f"{path}:{number}: a class name of {len(name):,} characters, over the limit of "
                               f"{limits.name_length} (CVATFLOW_MAX_NAME_LENGTH)")
    return names


class Line(BaseModel, frozen=True):
    """One label line, `class v1 v2 ...`: a class index and finite numbers (normalised coordinates)."""

    index: Annotated[int, Field(ge=0)]
    numbers: list[float]


def parse_line(text: str, limits: InputLimits | None = None) -> Line | None:
    """A label line as a Line, or None when it is no class index followed by finite numbers (the caller counts
    it as dropped). A line of more numbers than the `coordinates` limit is None too."""
    parts = text.split()
    if not parts or len(parts) > (limits or input_limits()).coordinates + 1:
        return None
    try:
        index = float(parts[0])
        numbers = [float(v) for v in parts[1:]]
    except ValueError:
        return None
    if not (math.isfinite(index) and index == int(index) and index >= 0) or \
            not all(math.isfinite(v) for v in numbers):
        return None
    return Line(index=int(index), numbers=numbers)


def label_lines(path: Path, shown: str, limits: InputLimits, seen: int = 0) -> list[tuple[int, str]]:
    """The non-empty lines of the label file at `path` with their line numbers. `seen` lines were read before:
    past the `annotations` limit in all, a DatasetError naming `shown`."""
    lines = [(n, line) for n, line in enumerate(read_text(path, "label file").splitlines(), start=1) if line.strip()]
    if seen + len(lines) > limits.annotations:
        raise DatasetError(f"{shown}: more label lines than the limit of {limits.annotations:,} "
                           f"(CVATFLOW_MAX_ANNOTATIONS); split the task, or raise the limit")
    return lines
