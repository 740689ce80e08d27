"""The smarttool-training template: a transform step fed by a file, the interactive train step, no shell."""
from __future__ import annotations

import yaml

from cvatflow.templates import get_template


def _containers(template):
    return {t["name"]: t for t in template.spec["templates"] if "container" in t}


def test_transform_step_reads_the_pipeline_from_a_file_and_trains_the_interactive_model():
    template = get_template("smarttool-training")
    steps = _containers(template)
    transform = steps["transform-dataset"]
    command = transform["container"]["command"]
    assert command[:3] == ["cvatflow", "dataset", "transform"] and "--pipeline" in command
    assert not any(word in ("sh", "bash", "-c") for word in command)  # no shell: values are arguments
    raw = next(a for a in transform["inputs"]["artifacts"] if a["name"] == "pipeline")
    assert raw["raw"]["data"] == "{{workflow.parameters.transform-pipeline}}"
    assert command[command.index("--pipeline") + 1] == raw["path"]
    train = steps["train"]["container"]
    assert ["cvatflow-train", "interactive", "train"] == train["command"][-3:]
    assert steps["train"]["podSpecPatch"] == "{{workflow.parameters.sys-node-pool-patch}}"  # the GPU node pool
    names = [p.name for p in template.parameters]
    assert "transform-pipeline" in names and "val-split" not in names and "gpus" in names


def test_default_pipeline_parameter_is_the_seed_pipeline_and_parses():
    from cvatflow.datasets.transform import SMARTTOOL_PIPELINE, parse

    text = get_template("smarttool-training").parameter("transform-pipeline").value
    layers = yaml.safe_load(text)
    assert layers == SMARTTOOL_PIPELINE
    assert len(parse(layers)) == 12


def test_a_task_with_many_labels_trains_the_class_agnostic_model(tmp_path):
    """CVAT passes its label count as --num-classes; the Smart Tool dataset has the one class `obj`."""
    import numpy as np
    import pytest

    from cvatflow.datasets import transform as tf
    from cvatflow.errors import TrainingError
    from cvatflow.training.setup import Run, Setup

    mask = np.zeros((16, 16), bool)
    mask[4:9, 4:9] = True
    samples = [tf.Sample(f"s{i}", np.zeros((16, 16, 3), np.uint8), [{"category": "obj", "mask": mask}], ["train"])
               for i in range(2)]
    tf.write_samples(samples, tmp_path / "data")
    setup = Setup(Run(model="interactive", data=tmp_path / "data", output=tmp_path / "out", variant="click_tiny",
                      num_classes=3, pretrained=False, device="cpu"))
    assert setup.data.class_titles == ["obj"]
    with pytest.raises(TrainingError, match="--num-classes 3"):  # a detector still checks the count
        Setup(Run(model="maskrcnn", data=tmp_path / "data", output=tmp_path / "out2",
                  variant="maskrcnn_resnet18_fpn", num_classes=3, pretrained=False, device="cpu"))


def test_model_options_are_interactive_variants():
    from cvatflow.models import get_adapter
    from cvatflow.training.hyperparameters import parse

    adapter = get_adapter("interactive")
    parameter = get_template("smarttool-training").parameter("cvat-model")
    assert set(parameter.option_values) == set(adapter.VARIANTS) and parameter.value == adapter.default_variant
    assert parse(get_template("smarttool-training").parameter("hyperparameters").value).val_every == 1
