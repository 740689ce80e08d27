"""Ingest a CVAT export (zip or folder): unpack safely, detect its format, normalise it to the COCO layout."""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cvatflow.datasets import precheck, ultralytics
from cvatflow.datasets.archive import extract_archive
from cvatflow.datasets.coco import COCO_FILE, Report, merge, validate
from cvatflow.datasets.images import IMAGE_SUFFIXES
from cvatflow.datasets.report import DROPPED, FIXES, DatasetReport, unlabelled_error
from cvatflow.datasets.safety import check_tree
from cvatflow.datasets.shown import rename
from cvatflow.errors import CvatflowError, DatasetError, Problem

# CVAT's export format names -> datumaro's importer names.
DATUMARO_IMPORTERS = {
    "CVAT for images 1.1": "cvat",
    "Datumaro 1.0": "datumaro",
    "CVAT for video 1.1": "cvat",
    "YOLO 1.1": "yolo",
    "PASCAL VOC 1.1": "voc",
    "LabelMe 3.0": "label_me",
    "MOT 1.1": "mot_seq",
    "Segmentation mask 1.1": "voc_segmentation",  # instances from SegmentationObject, classes by colour
}


@dataclass
class DatasetInfo:
    """What ingest produced: the folder, the format it came in, and the validation report."""

    path: Path
    format: str
    report: Report | None = None
    categories: list[str] = field(default_factory=list)
    ingest: DatasetReport | None = None  # what became of every object and image

    @property
    def coco(self) -> bool:
        return self.format != "TFRecord 1.0"


def detect_format(root: Path) -> str:
    """The CVAT export format of an unpacked export, by the files it holds."""
    files = [p for p in root.rglob("*") if p.is_file()]
    names = {p.relative_to(root).as_posix() for p in files}
    if any(n.endswith(".tfrecord") for n in names):
        return "TFRecord 1.0"
    if ultralytics.is_ultralytics(root):
        return ultralytics.fmt(root)
    annotations = [n for n in names if n.startswith("annotations/") and n.endswith(".json")]
    if any(Path(n).name.startswith("instances_") for n in annotations):
        return "COCO 1.0"
    if any(Path(n).name.startswith("person_keypoints_") for n in annotations):
        return "COCO Keypoints 1.0"
    if annotations:
        return "Datumaro 1.0"
    if any(n.startswith("gt/") and n.endswith("gt.txt") for n in names):
        return "MOT 1.1"
    if any(n.startswith("Annotations/") for n in names) and any(n.startswith("JPEGImages/") for n in names):
        return "PASCAL VOC 1.1"
    if any(n.startswith(("SegmentationObject/", "SegmentationClass/")) for n in names):
        return "Segmentation mask 1.1"
    if "obj.names" in names or "obj.data" in names:
        return "YOLO 1.1"
    for xml in (p for p in files if p.suffix == ".xml"):
        head = xml.read_text(errors="ignore")[:4000]
        if "<annotations" in head:
            return "CVAT for video 1.1" if "<track" in xml.read_text(errors="ignore") and "<image " not in \
                xml.read_text(errors="ignore") else "CVAT for images 1.1"
        if "<annotation" in head:
            return "LabelMe 3.0"
    raise DatasetError(f"{root}: not a CVAT export in a known format (COCO 1.0, COCO Keypoints 1.0, CVAT for "
                       f"images 1.1, CVAT for video 1.1, Ultralytics YOLO Detection/Segmentation/Oriented Bounding "
                       f"Boxes/Pose 1.0, Datumaro 1.0, YOLO 1.1, PASCAL VOC 1.1, LabelMe 3.0, MOT 1.1, TFRecord "
                       f"1.0); export the task again")


