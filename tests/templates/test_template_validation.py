"""Validation of WorkflowTemplates: each semantic check fails on a case made for it; the CLI reports cleanly."""
from __future__ import annotations

import copy

import pytest
import yaml

from cvatflow.errors import errors_only
from cvatflow.templates import get_template, render, validate


def base() -> dict:
    return copy.deepcopy(render(get_template("maskrcnn-training")))


def templates(doc: dict) -> dict:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def params(doc: dict) -> list:
    return doc["spec"]["arguments"]["parameters"]


def set_annotation(doc: dict, mutate) -> None:
    import json

    from cvatflow.templates.render import PARAMETERS_ANNOTATION

    meta = json.loads(doc["metadata"]["annotations"][PARAMETERS_ANNOTATION])
    mutate(meta)
    doc["metadata"]["annotations"][PARAMETERS_ANNOTATION] = json.dumps(meta)


def messages(doc: dict) -> str:
    return "\n".join(str(p) for p in errors_only(validate(doc)))


def warnings(doc: dict) -> str:
    """cvatflow's own preferences: reported, never blocking, and saying they are cvatflow's."""
    found = [p for p in validate(doc) if p.severity == "warning"]
    assert all("cvatflow" in p.message or "Kubernetes" in p.message for p in found), found
    return "\n".join(str(p) for p in found)


def test_the_base_case_is_valid():
    assert messages(base()) == ""


def test_dangling_workflow_parameter_reference():
    doc = base()
    templates(doc)["train"]["container"]["args"].append("{{workflow.parameters.learning-rate}}")
    # Argo lets a WorkflowTemplate use parameters the Workflow brings; CVAT's form cannot fill them: a warning.
    assert messages(doc) == ""
    assert "workflow.parameters.learning-rate}} refers to a parameter that is not declared" in warnings(doc)
    doc["kind"] = "Workflow"  # a Workflow has nobody else to bring it: Argo's error
    assert "workflow.parameters.learning-rate}} refers to a parameter that is not declared" in messages(doc)


def test_dangling_input_parameter_reference():
    doc = base()
    templates(doc)["train"]["container"]["args"].append("{{inputs.parameters.lr}}")
    assert "inputs.parameters.lr}} refers to an input this template lacks" in messages(doc)


def test_dangling_input_artifact_reference():
    doc = base()
    templates(doc)["train"]["container"]["args"].append("{{inputs.artifacts.weights.path}}")
    assert "inputs.artifacts.weights" in messages(doc)


def test_missing_entrypoint():
    doc = base()
    doc["spec"]["entrypoint"] = "start"
    assert "entrypoint 'start' is not a template" in messages(doc)


def test_entrypoint_that_is_not_a_dag():
    doc = base()
    doc["spec"]["entrypoint"] = "train"
    assert messages(doc) == ""  # Argo runs any template as the entrypoint
    assert "entrypoint 'train' is not a DAG" in warnings(doc)


def test_dependency_on_a_missing_task():
    doc = base()
    templates(doc)["main"]["dag"]["tasks"][1]["depends"] = "prepare"
    assert "depends on 'prepare', which is not a task of this DAG" in messages(doc)


def test_dependency_cycle():
    doc = base()
    tasks = templates(doc)["main"]["dag"]["tasks"]
    tasks[0]["depends"] = "train"
    assert "cycle: prepare-dataset -> train -> prepare-dataset" in messages(doc)


def test_depends_and_dependencies_together():
    doc = base()
    templates(doc)["main"]["dag"]["tasks"][1]["dependencies"] = ["prepare-dataset"]
    assert "uses both `depends` and `dependencies`" in messages(doc)


def test_task_calling_a_missing_template():
    doc = base()
    templates(doc)["main"]["dag"]["tasks"][0]["template"] = "prepare"
    assert "calls template 'prepare', which does not exist" in messages(doc)


def test_reference_to_a_missing_task_output():
    doc = base()
    tasks = templates(doc)["main"]["dag"]["tasks"]
    tasks[1]["arguments"]["artifacts"][0]["from"] = "{{tasks.preprocess.outputs.artifacts.dataset}}"
    assert "reference to task 'preprocess'" in messages(doc)


