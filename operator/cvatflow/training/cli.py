"""The `cvatflow-train` command: `cvatflow-train detr|maskrcnn train|predict`, run inside a training image."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from cvatflow.errors import CvatflowError
from cvatflow.models import ADAPTERS
from cvatflow.numbers import whole_number

app = typer.Typer(name="cvatflow-train", help="Train and apply detection models on COCO data (CVAT exports).",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _commands(name: str) -> typer.Typer:
    group = typer.Typer(help=f"{name}: train a model, or predict with one.", no_args_is_help=True)

    @group.command("train")
    def train(
        data: Path = typer.Option(..., help="Dataset folder: annotations/instances_default.json + images/."),
        output: Path = typer.Option(..., help="Output folder: model/, checkpoints/, report/, export/, ..."),
        models: Path | None = typer.Option(None, help="Fine-tune checkpoint: a run's output, a model "
                                                         "state folder or .tar."),
        hyperparameters: str | None = typer.Option(None, help="YAML text or a YAML file."),
        num_classes: int | None = typer.Option(None, help="Expected number of classes (checked against "
                                                             "the data)."),
        model: str | None = typer.Option(None, help="Model variant (see `cvatflow-train NAME variants`)."),
        epochs: int | None = typer.Option(None, help="Overrides `epochs` of the hyperparameters."),
        batch_size: int | None = typer.Option(None, help="Overrides `batch_size` of the hyperparameters."),
        pretrained: bool = typer.Option(True, help="Start from hub weights when no --models is given."),
        device: str | None = typer.Option(None, help="cuda, cuda:1 or cpu (default: cuda if present)."),
        export: bool = typer.Option(True, help="Export the best model to export/best.onnx."),
        min_objects: int = typer.Option(1, min=1, help="Refuse a dataset with fewer usable objects (the "
                                                       "dataset report counts them)."),
        nproc_per_node: str | None = typer.Option(None, "--nproc-per-node", help="Train in N processes on this "
                                                  "machine (one per GPU), through torchrun; auto: one per GPU."),
    ) -> None:
        """Train on --data, write everything into --output; resumes from --output/checkpoints/last.pt."""
        if nproc_per_node is not None:
            code = _self_launch(nproc_per_node)
            if code is not None:
                raise typer.Exit(code)
        from cvatflow.training.loop import Run
        from cvatflow.training.loop import train as run_training

        run_training(Run(model=name, data=data, output=output, models=models, hyperparameters=hyperparameters,
                         overrides={"epochs": epochs, "batch_size": batch_size}, variant=model,
                         num_classes=num_classes, pretrained=pretrained, device=device, export=export,
                         min_objects=min_objects))

    @group.command("predict")
    def predict(
        model: Path = typer.Option(..., help="Model state: a run's output, a model folder or a .tar."),
        data: Path = typer.Option(..., help="Images: a COCO dataset folder or a folder of images."),
        output: Path = typer.Option(..., help="Writes predictions.json and annotations/instances_default.json."),
        threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="Minimum score of a kept object."),
        batch_size: int = typer.Option(4, min=1),
        device: str | None = typer.Option(None),
    ) -> None:
        """Predict every image of --data; the annotation file imports into CVAT (COCO 1.0)."""
        from cvatflow.training.predict import predict as run_predict

        run_predict(name, model, data, output, threshold, batch_size, device)

    @group.command("variants")
    def variants() -> None:
        """List the model variants (the first is the default)."""
        from cvatflow.models import get_adapter

        adapter = get_adapter(name)
        for variant in [adapter.default_variant] + [v for v in adapter.VARIANTS if v != adapter.default_variant]:
            note = " (small, trains on a CPU)" if variant == adapter.small_variant else ""
            typer.echo(variant + note)

    return group


_ARGV: list[str] = []  # this command line (after the program name), for --nproc-per-node's relaunch


def _self_launch(value: str) -> int | None:
    """`--nproc-per-node N|auto`: run this same command in N processes under torchrun and return its exit
    status; None when one process does (N = 1, or already under torchrun)."""
    from cvatflow.training import distributed

    if distributed.launched().distributed:
        print("note: --nproc-per-node is ignored under torchrun (it set the processes)", flush=True)
        return None
    if value == "auto":
        count = distributed.nproc_auto()
    elif (whole_number(value, 4) or 0) >= 1:
        count = int(value)
    else:
        raise CvatflowError(f"--nproc-per-node {value}: give a number of processes (1 or more) or auto")
    if count == 1:
        return None
    args = distributed.strip_option(_ARGV, "--nproc-per-node")
    return distributed.relaunch(count, "cvatflow.training.cli", args)


for _name in ADAPTERS:
    app.add_typer(_commands(_name), name=_name)


@app.command("torchrun", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                           "help_option_names": []})
def torchrun(ctx: typer.Context) -> None:
    """torchrun's arguments (torch.distributed.run); exits with the first failed worker's status, 128 + signal
    when it was killed (137 SIGKILL/OOM, 143 SIGTERM), where torchrun itself exits 1."""
    from cvatflow.training.launch import main as launch

    raise typer.Exit(launch(list(ctx.args)))


def main(argv: list[str] | None = None) -> None:
    """Entry point of `cvatflow-train`: errors become one line on stderr and exit status 1."""
    _ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv, prog_name="cvatflow-train", standalone_mode=True)
    except CvatflowError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