def ingest(export: str | Path, out_dir: str | Path, fix: bool = False, crowd: str = "object") -> DatasetInfo:
    """Normalise `export` into `out_dir`: annotations/instances_default.json + images/<subset>/<folders>/<name>
    + dataset_report.json (TFRecord is copied as is).

    Every object and image is counted in `info.ingest` (a DatasetReport) as kept, converted, ignored or dropped,
    with a reason. `crowd` is "object" (iscrowd:1 records, which is how CVAT writes masks, are objects) or
    "ignore" (COCO's convention: crowd regions are no positives and evaluation ignores them). The result is built
    in a temporary folder next to `out_dir` and renamed into place, so a failure leaves nothing half-written.
    """
    from cvatflow.datasets import cvat_xml
    from cvatflow.datasets.shapes import normalise, tally

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
        ingest_report = DatasetReport(source=export.name, format=fmt, options={"crowd": crowd, "fix": fix})
        result = work / "dataset"
        if fmt == "TFRecord 1.0":
            shutil.copytree(source, result)
            info = DatasetInfo(out_dir, fmt)
        else:
            tags: dict[tuple[str, str], list[str]] = {}
            if fmt.startswith("Ultralytics"):
                data = ultralytics.read(source, ingest_report)
            elif fmt.startswith("CVAT for"):
                xml = next(p for p in sorted(source.rglob("*.xml")) if "<annotations" in
                           p.read_text(errors="ignore")[:4000])
                data = cvat_xml.read(xml, _image_files(source), ingest_report, fix)
            elif fmt.startswith("COCO"):
                prefix = "instances_" if fmt == "COCO 1.0" else "person_keypoints_"
                data = merge({Path(p).stem.removeprefix(prefix): p for p in
                              sorted((source / "annotations").glob(f"{prefix}*.json"))})
            else:
                precheck.check(source, fmt)  # typed and within the limits before datumaro reads a file
                source, tags = _convert(source, fmt, work / "converted", ingest_report, fix)
                data = merge({Path(p).stem.removeprefix("instances_"): p for p in
                              sorted((source / "annotations").glob("instances_*.json"))})
            _attach_tags(data, tags)
            if fmt == "Segmentation mask 1.1":  # VOC's `background` colour is no class
                drawn = {a.get("category_id") for a in data["annotations"]}
                data["categories"] = [c for c in data["categories"] if c.get("name") != "background"
                                      or c.get("id") in drawn]
            normalise(data, ingest_report, crowd, fmt)
            problems = _gather_images(source, data, result / "images", ingest_report, fix)
            report = validate(data, result / "images", fix=fix, ingest=ingest_report)
            report.problems[:0] = problems
            tally(data, ingest_report)
            (result / "annotations").mkdir(parents=True, exist_ok=True)
            (result / COCO_FILE).write_text(json.dumps(data))
            ingest_report.write(result)
            info = DatasetInfo(out_dir, fmt, report, [c["name"] for c in data["categories"]], ingest_report)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        result.replace(out_dir)
        return info
    except CvatflowError as error:  # name the user's input, never the temporary folder
        rename(error, {work / "export": export, work / "converted": f"{export} (converted to COCO)", work: export})
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _image_files(source: Path) -> list[Path]:
    return [p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]


def _convert(source: Path, fmt: str, target: Path, report: DatasetReport,
             fix: bool = False) -> tuple[Path, dict[tuple[str, str], list[str]]]:
    """Other CVAT formats become COCO through datumaro, as CVAT itself does.

    COCO has no image tags, so the CVAT tags of each item come back beside it: {(subset, item id): names}.
    Shapes datumaro's COCO writer leaves out (points, polylines, cuboids, skeletons, captions) are counted in
    `report` as dropped by kind, and any other shortfall between what it read and what it wrote too.
    Shapes without a label of the dataset are refused, or with `fix` dropped and counted (see _unlabelled).
    """
    try:
        import datumaro as dm
    except ImportError:
        raise DatasetError(f"{source}: {fmt} needs datumaro; install cvatflow with the `formats` extra") from None
    _datumaro_context()
    given = source  # what messages name: the export, not the layout made for datumaro below
    if fmt == "LabelMe 3.0" and not (source / "Annotations").is_dir():
        source = _labelme_layout(source, target.parent / "labelme")
    try:
        dataset = dm.Dataset.import_from(str(source), DATUMARO_IMPORTERS[fmt])
        tags = _item_tags(dataset, dm)
        _unlabelled(dataset, dm, given, fmt, report, fix)
        expected = _count_skipped(dataset, dm, report)
        dataset.export(str(target), "coco_instances", save_media=True)
    except CvatflowError:
        raise
    except Exception as exc:  # datumaro raises many kinds; all mean the export is not readable
        raise DatasetError(f"{source}: cannot read it as {fmt} ({exc.__class__.__name__}: {str(exc)[:200]})") from None
    files = list((target / "annotations").glob("instances_*.json"))
    if not files:
        raise DatasetError(f"{source}: {fmt} export has no annotations to convert")
    written = sum(len(json.loads(f.read_text()).get("annotations") or []) for f in files)
    if written < expected:
        report.obj("shape", DROPPED, "lost by datumaro", count=expected - written)
    return target, tags


