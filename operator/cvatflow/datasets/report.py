"""The ingest report: what every conversion carried, converted and dropped, per kind and reason."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvatflow.atomic import atomic_write
from cvatflow.errors import DatasetError

REPORT_FILE = "dataset_report.json"
VERSION = 1

# Outcomes of one object or image. Every annotation of the export ends in exactly one of them, so
# total == usable + ignored + dropped always holds (the property test checks it).
KEPT, CONVERTED, IGNORED, DROPPED = "kept", "converted", "ignored", "dropped"
OUTCOMES = (KEPT, CONVERTED, IGNORED, DROPPED)

# What the user can do about a reason; a warning line names the count, the kind and this fix.
FIXES = {
    "not a detection shape": "draw boxes, polygons, ellipses or masks for the objects the model should find",
    "crowd region (--crowd ignore)": "drop --crowd ignore to train on iscrowd:1 objects (CVAT writes brush "
                                     "masks that way)",
    "VOC difficult": "untick `difficult` in CVAT if the model should learn the object",
    "MOT ignored": "untick `ignored` in CVAT if the model should learn the object",
    "MOT not visible": "set visibility above 0 in CVAT if the model should learn the object",
    "outside frame": "none needed: CVAT marks the track as not in view on those frames",
    "empty box": "redraw the shape in CVAT",
    "empty mask": "redraw the mask in CVAT",
    "broken segmentation": "redraw the shape in CVAT",
    "no image": "export the task with images (Save images), or remove the annotation",
    "unknown category": "add the label to the task, or remove the annotation",
    "no label": "give the shape a label of the task in CVAT (or delete it) and export again",
    "image missing": "export the task with images (Save images) or add the file",
    "image unreadable": "replace the file with a JPEG or PNG (CVAT shows what the browser decodes)",
    "image zero bytes": "upload the image to the task again",
    "image truncated": "upload the image to the task again",
    "size mismatch": "re-export the task; the file is not the image the annotations were drawn on",
    "lost by datumaro": "export the task as COCO 1.0 or CVAT for images 1.1 instead",
    "outside the image": "redraw the shape inside the image, or prepare with --fix to clip it",
}


@dataclass
class DatasetReport:
    """Counts of objects and images by (kind, outcome, reason), plus examples of each (file names, ids).

    `kind` is a CVAT shape kind for objects ("rectangle", "rotated rectangle", "polygon", "mask", "ellipse",
    "polyline", "points", "skeleton", "cuboid", "track frame", ...) and "image" for images.
    """

    source: str = ""
    format: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)  # (what, kind, outcome, reason) -> count
    examples: dict[tuple, list[str]] = field(default_factory=dict)
    per_category: Counter = field(default_factory=Counter)  # usable objects per category name

    def add(self, what: str, kind: str, outcome: str, reason: str = "", example: str | None = None,
            count: int = 1) -> None:
        """Count `count` objects (`what="object"`) or images (`what="image"`) of `kind` with `outcome`."""
        key = (what, kind, outcome, reason)
        self.counts[key] += count
        if example is not None and len(self.examples.setdefault(key, [])) < 3:
            self.examples[key].append(example)

    def obj(self, kind: str, outcome: str, reason: str = "", example: str | None = None, count: int = 1) -> None:
        self.add("object", kind, outcome, reason, example, count)

    def image(self, outcome: str, reason: str = "", example: str | None = None) -> None:
        self.add("image", "image", outcome, reason, example)

    def total(self, what: str = "object", outcome: str | None = None) -> int:
        return sum(n for (w, _, o, _), n in self.counts.items() if w == what and (outcome is None or o == outcome))

    @property
    def usable(self) -> int:
        """Objects that become training targets (kept or converted)."""
        return self.total("object", KEPT) + self.total("object", CONVERTED)

    @property
    def usable_images(self) -> int:
        return self.total("image", KEPT) + self.total("image", CONVERTED)

    def warnings(self) -> list[str]:
        """One line per (kind, reason) that left objects or images out: count, kind, reason and the fix."""
        lines = []
        for (what, kind, outcome, reason), n in sorted(self.counts.items()):
            if outcome not in (IGNORED, DROPPED):
                continue
            noun = (kind if kind == "image" else f"{kind} object") + ("s" if n != 1 else "")
            examples = self.examples.get((what, kind, outcome, reason))
            where = f" (e.g. {', '.join(examples)})" if examples else ""
            verb = "kept out of training as ignore regions" if outcome == IGNORED else "dropped"
            lines.append(f"{n} {noun} {verb}: {reason}{where}; fix: {FIXES.get(reason, 'see the report')}")
        for name, n in sorted(self.per_category.items()):
            if n == 0:
                lines.append(f"class {name!r} has no usable objects: the model cannot learn it; fix: annotate "
                             f"{name!r} with boxes, polygons, ellipses or masks, or delete the label")
        return lines

    def summary(self) -> str:
        """One line: usable objects and images out of the total, and what was left out."""
        total, images = self.total("object"), self.total("image")
        text = (f"{self.usable} of {total} objects usable on {self.usable_images} of {images} images"
                f" ({self.total('object', CONVERTED)} converted, {self.total('object', IGNORED)} ignore regions, "
                f"{self.total('object', DROPPED)} dropped)")
        return text

    def to_dict(self) -> dict[str, Any]:
        entries = [{"what": w, "kind": k, "outcome": o, "reason": r, "count": n,
                    "examples": self.examples.get((w, k, o, r), [])}
                   for (w, k, o, r), n in sorted(self.counts.items())]
        return {"version": VERSION, "source": self.source, "format": self.format, "options": self.options,
                "objects": {"total": self.total("object"), "usable": self.usable,
                            **{o: self.total("object", o) for o in OUTCOMES}},
                "images": {"total": self.total("image"), "usable": self.usable_images,
                           **{o: self.total("image", o) for o in OUTCOMES}},
                "per_category": dict(sorted(self.per_category.items())),
                "entries": entries, "warnings": self.warnings(), "summary": self.summary()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetReport:
        report = cls(source=data.get("source", ""), format=data.get("format", ""), options=data.get("options", {}))
        for e in data.get("entries", []):
            key = (e["what"], e["kind"], e["outcome"], e.get("reason", ""))
            report.counts[key] += int(e["count"])
            if e.get("examples"):
                report.examples[key] = list(e["examples"])
        report.per_category.update(data.get("per_category", {}))
        return report

    def write(self, folder: Path) -> Path:
        """Write `dataset_report.json` into `folder` (temp name, then rename)."""
        path = Path(folder) / REPORT_FILE
        return atomic_write(path, json.dumps(self.to_dict(), indent=1))

    def table(self):
        """A rich Table of every (kind, outcome, reason) row."""
        from rich.table import Table

        table = Table("what", "kind", "outcome", "reason", "count", title=self.summary())
        style = {DROPPED: "red", IGNORED: "yellow", CONVERTED: "cyan", KEPT: "green"}
        for (what, kind, outcome, reason), n in sorted(self.counts.items()):
            table.add_row(what, kind, f"[{style[outcome]}]{outcome}[/]", reason, str(n))
        return table


def read(folder: Path) -> DatasetReport | None:
    """The `dataset_report.json` of a prepared dataset folder, or None when it has none."""
    path = Path(folder) / REPORT_FILE
    if not path.is_file():
        return None
    try:
        return DatasetReport.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError):
        return None


def require_usable(report: DatasetReport, source: str, minimum: int = 1, error=None) -> None:
    """Refuse a dataset with fewer than `minimum` usable objects (at least 1) before any training, with the
    report's summary and warnings; `error` is the exception class (DatasetError by default)."""
    from cvatflow.errors import DatasetError

    minimum = max(1, int(minimum))
    if report.usable >= minimum:
        return
    warnings = report.warnings()
    why = ("; ".join(warnings[:5]) + (f"; and {len(warnings) - 5} more" if len(warnings) > 5 else "")) \
        if warnings else "annotate objects in CVAT and export again"
    need = "no usable objects" if minimum == 1 else f"fewer than the {minimum} usable objects the template asks for"
    raise (error or DatasetError)(f"{source}: {need} ({report.summary()}): {why}")


def unlabelled_error(source: str | Path, shapes: list[str], which: str, limit: int = 5) -> DatasetError:
    """The one error for shapes without a label (CVAT's importer refuses them too): `source` is the user's file or
    export, `shapes` name each shape and its image or item, `which` says what label they lack; `limit` are named."""
    more = f" (and {len(shapes) - limit} more)" if len(shapes) > limit else ""
    return DatasetError(f"{source}: {len(shapes)} shape{'s' if len(shapes) > 1 else ''} without a label {which}: "
                        f"{'; '.join(shapes[:limit])}{more}; CVAT refuses them on import too. Give each a label of "
                        f"the task in CVAT (or delete it) and export again, or use --fix to drop them (counted in "
                        f"the dataset report)")
