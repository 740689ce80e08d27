"""Ingest a CVAT export (zip or folder): unpack safely, detect its format, normalise it to the COCO layout."""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cvatflow.datasets.archive import extract_archive
from cvatflow.datasets.coco import COCO_FILE, Report, merge, validate
from cvatflow.datasets.safety import check_tree
from cvatflow.datasets.shown import rename
from cvatflow.errors import CvatflowError, DatasetError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
# CVAT's export format names -> datumaro's importer names.
DATUMARO_IMPORTERS = {
    "CVAT for images 1.1": "cvat",
    "Datumaro 1.0": "datumaro",
    "YOLO 1.1": "yolo",
    "PASCAL VOC 1.1": "voc",
    "LabelMe 3.0": "label_me",
    "MOT 1.1": "mot_seq",
}


@dataclass
class DatasetInfo:
    """What ingest produced: the folder, the format it came in, and the validation report."""

    path: Path
    format: str
    report: Report | None = None
    categories: list[str] = field(default_factory=list)

    @property
    def coco(self) -> bool:
        return self.format != "TFRecord 1.0"


def detect_format(root: Path) -> str:
    """The CVAT export format of an unpacked export, by the files it holds."""
    files = [p for p in root.rglob("*") if p.is_file()]
    names = {p.relative_to(root).as_posix() for p in files}
    if any(n.endswith(".tfrecord") for n in names):
        return "TFRecord 1.0"
    annotations = [n for n in names if n.startswith("annotations/") and n.endswith(".json")]
    if any(Path(n).name.startswith(("instances_", "person_keypoints_")) for n in annotations):
        return "COCO 1.0"
    if annotations:
        return "Datumaro 1.0"
    if any(n.startswith("gt/") and n.endswith("gt.txt") for n in names):
        return "MOT 1.1"
    if any(n.startswith("Annotations/") for n in names) and any(n.startswith("JPEGImages/") for n in names):
        return "PASCAL VOC 1.1"
    if "obj.names" in names or "obj.data" in names:
        return "YOLO 1.1"
    for xml in (p for p in files if p.suffix == ".xml"):
        head = xml.read_text(errors="ignore")[:2000]
        if "<annotations" in head:
            return "CVAT for images 1.1"
        if "<annotation" in head:
            return "LabelMe 3.0"
    raise DatasetError(f"{root}: not a CVAT export in a known format (COCO 1.0, CVAT for images 1.1, Datumaro 1.0, "
                       f"YOLO 1.1, PASCAL VOC 1.1, LabelMe 3.0, MOT 1.1, TFRecord 1.0); export the task again")


