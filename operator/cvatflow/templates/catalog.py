"""The built-in training templates (detr-, rtdetr-, maskrcnn-training) and lookup of templates by name or file."""
from __future__ import annotations

from functools import cache
from pathlib import Path

from cvatflow.errors import NotFoundError
from cvatflow.templates.parameter import Option, Parameter
from cvatflow.templates.steps import (
    GPUS,
    NODES,
    TrainStep,
    jobset_placement_parameters,
    node_pool_patch_parameter,
    param,
    training_template,
)
from cvatflow.templates.template import Template

IMAGE_REPOSITORY = "ghcr.io/cvatflow"
IMAGE_TAG = "0.1.0"

NODE_POOL_HINT = "Name of node pool or group to run this workflow task"


def schema_bounds(key: str) -> dict[str, str]:
    """A form field's min/max, taken from the training images' hyperparameter schema for `key`."""
    from dataclasses import fields

    from cvatflow.templates.parameter import wire_string
    from cvatflow.training.hyperparameters import Hyperparameters

    meta = next(f.metadata for f in fields(Hyperparameters) if f.name == key)
    return {"min": wire_string(meta["low"]), "max": wire_string(meta["high"])}


def _common_parameters(model_options: list[Option], default_model: str, image: str, epochs: str,
                       batch_size: str, hyperparameters: str, docs: str) -> list[Parameter]:
    """The parameters every CVAT training template has, in the order the dialog shows them."""
    return [
        Parameter("cvat-annotation-path", "annotations/", "Dataset path",
                  "Path to annotated data (COCO format) in default object storage. "
                  "In CVAT, this parameter will be pre-populated.", visibility="internal", required=True),
        Parameter("cvat-output-path", "outputs", "Workflow output path",
                  "Path to store output artifacts in default object storage. "
                  "In CVAT, this parameter will be pre-populated.", visibility="internal"),
        Parameter("cvat-num-classes", "1", "Number of classes",
                  "Number of classes, without background. In CVAT, this parameter will be pre-populated.",
                  type="input.number", visibility="internal", required=True, min="1"),
        Parameter("dump-format", "cvat_coco", "CVAT dump format", visibility="private"),
        Parameter("cvat-model", default_model, "Model",
                  "The model architecture to train.", type="select.select", options=model_options),
        Parameter("cvat-finetune-checkpoint", "", "Checkpoint path",
                  "Path to the output of an earlier run of this model in default object storage (its model/ "
                  "folder is used). Leave empty if this is the first time you're training this model."),
        Parameter("epochs", epochs, "Epochs", "Number of passes over the training set (or `epochs` in the "
                  "hyperparameters; a value set in one place wins over the default in the other).",
                  type="input.number", required=True, **schema_bounds("epochs")),
        Parameter("batch-size", batch_size, "Batch size", "Images per training step on one GPU (or "
                  "`batch_size` in the hyperparameters).", type="input.number", required=True,
                  **schema_bounds("batch_size")),
        Parameter("val-split", "10", "Validation split size",
                  "Validation set size in percent of the full dataset (0 - 99; or `val_percent` in the "
                  "hyperparameters).", type="input.number", min="0", max="99"),
        Parameter("hyperparameters", hyperparameters, "Hyperparameters",
                  f'YAML. See <a href="{docs}" target="_blank">documentation</a> for the keys and their defaults.',
                  type="editor.yaml"),
        Parameter("image", image, "Training image", "Container image that runs the training.",
                  visibility="protected"),
        Parameter("sys-node-pool", "default", "Node pool", NODE_POOL_HINT, type="select.nodepool",
                  required=True),
        *distributed_parameters(),
        node_pool_patch_parameter(),
        *jobset_placement_parameters(TRAIN_STEP),
    ]


# The train step as the catalog renders it: one torchrun process per GPU the `gpus` parameter asks for.
TRAIN_STEP = TrainStep(model="", gpus=param(GPUS))
GPU_CHOICES = ["auto", "1", "2", "4", "8"]
MAX_NODES = 64


