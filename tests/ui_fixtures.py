"""What the web UI tests drive: Debian's chromium through Playwright, and a template whose one step is a fake
training that prints real cvatflow events (metrics, progress, a checkpoint) in a second or two."""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium keeps calling home, which floods a closed network.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path("/tmp/cvatflow-ui-shots")
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 400, "height": 800}

UI_TEMPLATE = "ui-training"
TRAINER = "cvatflow_ui_trainer"  # the local executor runs `python -m cvatflow*` modules, so the name starts so
EPOCHS = 4


def launch_chromium(playwright):
    """Debian's chromium (`apt-get install chromium`); Playwright's own browser downloads are not used."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the UI tests drive Debian's chromium package; install it with "
                    f"`apt-get install -y chromium` (make test does), or deselect them with -m 'not ui'",
                    pytrace=False)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def screenshot(page, out: Path, name: str) -> Path:
    """Save a full-page screenshot under the test's output and copy it where people look for them."""
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path


def fake_training(argv: list[str] | None = None) -> None:
    """A training step in miniature: per epoch a progress event, train losses and a validation mAP that
    improve, then a checkpoint and a model folder in the output; sleeps a little so a watcher sees it live."""
    from cvatflow import events

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    print(f"fake training for {args.epochs} epochs", flush=True)
    for epoch in range(1, args.epochs + 1):
        time.sleep(0.25)
        events.emit(events.progress("train", epoch * 10, args.epochs * 10))
        events.emit(events.metrics("train", epoch, {"loss": 2.0 / epoch, "loss_mask": 1.0 / epoch}))
        events.emit(events.metrics("val", epoch, {"mAP": 0.2 + 0.15 * epoch, "loss": 2.2 / epoch}))
    model = args.output / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps({"settings": {}, "out_classes": [], "class_title_to_idx": {}}))
    events.emit(events.checkpoint(args.epochs, "checkpoints/best", 64, True))
    write_report(args.output / "report")
    print("done", flush=True)


# The smallest valid PNG (1x1, grey): the report's plots, as far as the page is concerned.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000"
                    "3a7e9b550000000a49444154789c63680000008200811a8f8f0a0000000049454e44ae426082")


def write_report(folder: Path) -> None:
    """report/ as cvatflow.training.report writes it: metrics.json with per-class AP, and a PR-curve plot."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(
        {"mAP": 0.8, "per_class": {"square": {"AP": 0.9}, "triangle": {"AP": 0.7}}, "history": []}))
    (folder / "pr_curve.png").write_bytes(PNG)


def install_trainer(folder: Path) -> Path:
    """Write the `python -m cvatflow_ui_trainer` module into `folder` (put it on PYTHONPATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    tests = Path(__file__).resolve().parent
    (folder / f"{TRAINER}.py").write_text(
        f"import sys\nsys.path.insert(0, {str(tests)!r})\nfrom ui_fixtures import fake_training\nfake_training()\n")
    return folder


def install_ui_template(home: Path) -> None:
    """A template offered to CVAT with one parameter of each form type, running the fake training."""
    from cvatflow.templates import Parameter, Template, to_yaml
    from cvatflow.templates.parameter import Option
    from cvatflow.templates.render import render

    output = {"name": "model", "path": "/mnt/output", "archive": {"none": {}},
              "s3": {"key": "{{workflow.parameters.cvat-output-path}}/{{workflow.name}}"}}
    spec = {"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": [{"name": "train", "template": "train"}]}},
        {"name": "train", "outputs": {"artifacts": [output]}, "container": {
            "image": "ghcr.io/cvatflow/maskrcnn:0.1.0", "command": ["python", "-m", TRAINER],
            "args": ["--epochs", "{{workflow.parameters.epochs}}", "--output", "/mnt/output"]}},
    ]}
    parameters = [
        Parameter("cvat-annotation-path", "", type="hidden", visibility="private"),
        Parameter("cvat-output-path", "outputs", visibility="internal"),
        Parameter("cvat-num-classes", "", type="hidden", visibility="private"),
        Parameter("cvat-model", "small", display_name="Model", type="select.select",
                  options=[Option("Small (CPU)", "small"), Option("Large (GPU)", "large")]),
        Parameter("epochs", str(EPOCHS), display_name="Epochs", type="input.number", required=True,
                  hint='Passes over the data; see <a href="https://example.org/epochs">epochs</a>.'),
        Parameter("augment", "yes", display_name="Augment images", type="input.radio",
                  options=[Option("Yes", "yes"), Option("No", "no")]),
        Parameter("notes", "", display_name="Notes", type="textarea.textarea"),
        Parameter("hyperparameters", "lr: 0.001\n", display_name="Hyperparameters", type="editor.yaml",
                  hint="YAML."),
        Parameter("cvat-finetune-checkpoint", "", display_name="Checkpoint path"),
        Parameter("sys-node-pool", "default", display_name="Node pool", type="select.nodepool", required=True),
        Parameter("secret-switch", "off", display_name="Secret switch", type="hidden"),
    ]
    template = Template(UI_TEMPLATE, parameters, spec, title="UI training", labels={"used-by": "cvat"},
                        description="A fake training that prints metrics, for the UI tests.")
    folder = home / "templates"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{UI_TEMPLATE}.yaml").write_text(to_yaml(render(template)))

