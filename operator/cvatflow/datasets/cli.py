"""`cvatflow dataset`: make a synthetic export, inspect, prepare and upload exports, dump a CVAT task."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Datasets: synth, inspect, prepare, upload, dump.", no_args_is_help=True)
console = Console()


def _progress(description: str):
    """A rich progress bar on a terminal, else progress events on stderr (stdout keeps the printed result);
    returns (context, callback)."""
    from contextlib import nullcontext

    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    if not console.is_terminal:
        return nullcontext(), _event_progress(description)
    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   console=console, transient=True)
    task = bar.add_task(description, total=None)
    return bar, lambda done, total: bar.update(task, completed=done, total=total)


def _event_progress(subtask: str, every: float = 1.0):
    """progress(done, total) that emits an EventType.PROGRESS line at most every `every` seconds, and at the end."""
    import sys
    import threading
    import time

    from cvatflow import events

    state = {"last": 0.0}
    lock = threading.Lock()

    def callback(done: int, total: int) -> None:
        now = time.monotonic()
        with lock:  # transfers report from worker threads
            if done < total and now - state["last"] < every:
                return
            state["last"] = now
            events.emit(events.progress(subtask, done, total), sys.stderr)

    return callback


@app.command()
def synth(out: Path = typer.Option(..., "--out", help="Zip file to write (a CVAT COCO 1.0 export)."),
          images: int = typer.Option(60, "--images", help="Number of images."),
          seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
          size: int = typer.Option(256, "--size", help="Image side in pixels.")) -> None:
    """Write a synthetic CVAT export: circles, squares and triangles with boxes and masks."""
    from cvatflow.datasets.synth import make_export

    path = make_export(out, images=images, seed=seed, size=size)
    console.print(f"wrote {path} ({images} images, seed {seed})")


CROWD_HELP = ("iscrowd:1 records: 'object' (default; CVAT writes brush masks that way) or 'ignore' (COCO's "
              "convention: crowd regions are no positives, and evaluation ignores detections on them).")


def _show(report, as_json: bool, extra: dict | None = None) -> None:
    """The dataset report: JSON on stdout with --json, else a rich table, the warnings and the one-line summary."""
    if as_json:
        typer.echo(json.dumps({**(extra or {}), "report": report.to_dict() if report else None}, indent=2))
        return
    if report is None:
        return
    console.print(report.table())
    for line in report.warnings():
        console.print(f"[yellow]warning:[/yellow] {line}", highlight=False)
    console.print(f"dataset report: {report.summary()}", highlight=False)


@app.command()
def inspect(export: Path = typer.Argument(..., help="A CVAT export (zip or folder) or a prepared dataset."),
            as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
            crowd: str = typer.Option("object", "--crowd", help=CROWD_HELP)) -> None:
    """Detect an export's format and report its images, objects (kept, converted, ignored, dropped), classes and
    problems."""
    import tempfile

    from cvatflow.datasets.ingest import ingest

    with tempfile.TemporaryDirectory() as tmp:
        info = ingest(export, Path(tmp) / "dataset", crowd=crowd)
        coco_path = Path(tmp) / "dataset" / "annotations" / "instances_default.json"
        coco = json.loads(coco_path.read_text()) if info.coco and coco_path.is_file() else None
    split_path = export / "train_val_split.json"
    split = json.loads(split_path.read_text()) if export.is_dir() and split_path.is_file() else None
    report = info.report
    problems = [str(p) for p in (report.problems if report else [])]
    if as_json:
        from cvatflow.datasets.stats import fit_summary

        _show(info.ingest, True, {"format": info.format, "images": report.images if report else None,
                                  "annotations": report.annotations if report else None,
                                  "categories": report.per_category if report else {}, "problems": problems,
                                  **({"fit": fit_summary(coco, split)} if coco else {})})
    else:
        console.print(f"{export}: {info.format}")
        if report:
            console.print(f"{report.images} images, {report.annotations} annotations, {len(info.categories)} classes")
            table = Table("class", "annotations")
            for name in info.categories:
                table.add_row(name, str(report.per_category.get(name, 0)))
            console.print(table)
            if coco:
                _print_fit(coco, split)
        _show(info.ingest, False)
        for problem in problems:
            console.print(f"[yellow]problem:[/yellow] {problem}", highlight=False)
    if problems or (info.ingest is not None and info.ingest.usable == 0):
        raise typer.Exit(1)


@app.command()
def prepare(export: Path = typer.Argument(..., help="A CVAT export (zip or folder) or a normalised dataset."),
            out: Path = typer.Option(..., "--out", help="Folder to write the training dataset into."),
            val_split: float = typer.Option(10.0, "--val-split", help="Validation percentage (random, seeded)."),
            split_by: str | None = typer.Option(None, "--split-by", help="tags or subsets instead of random."),
            seed: int = typer.Option(0, "--seed"),
            fix: bool = typer.Option(False, "--fix", help="Clip boxes to their image, drop empty or broken ones."),
            image_prefix: str | None = typer.Option(None, "--image-prefix",
                                                       help="Rewrite file_name to PREFIX/<file> (a pod's mount)."),
            crowd: str = typer.Option("object", "--crowd", help=CROWD_HELP),
            min_objects: int = typer.Option(1, "--min-objects", min=1,
                                            help="Refuse the dataset with fewer usable objects than this."),
            as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Normalise, validate and split an export into a training dataset (with dataset_report.json)."""
    from cvatflow.datasets.prepare import prepare as run_prepare

    info = run_prepare(export, out, val_split=val_split, split_by=split_by, seed=seed, fix=fix,
                       image_prefix=image_prefix, crowd=crowd, min_objects=min_objects)
    split = json.loads((out / "train_val_split.json").read_text())
    line = (f"{out}: {info.report.images} images ({len(split['train'])} train, {len(split['val'])} val), "
            f"{info.report.annotations} annotations, {len(info.categories)} classes"
            + (f", {info.report.fixed} records fixed" if info.report.fixed else ""))
    if not as_json:
        console.print(line)
        _print_fit(json.loads((out / "annotations" / "instances_default.json").read_text()), split)
    _show(info.ingest, as_json, {"dataset": str(out), "train": len(split["train"]), "val": len(split["val"])})


