"""`cvatflow annotate RUN --cvat-task N` (submits annotate-task) and `cvatflow annotate-task` (the step itself)."""
from __future__ import annotations

import typer

from cvatflow.errors import CvatflowError

TRUE = ("true", "1", "yes")


def annotate(run: str = typer.Argument(..., help="A Succeeded run whose model to apply."),
             cvat_task: int = typer.Option(..., "--cvat-task", min=1, help="The CVAT task to annotate."),
             threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="Lowest score uploaded."),
             clear_existing: bool = typer.Option(False, "--clear-existing",
                                                 help="Replace the task's annotations instead of adding to them."),
             shape: str = typer.Option("auto", help="auto, mask, polygon or rectangle (Mask R-CNN's output as)."),
             node_pool: str | None = typer.Option(None, help="Node pool to run on (default: the template's)."),
             wait: bool = typer.Option(False, "--wait", help="Wait for the annotation to end.")) -> None:
    """Annotate a CVAT task with a run's model, as a Workflow of the annotate-task template (GPU node pool)."""
    from cvatflow.auto_annotate import Request, submit
    from cvatflow.runs.client import Client

    started = submit(Client(), Request(run, cvat_task, threshold, clear_existing, shape, node_pool), wait=wait)
    typer.echo(f"{started.name}: annotating CVAT task {cvat_task} with the model of {run}")
    if wait:
        phase = started.status().phase
        typer.echo(f"{started.name}: {phase}")
        if phase != "Succeeded":
            raise typer.Exit(1)


def annotate_task(model: str = typer.Option(..., help="Model state: folder, run output, .tar or store URI."),
                  cvat_task: int = typer.Option(..., "--cvat-task", min=1, help="The CVAT task to annotate."),
                  threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="Lowest score uploaded."),
                  clear_existing: str = typer.Option("false", help="true: replace the task's annotations."),
                  shape: str = typer.Option("auto", help="auto, mask, polygon or rectangle."),
                  cvat_url: str = typer.Option("", help="CVAT server (default: the cvatUrl setting, $CVAT_URL)."),
                  device: str = typer.Option("", help="torch device (default: CUDA when there is one).")) -> None:
    """Run a model over a CVAT task's frames and upload the shapes (the annotate-task template's step). The token
    comes from $CVAT_ACCESS_TOKEN."""
    from cvatflow.auto_annotate import annotate as run_annotation

    if clear_existing.lower() not in (*TRUE, "false", "0", "no"):
        raise CvatflowError(f"--clear-existing {clear_existing!r}: true or false")
    from cvatflow.config import load_settings

    run_annotation(model, cvat_url or load_settings().cvat_url, cvat_task, threshold,
                   clear_existing.lower() in TRUE, shape, device=device or None)


def register(app: typer.Typer) -> None:
    app.command("annotate")(annotate)
    app.command("annotate-task")(annotate_task)