def test_duplicate_template_names():
    doc = base()
    doc["spec"]["templates"].append(copy.deepcopy(templates(doc)["train"]))
    assert "template name 'train' is declared twice" in messages(doc)


def test_duplicate_task_names():
    doc = base()
    tasks = templates(doc)["main"]["dag"]["tasks"]
    tasks[2]["name"] = "train"
    assert "task name 'train' is declared twice" in messages(doc)


def test_malformed_names():
    doc = base()
    doc["metadata"]["name"] = "Mask_RCNN"
    templates(doc)["main"]["dag"]["tasks"][0]["name"] = "prepare dataset"
    text = messages(doc)
    assert "'Mask_RCNN' is not a valid Kubernetes name" in text
    assert "task name 'prepare dataset' is not well-formed" in text


def test_duplicate_parameter():
    doc = base()
    params(doc).append({"name": "epochs", "value": "3"})
    assert "parameter name 'epochs' is declared twice" in messages(doc)


def test_malformed_parameter_name():
    doc = base()
    params(doc).append({"name": "Learning Rate", "value": "3"})
    assert "parameter name 'Learning Rate' is not well-formed" in messages(doc)


def test_two_artifact_locations():
    doc = base()
    templates(doc)["prepare-dataset"]["inputs"]["artifacts"][0]["gcs"] = {"bucket": "b", "key": "k"}
    assert messages(doc) == ""  # Argo's validator accepts it and uses one of them
    assert "has 2 locations (s3, gcs)" in warnings(doc)


def test_select_value_not_among_options():
    doc = base()
    for p in params(doc):
        if p["name"] == "cvat-model":
            p["value"] = "yolov8"
    text = messages(doc)
    assert "'cvat-model' has value 'yolov8', which is not among its options" in text


def test_unknown_parameter_type_and_visibility():
    doc = base()

    def mutate(meta):
        meta[0]["type"] = "input.slider"
        meta[1]["visibility"] = "secret"
    set_annotation(doc, mutate)
    text = messages(doc)
    assert "unknown type 'input.slider'" in text and "input.text" in text
    assert "unknown visibility 'secret'" in text and "public" in text


def test_number_parameter_with_text_value():
    doc = base()
    for p in params(doc):
        if p["name"] == "epochs":
            p["value"] = "ten"
    assert "'epochs' is a number but its value is 'ten'" in messages(doc)


def test_unknown_field_fails_strict_schema_only():
    doc = base()
    params(doc)[0]["displayName"] = "Dataset path"
    assert "'displayName' was unexpected" in messages(doc)
    assert errors_only(validate(doc, strict=False)) == []


def test_template_with_two_types():
    doc = base()
    templates(doc)["train"]["script"] = {"image": "x", "source": "print(1)"}
    assert "has several types (container, script)" in messages(doc)


def test_mount_of_an_undeclared_volume():
    doc = base()
    templates(doc)["train"]["container"]["volumeMounts"].append({"name": "cache", "mountPath": "/cache"})
    assert messages(doc) == ""  # Argo's validator accepts it; Kubernetes refuses the pod
    assert "mounts volume 'cache', which is not declared" in warnings(doc)


def test_all_problems_are_reported_at_once():
    doc = base()
    doc["spec"]["entrypoint"] = "start"
    params(doc).append({"name": "epochs", "value": "3"})
    templates(doc)["train"]["container"]["args"].append("{{inputs.parameters.nope}}")
    assert len(errors_only(validate(doc))) >= 3


def test_shell_splice_is_a_warning():
    doc = base()
    container = templates(doc)["prepare-dataset"]["container"]
    container["command"] = ["sh", "-c"]
    container["args"] = ["cvatflow dataset prepare --val-split {{workflow.parameters.val-split}}"]
    problems = validate(doc)
    assert errors_only(problems) == []
    assert any(p.severity == "warning" and "command injection" in p.message for p in problems)


# The CLI: bad input gives clear lines naming the file, exit code 1, and no traceback.

def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_clean_failure(result, *needles):
    assert result.code == 1, result
    assert "Traceback" not in result.err + result.out
    for needle in needles:
        assert needle in result.err, result.err


def test_cli_malformed_yaml(cli, tmp_path):
    path = write(tmp_path, "bad.yaml", "entrypoint: main\ntemplates: [\n  - name: x\n")
    result = cli("templates", "validate", path)
    assert_clean_failure(result, str(path), "not valid YAML", "line")
    assert len(result.err.strip().splitlines()) == 1