def ingest(export: str | Path, out_dir: str | Path, fix: bool = False) -> DatasetInfo:
    """Normalise `export` into `out_dir`: annotations/instances_default.json + images/ (TFRecord is copied as is).

    The result is built in a temporary folder next to `out_dir` and renamed into place, so a failure
    leaves nothing half-written.
    """
    export, out_dir = Path(export), Path(out_dir)
    if not export.exists():
        raise DatasetError(f"{export}: no such export; give a CVAT export zip or folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".ingest-", dir=out_dir.parent))
    try:
        if export.is_dir():
            check_tree(export)  # links and special files refused, as in archives
        source = extract_archive(export, work / "export") if export.is_file() else export
        fmt = detect_format(source)
        result = work / "dataset"
        if fmt == "TFRecord 1.0":
            shutil.copytree(source, result)
            info = DatasetInfo(out_dir, fmt)
        else:
            tags: dict[tuple[str, str], list[str]] = {}
            if fmt != "COCO 1.0":
                source, tags = _convert(source, fmt, work / "converted")
            data = merge({Path(p).stem.removeprefix("instances_"): p for p in
                          sorted((source / "annotations").glob("instances_*.json"))})
            _attach_tags(data, tags)
            _gather_images(source, data, result / "images")
            report = validate(data, result / "images", fix=fix)
            (result / "annotations").mkdir(parents=True, exist_ok=True)
            (result / COCO_FILE).write_text(json.dumps(data))
            info = DatasetInfo(out_dir, fmt, report, [c["name"] for c in data["categories"]])
        if out_dir.exists():
            shutil.rmtree(out_dir)
        result.replace(out_dir)
        return info
    except CvatflowError as error:  # name the user's input, never the temporary folder
        rename(error, {work / "export": export, work / "converted": f"{export} (converted to COCO)", work: export})
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _convert(source: Path, fmt: str, target: Path) -> tuple[Path, dict[tuple[str, str], list[str]]]:
    """Other CVAT formats become COCO through datumaro, as CVAT itself does.

    COCO has no image tags, so the CVAT tags of each item come back beside it: {(subset, item id): names}.
    """
    try:
        import datumaro as dm
    except ImportError:
        raise DatasetError(f"{source}: {fmt} needs datumaro; install cvatflow with the `formats` extra") from None
    _datumaro_context()
    if fmt == "LabelMe 3.0" and not (source / "Annotations").is_dir():
        source = _labelme_layout(source, target.parent / "labelme")
    try:
        dataset = dm.Dataset.import_from(str(source), DATUMARO_IMPORTERS[fmt])
        tags = _item_tags(dataset, dm)
        dataset.export(str(target), "coco_instances", save_media=True)
    except Exception as exc:  # datumaro raises many kinds; all mean the export is not readable
        raise DatasetError(f"{source}: cannot read it as {fmt} ({exc.__class__.__name__}: {str(exc)[:200]})") from None
    if not list((target / "annotations").glob("instances_*.json")):
        raise DatasetError(f"{source}: {fmt} export has no annotations to convert")
    return target, tags


def _item_tags(dataset, dm) -> dict[tuple[str, str], list[str]]:
    """CVAT's tags are datumaro label annotations; coco_instances drops them, so read them first."""
    labels = dataset.categories().get(dm.AnnotationType.label)
    tags: dict[tuple[str, str], list[str]] = {}
    for item in dataset:
        names = [labels[a.label].name for a in item.annotations
                 if a.type == dm.AnnotationType.label and labels is not None and a.label is not None]
        if names:
            tags[(item.subset or "default", item.id)] = names
    return tags


def _attach_tags(data: dict, tags: dict[tuple[str, str], list[str]]) -> None:
    """Give each COCO image its CVAT tags (`"tags": [names]`), which `--split-by tags` reads."""
    if not tags:
        return
    for image in data["images"]:
        item_id = Path(str(image.get("file_name", ""))).with_suffix("").as_posix()
        names = tags.get((image.get("subset") or "default", item_id))
        if names:
            image["tags"] = sorted(set(image.get("tags") or []) | set(names))
    # A label used only as a tag is no class to detect: keep it out of the categories (and cvat-num-classes).
    tag_names = {name for names in tags.values() for name in names}
    drawn = {a.get("category_id") for a in data.get("annotations") or []}
    data["categories"] = [c for c in data["categories"] if c.get("name") not in tag_names or c.get("id") in drawn]


def _datumaro_context() -> None:
    """datumaro keeps its image backend in context variables set only in the context that imported it first,
    so a conversion in another thread (an API job) or asyncio task would find them empty."""
    from datumaro.util import image

    if image.IMAGE_BACKEND.get(None) is None:
        try:
            import cv2  # noqa: F401  (datumaro prefers OpenCV when it is there)

            image.IMAGE_BACKEND.set(image.ImageBackend.cv2)
        except ModuleNotFoundError:
            image.IMAGE_BACKEND.set(image.ImageBackend.PIL)


def _labelme_layout(source: Path, target: Path) -> Path:
    """CVAT writes LabelMe flat (img.xml beside img.jpg); datumaro reads Annotations/, Images/<folder>/ and
    Masks/<folder>/, where <folder> is each XML's `<folder>` element."""
    import xml.etree.ElementTree as ET

    xmls = [p for p in source.rglob("*.xml") if p.is_file()]
    folders = set()
    for xml in xmls:
        try:
            folder = ET.parse(xml).getroot().findtext("folder") or ""
        except ET.ParseError:
            raise DatasetError(f"{xml}: not valid XML; export the task again") from None
        folders.add(folder)
        destination = target / "Annotations" / folder / xml.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(xml, destination)
    for path in source.rglob("*"):
        if not path.is_file() or path.suffix == ".xml":
            continue
        relative = path.relative_to(source)
        kind = relative.parts[0] if relative.parts[0] in ("Masks", "Scribbles") else "Images"
        inner = Path(*relative.parts[1:]) if kind != "Images" else relative
        for folder in folders or {""}:
            destination = target / kind / folder / inner
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
    return target


def _gather_images(source: Path, data: dict, images_dir: Path) -> None:
    """Link (or copy) each referenced image into images/, keeping file_name relative to images/."""
    images_dir.mkdir(parents=True, exist_ok=True)
    index: dict[str, Path] = {}
    for path in source.rglob("*"):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            index.setdefault(path.name, path)
    for image in data["images"]:
        name = str(image.get("file_name", ""))
        subset = image.get("subset", "")
        candidates = [source / "images" / subset / name, source / "images" / name, source / name]
        found = next((c for c in candidates if c.is_file()), None) or index.get(Path(name).name)
        if found is None:
            continue  # validation reports it, naming the file
        relative = Path(name) if (source / "images" / name).is_file() else Path(subset or ".") / Path(name).name
        image["file_name"] = relative.as_posix().lstrip("./") if relative.as_posix().startswith("./") \
            else relative.as_posix()
        target = images_dir / image["file_name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            # A copy, not a hard link: a link ties the dataset to the user's folder, and input folders
            # with hard links to outside are refused (datasets/safety.py).
            shutil.copy2(found, target)
