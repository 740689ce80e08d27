"""`make demo`: a synthetic CVAT export, dumped to the local store, trained by the local executor on the CPU."""
from __future__ import annotations

import json
import sys
import time

from rich.console import Console

from cvatflow.argo import Phase
from cvatflow.config import load_settings
from cvatflow.errors import CvatflowError

TEMPLATE = "maskrcnn-training"
IMAGES = 100
# The small Mask R-CNN learns the shapes from scratch in a few minutes on a 2-core CPU; everything not
# set here takes that variant's defaults (AdamW, lr 2e-3, 256 px, cosine schedule).
PARAMETERS = {
    "cvat-model": "maskrcnn_resnet18_fpn",
    "epochs": "8",
    "batch-size": "4",
    "val-split": "20",
    # deterministic: the same mAP on every run on this machine (README: "Repeatable runs")
    "hyperparameters": "val_every: 2\ndeterministic: true\n",
}


def main() -> int:
    from cvatflow.datasets.synth import make_export
    from cvatflow.runs.client import Client
    from cvatflow.runs.summary import closing_lines, final_metrics
    from cvatflow.runs.watch import watch

    console = Console()
    settings = load_settings()
    console.rule("cvatflow demo: CVAT export -> local store -> maskrcnn-training on this machine")
    console.print(f"home: {settings.home}  store: {settings.store}")

    export = settings.home / "demo" / "shapes-coco-1.0.zip"
    export.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    make_export(export, images=IMAGES, seed=0)
    console.print(f"1. synthetic CVAT export (COCO 1.0, {IMAGES} images of circles, squares, triangles): {export}")

    client = Client("local", settings=settings)
    filled = client.prepare(TEMPLATE, dataset=export, parameters=PARAMETERS)
    console.print(f"2. dumped to the store: cvat-annotation-path = {filled.values['cvat-annotation-path']} "
                  f"({filled.values['cvat-num-classes']} classes)")
    console.print(f"   dataset report: {_dataset_summary(client, filled.values['cvat-annotation-path'])}")
    run = client.submit(filled, name=f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    console.print(f"3. running template {TEMPLATE} as run [bold]{run.name}[/bold] with the local executor")
    status = watch(run, console)
    minutes = (time.monotonic() - started) / 60
    if status.phase != Phase.SUCCEEDED:
        console.print(f"[red]the run ended {status.phase}: {status.message}[/red]")
        console.print(f"logs: {run.dir / 'logs'}")
        return 1

    console.rule("done")
    for line in closing_lines(run, status, final_metrics(run, client), elapsed=minutes):
        console.print(line, highlight=False, soft_wrap=True)
    model = run.outputs().get("model")
    if model:
        console.print(f"in CVAT:  {cvat_cli_command(model.removeprefix('file://'))}", highlight=False, soft_wrap=True)
    return 0


def cvat_cli_command(model: str, task: str = "TASK_ID") -> str:
    """The one line that annotates a CVAT task with this model from this machine (cvat-cli, README)."""
    import shlex

    return (f"cvat-cli --server-host $CVAT_URL task auto-annotate {task} --function-module cvatflow.cvat_function "
            f"-p {shlex.quote('model=str:' + str(model))}")


def _dataset_summary(client, annotation_path: str) -> str:
    """The one-line summary of the dataset_report.json that travels with the uploaded dataset."""
    from cvatflow.datasets.report import REPORT_FILE, DatasetReport

    try:
        data = json.loads(client.store.get_bytes(annotation_path.rstrip("/") + "/" + REPORT_FILE))
    except CvatflowError:
        return "none (the dataset has no dataset_report.json)"
    return DatasetReport.from_dict(data).summary()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CvatflowError as error:
        Console(stderr=True).print(f"[red]error:[/red] {error}")
        sys.exit(1)
