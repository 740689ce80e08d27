"""Parameter auto-fill and validation: reserved names, aliases, node pools, and one failing case per rule."""
from __future__ import annotations

import json

import pytest

from cvatflow.config import NodePools
from cvatflow.errors import NotFoundError, ParameterError, ProblemsError
from cvatflow.params import CHECKPOINT_MISSING, CvatTask, autofill, parse_assignments
from cvatflow.templates import builtin_templates, get_template, load_file
from paths import onepanel_manifests

POOLS = NodePools.from_dict({"label": "cloud.google.com/gke-nodepool", "options": [
    {"name": "CPU: 4, RAM: 16GB", "value": "cpu-pool"},
    {"name": "GPU: 1x T4", "value": "gpu-t4", "resources": {"limits": {"nvidia.com/gpu": 1},
                                                             "requests": {"cpu": "4", "memory": "16Gi"}}}]})


def problems_of(excinfo) -> str:
    return "\n".join(str(p) for p in excinfo.value.problems)


def test_cvat_task_fills_reserved_parameters_and_labels():
    filled = autofill(get_template("maskrcnn-training"), {"epochs": 5},
                      task=CvatTask(id=42, labels=["cat", "dog", "bird"], workspace_uid="cvat-ws"),
                      annotation_path="annotations/42/11222026003000/")
    assert filled.values["cvat-annotation-path"] == "annotations/42/11222026003000/"
    assert filled.values["cvat-num-classes"] == "3"
    assert filled.values["cvat-output-path"] == "outputs/task-42"
    assert filled.values["epochs"] == "5"
    assert filled.labels["cvatflow.io/cvat-task-id"] == "42"
    assert filled.labels["cvat-job-id"] == "42" and filled.labels["workspace-uid"] == "cvat-ws"
    assert [a["name"] for a in filled.arguments()] == [p.name for p in filled.template.parameters]


@pytest.mark.parametrize("template", [*builtin_templates().values(),
                                      *(load_file(p) for p in onepanel_manifests())],
                         ids=lambda t: t.name)
def test_autofill_works_on_every_builtin_and_reference_template(template):
    # Onepanel, too, accepted only `default` or a configured pool (the seed's Standard_NC6 is neither here).
    given = {"sys-node-pool": "default"}
    if template.has_parameter("model-path"):  # annotate-task: a run's model has no default
        given["model-path"] = "outputs/run/model/"
    filled = autofill(template, given, task=CvatTask(id=7, labels=["a", "b"]),
                      annotation_path="annotations/7/x/", node_pools=POOLS)
    for p in template.parameters:
        if p.role == "cvat-annotation-path":
            assert filled.values[p.name] == "annotations/7/x/"
        if p.role == "cvat-num-classes":
            assert filled.values[p.name] == "2"
        if p.role == "sys-node-pool":
            assert filled.values[p.name] == "cpu-pool"


def test_legacy_sys_names_fill_the_cvat_parameters():
    filled = autofill(get_template("detr-training"), {"sys-finetune-checkpoint": "outputs/old/"},
                      checkpoint_exists=lambda prefix: True)
    assert filled.values["cvat-finetune-checkpoint"] == "outputs/old/"