_DATUMARO_KINDS = {"points": "points", "polyline": "polyline", "cuboid_3d": "cuboid", "cuboid_2d": "cuboid",
                   "skeleton": "skeleton", "caption": "caption", "hash_key": "hash key", "depth_annotation": "depth",
                   "super_resolution_annotation": "super resolution", "feature_vector": "feature vector",
                   "tabular": "tabular"}


def _count_skipped(dataset, dm, report: DatasetReport) -> int:
    """Count the annotations coco_instances leaves out, by kind, and return how many it should write."""
    expected = 0
    for item in dataset:
        for ann in item.annotations:
            name = ann.type.name
            if name == "label":
                continue  # a CVAT tag (see _item_tags), not an object
            if name in ("bbox", "polygon", "mask", "ellipse"):
                expected += 1
            else:
                report.obj(_DATUMARO_KINDS.get(name, name), DROPPED, "not a detection shape", str(item.id))
    return expected


_SHAPES = {"bbox": "rectangle", "polygon": "polygon", "mask": "mask", "ellipse": "ellipse"}  # what COCO keeps


def _unlabelled(dataset, dm, source: Path, fmt: str, report: DatasetReport, fix: bool) -> None:
    """Shapes whose label is missing (`"label_id": null` or absent) or not one of the dataset's labels.

    datumaro reads them, but its COCO writer would give them a category that does not exist, and CVAT's importer
    refuses them. With `fix` each is removed from `dataset` and counted in `report` as dropped ("no label" or
    "unknown category"); else one DatasetError (report.unlabelled_error) names the file, item and annotation.
    """
    labels = dataset.categories().get(dm.AnnotationType.label)
    count = len(labels) if labels is not None else 0
    found: list[str] = []
    for item in list(dataset):
        kept, dropped = [], False
        for index, ann in enumerate(item.annotations):
            name = ann.type.name
            label = getattr(ann, "label", None)
            if name not in _SHAPES or (label is not None and 0 <= label < count):
                kept.append(ann)
                continue
            where = (f"annotations/{item.subset or 'default'}.json " if fmt == "Datumaro 1.0" else "") + \
                f"item {item.id!r} annotations[{index}] ({name}, id {ann.id})"
            what = ("has no label_id" if fmt == "Datumaro 1.0" else "has no label") if label is None else \
                f"has label_id {label}, not one of the {count} labels (0 to {count - 1})"
            if fix:
                report.obj(_SHAPES[name], DROPPED, "no label" if label is None else "unknown category", where)
                dropped = True
            else:
                found.append(f"{where} {what}")
        if dropped:
            dataset.put(item.wrap(annotations=kept))
    if found:
        raise unlabelled_error(source, found, "of the dataset")


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
    if not tags and not any(image.get("tags") for image in data["images"]):
        return
    for image in data["images"]:
        item_id = Path(str(image.get("file_name", ""))).with_suffix("").as_posix()
        names = tags.get((image.get("subset") or "default", item_id))
        if names:
            image["tags"] = sorted(set(image.get("tags") or []) | set(names))
    # A label used only as a tag is no class to detect: keep it out of the categories (and cvat-num-classes).
    tag_names = {name for names in tags.values() for name in names} | \
        {name for image in data["images"] for name in image.get("tags") or []}
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
    from cvatflow.datasets.xmlsafe import parse

    xmls = [p for p in source.rglob("*.xml") if p.is_file()]
    folders = set()
    for xml in xmls:
        folder = parse(xml, "LabelMe annotation file").findtext("folder") or ""  # checked by precheck: no '..'
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