def _print_fit(coco: dict, split: dict | None = None) -> None:
    """Per-class counts (per split when there is one), objects per image, and small objects per model."""
    from cvatflow.datasets.stats import fit_summary

    summary = fit_summary(coco, split)
    if split:
        table = Table("class", "train objects / images", "val objects / images")
        for name, counts in summary["classes"].items():
            table.add_row(name, *[f"{counts[g]['objects']} / {counts[g]['images']}" for g in ("train", "val")])
        console.print(table)
    density = summary["objects_per_image"]
    console.print(f"objects per image: max {density['max']}, p99 {density['p99']:g}, mean {density['mean']:g} "
                  f"(detections per image and maxDets: {summary['capacity']})")
    for name in summary.get("untrained_classes", []):
        console.print(f"[yellow]warning:[/yellow] class {name} has no training instance; training refuses it "
                      f"unless the hyperparameter allow_untrained_classes is true", highlight=False)
    if summary["small_objects"]:
        console.print("objects smaller than the model's minimum after resizing: " + "; ".join(
            f"{row['model']} at {row['image_size']} px (< {row['min_size']:g} px): {row['small']} of {row['objects']}"
            for row in summary["small_objects"]), highlight=False)
    for row in summary["small_objects"]:
        if row["message"]:
            console.print(f"[yellow]warning:[/yellow] {row['message']}", highlight=False)


@app.command()
def upload(export: Path = typer.Argument(..., help="A CVAT export (zip or folder)."),
           to: str = typer.Option(None, "--to", help="Store URI (default: the configured store)."),
           task: str = typer.Option("local", "--task", help="Task id used in the annotation path."),
           crowd: str = typer.Option("object", "--crowd", help=CROWD_HELP),
           as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Upload an export as a normalised dataset (with dataset_report.json); prints the cvat-annotation-path."""
    from cvatflow.config import load_settings
    from cvatflow.datasets.upload import upload_dataset

    settings = load_settings()
    bar, callback = _progress("uploading")
    with bar:
        prefix, info = upload_dataset(export, to or settings.store, task_id=task,
                                      repository=settings.artifact_repository, progress=callback, crowd=crowd)
    if as_json:
        _show(info.ingest, True, {"annotation_path": prefix})
        return
    _show(info.ingest, False)
    console.print(f"uploaded to {(to or settings.store).rstrip('/')}/{prefix}")
    typer.echo(prefix)


@app.command()
def dump(cvat_url: str = typer.Option(None, "--cvat-url", envvar="CVAT_URL", help="CVAT server URL."),
         cvat_task: int = typer.Option(..., "--cvat-task", help="Task id."),
         format_tag: str = typer.Option("cvat_coco", "--format", help="dump-format tag, e.g. cvat_coco."),
         to: str = typer.Option(None, "--to", help="Store URI (default: the configured store).")) -> None:
    """Export a CVAT task with images (token from CVAT_ACCESS_TOKEN) and upload it; prints the annotation path."""
    from cvatflow.config import load_settings
    from cvatflow.cvat import dump_task
    from cvatflow.errors import CvatError

    settings = load_settings()
    if not cvat_url:
        raise CvatError("no CVAT server: pass --cvat-url or set CVAT_URL")
    bar, callback = _progress("dumping")
    with bar:
        prefix, labels = dump_task(cvat_url, cvat_task, format_tag, to or settings.store,
                                   token=settings.cvat_token or None, repository=settings.artifact_repository,
                                   progress=callback)
    console.print(f"task {cvat_task}: {len(labels)} labels, uploaded to {(to or settings.store).rstrip('/')}/{prefix}")
    typer.echo(prefix)


@app.command()
def transform(export: Path = typer.Argument(..., help="A CVAT export (zip or folder) or a prepared dataset."),
              out: Path = typer.Option(..., "--out", help="Folder to write (COCO layout, dataset_report.json)."),
              pipeline: Path = typer.Option(None, "--pipeline",
                                            help="YAML list of layers (default: the Smart Tool pipeline)."),
              as_json: bool = typer.Option(False, "--json", help="Print the layer counts as JSON.")) -> None:
    """Run a transform pipeline (class mapping, filters, crops, flips, resize, click points) over an export."""
    from cvatflow.datasets import transform as tf

    layers = tf.load_pipeline(pipeline) if pipeline else None
    result = tf.transform(export, out, layers)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    for line in tf.summary(result["layers"]):
        console.print(line, highlight=False)
    console.print(f"wrote {out}: {result['samples']} samples, {result['objects']} objects", highlight=False)