def test_cli_manifest_without_templates(cli, tmp_path):
    path = write(tmp_path, "empty.yaml", "arguments:\n  parameters: []\n")
    result = cli("templates", "import", path, "--name", "x")
    assert_clean_failure(result, str(path), "has no `templates`")


def test_cli_unknown_type_and_visibility(cli, tmp_path):
    path = write(tmp_path, "t.yaml", yaml.safe_dump({
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "a", "value": "1", "type": "input.slider"},
                                     {"name": "b", "value": "1", "visibility": "secret"}]},
        "templates": [{"name": "main", "dag": {"tasks": [{"name": "t", "template": "s"}]}},
                      {"name": "s", "container": {"image": "busybox", "command": ["true"]}}]}))
    result = cli("templates", "import", path, "--name", "t")
    assert_clean_failure(result, str(path), "unknown type 'input.slider'", "unknown visibility 'secret'")


def test_cli_duplicate_parameter_and_dangling_reference(cli, tmp_path):
    path = write(tmp_path, "t.yaml", yaml.safe_dump({
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]},
        "templates": [{"name": "main", "dag": {"tasks": [{"name": "t", "template": "s"}]}},
                      {"name": "s", "container": {"image": "busybox", "command": ["echo"],
                                                  "args": ["{{workflow.parameters.b}}"]}}]}))
    result = cli("templates", "validate", path)
    assert_clean_failure(result, str(path), "declared twice", "workflow.parameters.b}} refers")


def test_cli_missing_file(cli, tmp_path):
    result = cli("templates", "validate", tmp_path / "nope.yaml")
    assert_clean_failure(result, "nope.yaml: no such file")


def test_cli_import_writes_a_valid_template(cli, tmp_path):
    from paths import onepanel_manifests

    source = next(p for p in onepanel_manifests() if p.stem == "detr-training-seed")
    out = tmp_path / "detr.yaml"
    result = cli("templates", "import", source, "--name", "detr-seed", "-o", out)
    assert result.code == 0, result.err
    assert "command injection" in result.err  # the seed splices parameters into sh -c: warned, not refused
    assert cli("templates", "validate", out).code == 0
    doc = yaml.safe_load(out.read_text())
    assert doc["metadata"]["labels"]["used-by"] == "cvat"


def test_cli_render_check_detects_stale_files(cli, tmp_path):
    assert cli("templates", "render", "--out", tmp_path).code == 0
    assert cli("templates", "render", "--out", tmp_path, "--check").code == 0
    (tmp_path / "detr-training.yaml").write_text("stale")
    result = cli("templates", "render", "--out", tmp_path, "--check")
    assert_clean_failure(result, "detr-training.yaml", "cvatflow templates render")


def test_cli_checked_in_templates_are_current(cli):
    from paths import ROOT

    result = cli("templates", "render", "--out", ROOT / "workflow_templates", "--check")
    assert result.code == 0, result.err
    result = cli("templates", "validate", *sorted((ROOT / "workflow_templates").glob("*.yaml")))
    assert result.code == 0 and result.err == "", result.err


def test_cli_form_json(cli):
    import json

    result = cli("templates", "form", "detr-training", "--json")
    fields = json.loads(result.out)
    assert fields[0]["name"] == "cvat-model" and all(f["type"] for f in fields)


def test_cli_list(cli):
    result = cli("templates", "list")
    assert "detr-training" in result.out and "maskrcnn-training" in result.out


@pytest.mark.parametrize(("text", "words"), [("- a\n- b\n", "a list"), ("just text\n", "a string"),
                                             ("42\n", "a number")])
def test_a_manifest_that_is_no_mapping_is_named_in_yaml_words_not_our_class_names(tmp_path, text, words):
    from cvatflow.errors import TemplateError
    from cvatflow.templates import load_file, validate

    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TemplateError) as caught:
        load_file(path, name="t")
    assert f"got {words}" in str(caught.value) and "Source" not in str(caught.value)
    from cvatflow.templates.yamlsafe import load_one

    problems = validate(load_one(text, "t.yaml"))
    assert [p.message for p in problems] == [f"is {words}, not an Argo object"]