def test_node_pool_default_means_the_first_and_patches_the_pod():
    filled = autofill(get_template("maskrcnn-training"), {"sys-node-pool": "gpu-t4"}, node_pools=POOLS)
    patch = json.loads(filled.values["sys-node-pool-patch"])
    assert patch["nodeSelector"] == {"cloud.google.com/gke-nodepool": "gpu-t4"}
    # The pool's resources replace the step's whole `resources` (Onepanel's rule), and a GPU pool is tolerated.
    assert patch["containers"] == [{"name": "main", "resources": {
        "$patch": "replace", "limits": {"nvidia.com/gpu": "1"}, "requests": {"cpu": "4", "memory": "16Gi"}}}]
    assert patch["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert filled.node_pool.name == "GPU: 1x T4"
    default = autofill(get_template("maskrcnn-training"), node_pools=POOLS)
    assert default.values["sys-node-pool"] == "cpu-pool"
    assert json.loads(default.values["sys-node-pool-patch"]) == {
        "nodeSelector": {"cloud.google.com/gke-nodepool": "cpu-pool"}}  # the step's own modest resources, no GPU


def test_unknown_node_pool_lists_the_configured_ones():
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("maskrcnn-training"), {"sys-node-pool": "a100"}, node_pools=POOLS)
    assert "node pool 'a100' is not configured" in problems_of(excinfo)
    assert "cpu-pool, gpu-t4" in problems_of(excinfo)


def test_missing_checkpoint_is_refused_with_onepanels_message():
    with pytest.raises(NotFoundError) as excinfo:
        autofill(get_template("maskrcnn-training"), {"cvat-finetune-checkpoint": "outputs/nothing/"},
                 checkpoint_exists=lambda prefix: False)
    assert str(excinfo.value) == CHECKPOINT_MISSING
    assert excinfo.value.status_code == 404


def test_checkpoint_path_with_quotes_is_refused():
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("maskrcnn-training"), {"cvat-finetune-checkpoint": "x' || true || '"},
                 checkpoint_exists=lambda prefix: True)
    assert "contains quotes" in problems_of(excinfo)


def test_required_parameter_left_empty():
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("maskrcnn-training"), {"epochs": ""})
    assert "Epochs is required" in problems_of(excinfo)


def test_number_that_does_not_parse():
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("maskrcnn-training"), {"batch-size": "two"})
    assert "Batch size must be a number, not 'two'" in problems_of(excinfo)


def test_select_value_outside_the_options():
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("detr-training"), {"cvat-model": "yolov8"})
    assert "'yolov8' is not an option of Model" in problems_of(excinfo)
    assert "detr_resnet50" in problems_of(excinfo)


def test_yaml_textarea_that_does_not_parse():
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("detr-training"), {"hyperparameters": "lr: [0.1\nepochs: 3"})
    assert "Hyperparameters is not valid YAML" in problems_of(excinfo)


def test_unknown_hyperparameter_is_refused_before_submission():
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("maskrcnn-training"), {"hyperparameters": "learning_rate: 0.1\n"})
    assert "unknown key learning_rate" in problems_of(excinfo)


def test_onepanel_hyperparameters_are_only_checked_as_yaml():
    template = load_file(next(p for p in onepanel_manifests() if p.name == "maskrcnn-training.yaml"))
    filled = autofill(template, {"hyperparameters": "stage_1_epochs: 3\n"})
    assert filled.values["hyperparameters"] == "stage_1_epochs: 3\n"


def test_unknown_dump_format_lists_valid_ones():
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("detr-training"), {"dump-format": "cvat_png"})
    text = problems_of(excinfo)
    assert "unknown dump format 'cvat_png'" in text
    for tag in ("cvat_coco", "cvat_voc", "cvat_yolo", "cvat_tfrecord", "cvat_mot", "cvat_label_me", "cvat",
                "datumaro_project"):
        assert tag in text


def test_unknown_parameter_name():
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("detr-training"), {"learning-rate": "0.1"})
    assert "has no parameter 'learning-rate'" in problems_of(excinfo)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("detr-training"), {"epochs": "x", "batch-size": "", "cvat-model": "nope",
                                                 "dump-format": "zip"},
                 checkpoint_exists=lambda prefix: False)
    assert len(excinfo.value.problems) == 4
    assert excinfo.value.status_code == 422


def test_parse_assignments():
    assert parse_assignments(["epochs=5", "hyperparameters=lr: 1"]) == {"epochs": "5", "hyperparameters": "lr: 1"}
    with pytest.raises(ParameterError, match="name=value"):
        parse_assignments(["epochs"])
