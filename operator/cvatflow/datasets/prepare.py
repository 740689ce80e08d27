"""Prepare a dataset for training: normalise, validate, split train/val, and point file names at the mount."""
from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path

from cvatflow.atomic import check_replaceable
from cvatflow.datasets.coco import COCO_FILE, read_json, validate
from cvatflow.datasets.ingest import DatasetInfo, ingest
from cvatflow.datasets.report import REPORT_FILE, DatasetReport, require_usable
from cvatflow.datasets.report import read as read_report
from cvatflow.datasets.safety import check_tree
from cvatflow.datasets.shown import rename
from cvatflow.datasets.stratify import split_stats, stratified, val_count
from cvatflow.errors import CvatflowError, DatasetError, ProblemsError

SPLIT_FILE = "train_val_split.json"
SPLIT_METHODS = ("random", "tags", "subsets")
VAL_NAMES = {"val", "validation", "valid", "test"}


def split(images: list[dict], method: str = "random", val_percent: float = 10.0, seed: int = 0,
          annotations: list[dict] | None = None) -> dict:
    """Image ids for train and val: seeded random percentage, CVAT tags (`val`), or CVAT subsets (Validation).

    With `annotations`, the random split is stratified by class (datasets/stratify.py): a class on one image is in
    train, a class on two or more images is in both."""
    if method not in SPLIT_METHODS:
        raise DatasetError(f"split {method!r} is unknown; use one of: {', '.join(SPLIT_METHODS)}")
    ids = [image["id"] for image in images]
    if method == "random":
        if not 0 <= val_percent < 100:
            raise DatasetError(f"val split {val_percent}: give a percentage from 0 to 99")
        if annotations is not None:
            val = set(stratified({"images": images, "annotations": annotations}, val_percent, seed)[1])
        else:
            shuffled = ids[:]
            random.Random(seed).shuffle(shuffled)
            val = set(shuffled[:val_count(len(ids), val_percent)])
    elif method == "subsets":
        val = {i["id"] for i in images if str(i.get("subset", "")).lower() in VAL_NAMES}
    else:
        val = {i["id"] for i in images if VAL_NAMES & {str(t).lower() for t in i.get("tags") or []}}
    if method != "random" and not val:
        raise DatasetError(f"split by {method}: no image is marked for validation; tag or put some images in a "
                           f"Validation subset in CVAT, or use --val-split PCT")
    return {"train": [i for i in ids if i not in val], "val": [i for i in ids if i in val], "method": method,
            "seed": seed, "val_percent": val_percent if method == "random" else round(100 * len(val) / len(ids), 2),
            **({"stratified": "rarest class first"} if method == "random" and annotations is not None else {})}


def is_prepared(source: Path) -> bool:
    """A folder cvatflow wrote (ingest or prepare: it has dataset_report.json or a split), not a raw export:
    an unpacked CVAT COCO export has the same annotations/ and images/ but goes through ingest like its zip."""
    return source.is_dir() and (source / COCO_FILE).is_file() and (source / "images").is_dir() and \
        ((source / REPORT_FILE).is_file() or (source / SPLIT_FILE).is_file())


def _check_out(out_dir: Path) -> None:
    """`out_dir` is replaced whole: absent, empty, or a dataset cvatflow prepared before (DatasetError otherwise)."""
    check_replaceable(out_dir, is_prepared, f"--out {out_dir}", DatasetError)


def prepare(source: str | Path, out_dir: str | Path, val_split: float = 10.0, split_by: str | None = None,
            seed: int = 0, fix: bool = False, image_prefix: str | None = None, crowd: str = "object",
            min_objects: int = 1) -> DatasetInfo:
    """Write a training-ready dataset into `out_dir` (COCO file, images/, train_val_split.json).

    `source` is a CVAT export (zip or folder, any supported format) or an already normalised tree.
    Problems that block training raise one ProblemsError listing them all; `fix` clips boxes and
    drops empty ones and records it cannot use. `crowd` is ingest's crowd rule ("object" or "ignore"). Fewer
    than `min_objects` usable objects (at least 1) raise DatasetError with the report, before anything is written.
    `info.ingest` is the dataset report, also written as dataset_report.json. train_val_split.json carries
    per-class counts per split (`classes`) and the classes with no training instance (`untrained_classes`), which
    training refuses unless the hyperparameter allow_untrained_classes accepts them (the CLI warns here already).
    """
    source, out_dir = Path(source), Path(out_dir)
    _check_out(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".prepare-", dir=out_dir.parent))
    try:
        staged = work / "dataset"
        if is_prepared(source):
            check_tree(source)  # links and special files refused, as in archives
            shutil.copytree(source, staged)  # copies: hard links would tie the dataset to the input folder
            data = read_json(staged / COCO_FILE)
            ingest_report = read_report(staged)
            if ingest_report is not None:
                report = validate(data, staged / "images", fix=fix)
            else:  # prepared by an older cvatflow: count it now
                from cvatflow.datasets.shapes import normalise, tally

                ingest_report = DatasetReport(source=source.name, format="COCO 1.0", options={"crowd": crowd})
                normalise(data, ingest_report, crowd)
                report = validate(data, staged / "images", fix=fix, ingest=ingest_report)
                for image in data["images"]:
                    ingest_report.image("kept", example=None)
                tally(data, ingest_report)
                ingest_report.write(staged)
            info = DatasetInfo(out_dir, "COCO 1.0", report, [c["name"] for c in data.get("categories", [])],
                               ingest_report)
        else:
            info = ingest(source, staged, fix=fix, crowd=crowd)
            if not info.coco:
                raise DatasetError(f"{source}: {info.format} cannot be prepared for the COCO training images; "
                                   f"use dump-format cvat_coco (or another annotation format)")
            data = read_json(staged / COCO_FILE)
        errors = [p for p in info.report.problems if p.severity == "error"]
        if errors:
            raise ProblemsError(str(source), errors)
        if not data["images"]:
            raise DatasetError(f"{source}: the dataset has no images; annotate the task in CVAT first")
        require_usable(info.ingest, str(source), min_objects)
        division = split(data["images"], split_by or "random", val_split, seed, data["annotations"])
        division.update(split_stats(data, division, True, str(source)))
        if image_prefix:
            # What Onepanel's DETR prepare_data.py did: absolute paths under the pod's mount.
            for image in data["images"]:
                image["file_name"] = f"{image_prefix.rstrip('/')}/{image['file_name']}"
        (staged / COCO_FILE).write_text(json.dumps(data))
        (staged / SPLIT_FILE).write_text(json.dumps(division, indent=1))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staged.replace(out_dir)
        info.path = out_dir
        return info
    except CvatflowError as error:  # name the user's input, never the temporary folder
        rename(error, {staged: source, work: source})
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)