def distributed_parameters() -> list[Parameter]:
    """`gpus` (processes per pod; `auto` = every GPU of the chosen node pool's nodes) and `nodes` (pods; above 1
    the run needs JobSet on the cluster)."""
    return [
        Parameter(GPUS, "auto", "GPUs per node", "Training processes per node, one per GPU; auto uses every GPU "
                  "of the node pool's nodes (one process where the pool has none).", type="select.select",
                  options=[Option(c, c) for c in GPU_CHOICES]),
        Parameter(NODES, "1", "Nodes", "Nodes to train on at once. Above 1 the run is a JobSet (the cluster "
                  "needs JobSet installed; see README, \"Many GPUs and nodes\").", type="input.number",
                  min="1", max=str(MAX_NODES)),
    ]


DOCS = "https://github.com/cvatflow/cvatflow#hyperparameters"
# Keys left out take the chosen variant's defaults (lr, optimizer, image_size...), so switching the
# model in the form never keeps a learning rate tuned for another one.
HYPERPARAMETERS = ("# Keys left out take the model variant's defaults, printed at the start of the train log.\n"
                   "val_every: 1\namp: auto\n")

MASKRCNN_VARIANTS = [
    Option("Mask R-CNN ResNet-50 FPN v2", "maskrcnn_resnet50_fpn_v2"),
    Option("Mask R-CNN ResNet-50 FPN", "maskrcnn_resnet50_fpn"),
    Option("Mask R-CNN ResNet-18 FPN (small, trains from scratch)", "maskrcnn_resnet18_fpn"),
    Option("Mask R-CNN MobileNetV3 (small, CPU)", "maskrcnn_mobilenet_v3"),
]
DETR_VARIANTS = [
    Option("DETR ResNet-50", "detr_resnet50"),
    Option("DETR ResNet-101", "detr_resnet101"),
    Option("DETR small (CPU)", "detr_small"),
]


def maskrcnn_training() -> Template:
    image = f"{IMAGE_REPOSITORY}/maskrcnn:{IMAGE_TAG}"
    return training_template(
        "maskrcnn-training", "Mask R-CNN Training",
        "Instance segmentation with torchvision Mask R-CNN, trained on the CVAT task's annotations.",
        _common_parameters(MASKRCNN_VARIANTS, "maskrcnn_resnet50_fpn_v2", image, "20", "2",
                           HYPERPARAMETERS, DOCS),
        TrainStep(model="maskrcnn", gpus=param(GPUS)))


def detr_training() -> Template:
    image = f"{IMAGE_REPOSITORY}/detr:{IMAGE_TAG}"
    return training_template(
        "detr-training", "DETR Training",
        "Object detection with DETR (Hugging Face transformers), fine-tuned on the CVAT task's annotations.",
        _common_parameters(DETR_VARIANTS, "detr_resnet50", image, "50", "2", HYPERPARAMETERS, DOCS),
        TrainStep(model="detr", gpus=param(GPUS)))


def rtdetr_training() -> Template:
    """RT-DETRv2 and D-FINE in their own template: their epochs, batch size and checkpoints differ from DETR's, and
    `cvatflow-train rtdetr` loads only their model states (see README, "RT-DETRv2 and D-FINE")."""
    from cvatflow.models.rtdetr_variants import RTDETR_HINT, choices

    image = f"{IMAGE_REPOSITORY}/detr:{IMAGE_TAG}"  # the DETR image: same transformers, same dependencies
    parameters = _common_parameters([Option(*c) for c in choices()], "rtdetr_v2_r18vd", image, "72", "4", HYPERPARAMETERS, DOCS)
    next(p for p in parameters if p.name == "cvat-model").hint = RTDETR_HINT
    return training_template(
        "rtdetr-training", "RT-DETRv2 / D-FINE Training",
        "Real-time object detection transformers (RT-DETRv2, D-FINE; Hugging Face transformers) that converge in "
        "tens of epochs, fine-tuned on the CVAT task's annotations.",
        parameters, TrainStep(model="rtdetr", gpus=param(GPUS)))