def _gather_images(source: Path, data: dict, images_dir: Path, report: DatasetReport, fix: bool) -> list[Problem]:
    """Link (or copy) each referenced image to images/<subset>/<folders>/<name>, keeping its folders so equal
    names in different folders stay different images, and check it as CVAT shows it (EXIF orientation, size,
    mode, damage). A damaged image or one whose size is not the annotations' is a problem, or with `fix` dropped
    with its annotations; every image is counted in `report`."""
    from cvatflow.datasets import images as imagelib
    from cvatflow.datasets.shapes import drop

    images_dir.mkdir(parents=True, exist_ok=True)
    by_name: dict[str, list[Path]] = {}
    for path in _image_files(source):
        by_name.setdefault(path.name, []).append(path)
    problems: list[Problem] = []
    used: dict[str, int] = {}
    dropped: dict = {}
    kept = []
    for i, image in enumerate(data["images"]):
        name = str(image.get("file_name", "")).replace("\\", "/")
        subset = str(image.get("subset", "") or "")
        candidates = [source / "images" / subset / name, source / "images" / name, source / subset / "images" / name,
                      source / name] if subset else [source / "images" / name, source / name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None and len(by_name.get(Path(name).name, [])) == 1:  # only when the name cannot be wrong
            found = by_name[Path(name).name][0]
        if found is None:
            kept.append(image)
            continue  # validation reports it, naming the file
        on_subset = subset and found == source / "images" / subset / name
        relative = f"{subset}/{name}" if (on_subset or (subset and found != source / "images" / name)) else name
        if relative in used:
            raise DatasetError(f"{source}: images[{i}] ({name!r}) is the same file as images[{used[relative]}]; "
                               f"each image needs its own file_name (export the task again)")
        used[relative] = i
        outcome, reason, detail = _check_image(imagelib.probe(found), image)
        if outcome == DROPPED and not fix:
            problems.append(Problem(f"images[{i}]", f"{name!r}: {reason} ({detail})", f"{FIXES.get(reason, '')}; "
                                    f"or use --fix to drop the image and its annotations"))
        elif outcome == DROPPED:
            report.image(DROPPED, reason, f"{name} ({detail})")
            dropped[image.get("id")] = reason
            continue
        else:
            report.image(outcome, reason, name if reason else None)
        image["file_name"] = relative
        kept.append(image)
        target = images_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            # A copy, not a hard link: a link ties the dataset to the user's folder, and input folders
            # with hard links to outside are refused (datasets/safety.py).
            shutil.copy2(found, target)
    data["images"] = kept
    if dropped:
        remaining = []
        for ann in data.get("annotations") or []:
            if ann.get("image_id") in dropped:
                drop(ann, report, dropped[ann["image_id"]])
            else:
                remaining.append(ann)
        data["annotations"] = remaining
    return problems


def _check_image(probe, image: dict) -> tuple[str, str, str]:
    """(outcome, reason, detail) of one image: its probe against the width/height the annotations were drawn on."""
    from cvatflow.datasets.images import PIL_TYPES

    if probe.problem:
        return DROPPED, probe.problem, probe.detail or probe.format
    width, height = image.get("width") or 0, image.get("height") or 0
    reason = ""
    if not (width and height):
        image["width"], image["height"] = probe.width, probe.height
        reason = "size read from the file (the export gave none)"
    elif (width, height) == (probe.width, probe.height):
        if probe.orientation != 1:
            reason = "EXIF orientation applied, as CVAT shows it"
    elif (width, height) == (probe.stored_width, probe.stored_height):
        image["exif"] = False  # the annotations were drawn on the stored pixels
        reason = "EXIF orientation not applied: the annotations match the stored pixels"
    else:
        return DROPPED, "size mismatch", f"file {probe.width}x{probe.height}, annotations {width}x{height}"
    if not reason and (probe.mode not in ("RGB", "L") or probe.format in PIL_TYPES):
        reason = f"{probe.format} {probe.mode} to 8-bit RGB"
    return ("converted" if reason else "kept"), reason, ""
