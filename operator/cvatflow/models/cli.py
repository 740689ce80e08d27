"""`cvatflow model pack|inspect|import|export-serverless`: model states as folders, .tar files and nuclio functions."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import typer

from cvatflow.atomic import atomic_path
from cvatflow.errors import TrainingError

app = typer.Typer(help="Model states: pack a folder into a .tar, inspect one, import weights trained elsewhere.",
                  no_args_is_help=True)


def _state_folder(path: Path) -> Path:
    from cvatflow.training.state import find_model_dir

    if not path.exists():
        raise TrainingError(f"{path}: does not exist (pass a model state folder, a run's output or a .tar)")
    return find_model_dir(path)


def verify(folder: Path) -> dict[str, Any]:
    """Check that the weights load into the model config.json describes; a summary of the model state."""
    from cvatflow.training.state import ModelState, load_weights

    state = ModelState.read(folder, what="model")
    state.build("cpu")  # raises TrainingError when the weights do not fit
    weights = load_weights(state.weights)
    params = sum(int(v.numel()) for v in weights.values() if hasattr(v, "numel"))
    return {"model": state.family, "variant": state.variant, "classes": list(state.classes), "tensors": len(weights),
            "parameters": params, "image_size": state.config["settings"].get("image_size"),
            "weights_bytes": state.weights.stat().st_size}


@app.command("pack")
def pack(folder: Path = typer.Argument(..., help="Model state folder (or a run's output folder)."),
         output: Path = typer.Option(..., "-o", "--output", help="The .tar to write (uncompressed)."),
         check: bool = typer.Option(True, help="Load the weights into the model before packing.")) -> None:
    """Pack a model state into an uncompressed .tar with config.json and the weights at the top level."""
    source = _state_folder(folder)
    if check:
        verify(source)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp, tarfile.open(tmp, "w") as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            archive.add(path, arcname=str(path.relative_to(source)))
    typer.echo(f"{output} ({output.stat().st_size} bytes)")


@app.command("inspect")
def inspect(path: Path = typer.Argument(..., help="Model state folder, a run's output, or a .tar."),
            as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show a model state's variant and classes, after checking its weights against config.json."""
    summary = verify(_state_folder(path))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"model     {summary['model']} / {summary['variant']} (image size {summary['image_size']})")
    typer.echo(f"classes   {', '.join(summary['classes'])}")
    typer.echo(f"weights   {summary['tensors']} tensors, {summary['parameters']:,} values, "
               f"{summary['weights_bytes']:,} bytes: ok")


def _read_classes(spec: str) -> list[str]:
    path = Path(spec)
    if path.is_file():
        try:
            coco = json.loads(path.read_text())
            return [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
        except (ValueError, KeyError, TypeError):
            raise TrainingError(f"--classes {spec}: not a COCO file with `categories` (or pass a comma-separated "
                                f"list of class titles)") from None
    titles = [t.strip() for t in spec.split(",") if t.strip()]
    if not titles:
        raise TrainingError("--classes: no class titles given (e.g. --classes cat,dog)")
    return titles


def _read_weights(path: Path) -> dict[str, Any]:
    """A state dict from .pt/.pth (bare or a training checkpoint, DDP prefixes removed) or .safetensors."""
    if not path.is_file():
        raise TrainingError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        weights = load_file(str(path))
    else:
        import torch

        try:
            weights = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise TrainingError(f"{path}: not a PyTorch weights file ({str(exc).splitlines()[0]})") from None
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(weights, dict) and isinstance(weights.get(key), dict):
                weights = weights[key]
                break
    if not isinstance(weights, dict) or not weights:
        raise TrainingError(f"{path}: holds no state dict (save `model.state_dict()`)")
    return {k.removeprefix("module."): v for k, v in weights.items()}


@app.command("import")
def import_(weights: Path = typer.Argument(..., help="Weights trained elsewhere (.pt, .pth, .safetensors)."),
            model: str = typer.Option(..., help="Model family: detr, rtdetr or maskrcnn."),
            variant: str = typer.Option(..., help="Variant the weights belong to, e.g. maskrcnn_resnet50_fpn."),
            classes: str = typer.Option(..., help="Class titles in model order (no background), comma-separated, "
                                                  "or a COCO json whose categories to use."),
            output: Path = typer.Option(..., "-o", "--output", help="Model state folder to write."),
            image_size: int = typer.Option(800, help="Longest image side the model was trained with."),
            detr_config: Path | None = typer.Option(None, help="HF config.json of a DETR (or, with "
                                                                  "--model rtdetr, an RT-DETRv2/D-FINE) trained "
                                                                  "with transformers (architecture)."),
            ) -> None:
    """Make a model state (config.json + model.pt) from weights trained elsewhere, checking that they fit."""
    import tempfile

    from cvatflow.models import get_adapter
    from cvatflow.training.state import model_config, write_model_state

    adapter = get_adapter(model)
    adapter.check_variant(variant)
    titles = _read_classes(classes)
    settings = adapter.settings(variant, image_size)
    if detr_config is not None:
        hf = json.loads(detr_config.read_text())
        key = "detr_config" if model == "detr" else "hf_config"  # rtdetr: an RT-DETRv2 or D-FINE config.json
        settings[key] = {k: v for k, v in hf.items() if k not in ("id2label", "label2id")}
    elif adapter.framework == "transformers":
        adapter.build(settings, len(titles), pretrained=False)  # records the variant's architecture in settings
    state = _read_weights(weights)
    config = model_config(settings, titles, "bitmap" if adapter.masks else "rectangle")
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / "model"
        write_model_state(candidate, config, state)
        verify(candidate)  # refuse weights that do not fit before writing the output
    write_model_state(output, config, state)
    typer.echo(f"{output}: {variant} with classes {', '.join(titles)}")


@app.command("export-serverless")
def export_serverless(model: Path = typer.Argument(..., help="Model state folder, a run's output, or a .tar."),
                      output: Path = typer.Option(..., "-o", "--output", help="Folder to write the function to."),
                      name: str = typer.Option("", help="nuclio function name (default cvatflow-<model>-<variant>)."),
                      base_image: str = typer.Option("", help="Image to build on (default: the official PyTorch "
                                                              "runtime image)."),
                      ) -> None:
    """Write a nuclio function (function.yaml, function-gpu.yaml, handler, model) that self-hosted CVAT lists under
    AI Tools -> Detectors; deploy it with nuctl (the command is printed)."""
    from cvatflow.serverless import BASE_IMAGE, export

    folder = export(_state_folder(model), output, name or None, base_image or BASE_IMAGE)
    typer.echo(f"{folder}: nuclio function for CVAT; deploy it with\n"
               f"  nuctl deploy --project-name cvat --path {folder} --file {folder}/function-gpu.yaml "
               f"--platform local")