def smarttool_training() -> Template:
    """Smart Tool: a class-agnostic click-based segmentation model (models/interactive.py) trained on samples the
    transform step cuts from the task's masks and polygons (README, "Smart Tool")."""
    from cvatflow.templates.smarttool import PIPELINE_PARAMETER, default_pipeline, transform_container

    image = f"{IMAGE_REPOSITORY}/maskrcnn:{IMAGE_TAG}"  # torchvision, like Mask R-CNN
    variants = [Option("LR-ASPP MobileNetV3 with click maps", "click_lraspp_mobilenet_v3"),
                Option("Tiny click network (CPU, from scratch)", "click_tiny")]
    parameters = [p for p in _common_parameters(variants, "click_lraspp_mobilenet_v3", image, "30", "16",
                                                HYPERPARAMETERS, DOCS) if p.name != "val-split"]
    parameters.insert(next(i for i, p in enumerate(parameters) if p.name == "hyperparameters"), Parameter(
        PIPELINE_PARAMETER, default_pipeline(), "Transform pipeline",
        "YAML list of layers that turn the task's objects into training samples (the validation share is the "
        "split_tags layer's val_probability).", type="editor.yaml"))
    return training_template(
        "smarttool-training", "Smart Tool Training",
        "A click-based interactive segmentation model (positive and negative clicks in, object mask out) tuned to "
        "the CVAT task's objects, for CVAT's AI Tools interactors.",
        parameters, TrainStep(model="interactive", gpus=param(GPUS)), dataset_step=transform_container)


def annotate_task() -> Template:
    """Annotate a CVAT task with a run's model (cvatflow.auto_annotate): what the API, the CLI and the UI submit."""
    from cvatflow.templates.annotate import annotate_template

    return annotate_template([
        Parameter("model-path", "", "Model path",
                  "Key of the model in default object storage: a training run's output prefix "
                  "(outputs/RUN/) or its model/ folder.", required=True),
        Parameter("cvat-task-id", "1", "CVAT task", "The id of the CVAT task to annotate.", type="input.number",
                  required=True, min="1"),
        Parameter("threshold", "0.5", "Score threshold", "Shapes with a lower score are not uploaded (0 - 1).",
                  type="input.number", min="0", max="1"),
        Parameter("clear-existing", "false", "Clear existing annotations",
                  "Remove the task's annotations before uploading the model's.", type="select.select",
                  options=[Option("No: add to them", "false"), Option("Yes: replace them", "true")]),
        Parameter("shape", "auto", "Shapes", "What a Mask R-CNN uploads: masks, polygons traced from them, or "
                  "boxes; the DETR family uploads boxes.", type="select.select",
                  options=[Option("The model's own (masks or boxes)", "auto"), Option("Masks", "mask"),
                           Option("Polygons", "polygon"), Option("Boxes", "rectangle")]),
        Parameter("image", f"{IMAGE_REPOSITORY}/detr:{IMAGE_TAG}", "Image",
                  "Container image with cvatflow and its model code.", visibility="protected"),
        Parameter("sys-node-pool", "default", "Node pool", NODE_POOL_HINT, type="select.nodepool", required=True),
        node_pool_patch_parameter(),
    ])


BUILDERS = {"detr-training": detr_training, "maskrcnn-training": maskrcnn_training, "rtdetr-training": rtdetr_training,
            "smarttool-training": smarttool_training}
BUILDERS["annotate-task"] = annotate_task  # not a training: its own label, kept out of the CVAT dialog


@cache
def _builtin(name: str) -> Template:
    return BUILDERS[name]()


def builtin_templates() -> dict[str, Template]:
    """The catalog, by name (fresh copies, so callers may change them)."""
    return {name: _builtin(name).copy() for name in BUILDERS}


def get_template(name_or_file: str) -> Template:
    """A built-in template by name, or a template read from a YAML file (manifest or WorkflowTemplate)."""
    if name_or_file in BUILDERS:
        return _builtin(name_or_file).copy()
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        from cvatflow.templates.manifest import load_file

        return load_file(path)
    raise NotFoundError(f"no template named {name_or_file!r}; built-in templates are: {', '.join(BUILDERS)} "
                        f"(or give the path of a WorkflowTemplate YAML)")
