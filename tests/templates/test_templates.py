"""The template engine: Onepanel import, rendering, lossless round trips, the catalog and the form."""
from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cvatflow.artifact_repository import ArtifactRepository
from cvatflow.errors import errors_only
from cvatflow.templates import (
    Option,
    Parameter,
    builtin_templates,
    form,
    get_template,
    hint_html,
    hint_text,
    load_dict,
    load_file,
    render,
    to_yaml,
    validate,
)
from cvatflow.templates.parameter import PARAMETER_TYPES, VISIBILITIES
from cvatflow.templates.render import PARAMETERS_ANNOTATION
from paths import onepanel_manifests

MANIFESTS = onepanel_manifests()


def test_reference_material_is_there():
    names = {p.name for p in MANIFESTS}
    assert "detr-training-seed.yaml" in names
    assert len(MANIFESTS) >= 2


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_onepanel_manifest_imports_renders_and_validates_strict(path):
    template = load_file(path)
    assert template.parameters
    doc = render(template)
    assert errors_only(validate(doc, strict=True)) == []
    # Only Argo's own fields stay in the parameters; the metadata lives in the annotation.
    for p in doc["spec"]["arguments"]["parameters"]:
        assert set(p) <= {"name", "value", "description", "enum"}
        assert isinstance(p["value"], str)
    assert json.loads(doc["metadata"]["annotations"][PARAMETERS_ANNOTATION])


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_import_render_import_is_lossless(path):
    first = load_file(path)
    rendered = render(first)
    second = load_dict(yaml.safe_load(to_yaml(rendered)))
    assert second.parameters == first.parameters
    assert second.spec == first.spec
    assert render(second) == rendered


def test_onepanel_metadata_survives_in_the_annotation():
    template = load_file(next(p for p in MANIFESTS if p.stem == "detr-training-seed"))
    source = template.parameter("source")
    assert (source.type, source.visibility, source.display_name) == ("hidden", "private", "Model source code")
    epochs = template.parameter("epochs")
    assert epochs.value == "50"


def test_integer_values_become_strings_as_on_the_wire():
    template = load_dict({"entrypoint": "main", "arguments": {"parameters": [
        {"name": "val-split", "value": 10}, {"name": "flag", "value": True}, {"name": "empty", "value": None}]},
        "templates": [{"name": "main", "dag": {"tasks": []}}]})
    assert [p.value for p in template.parameters] == ["10", "true", ""]


def test_kubectl_edited_value_wins_over_the_annotation():
    doc = render(get_template("maskrcnn-training"))
    for p in doc["spec"]["arguments"]["parameters"]:
        if p["name"] == "epochs":
            p["value"] = "99"
    template = load_dict(doc)
    assert template.parameter("epochs").value == "99"
    assert template.parameter("epochs").display_name == "Epochs"


def test_legacy_sys_alias_finds_the_cvat_parameter():
    template = get_template("detr-training")
    assert template.parameter("sys-num-classes").name == "cvat-num-classes"


names = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@st.composite
def parameter_lists(draw):
    chosen = draw(st.lists(names, min_size=1, max_size=8, unique=True))
    out = []
    for name in chosen:
        options = draw(st.lists(st.builds(Option, name=texts, value=texts), max_size=3))
        out.append(Parameter(
            name=name,
            value=draw(st.one_of(texts, st.sampled_from([o.value for o in options] or [""])),),
            display_name=draw(texts),
            hint=draw(st.one_of(texts, st.just('See <a href="https://example.com/x">docs</a>.'))),
            type=draw(st.sampled_from(PARAMETER_TYPES)),
            options=options,
            required=draw(st.booleans()),
            visibility=draw(st.sampled_from(VISIBILITIES)),
        ))
    return out


@settings(max_examples=60, deadline=None)
@given(parameter_lists())
def test_round_trip_is_lossless_for_any_parameter_list(parameters):
    template = get_template("detr-training")
    template.parameters = parameters
    again = load_dict(yaml.safe_load(to_yaml(template)))
    assert again.parameters == parameters


def test_artifact_shorthand_is_completed_from_s3_repository():
    repo = ArtifactRepository.from_dict({"s3": {
        "bucket": "training", "endpoint": "minio.minio:9000", "region": "us-east-1", "insecure": True,
        "accessKeySecret": {"name": "s3-creds", "key": "accessKey"},
        "secretKeySecret": {"name": "s3-creds", "key": "secretKey"}}})
    path = next(p for p in MANIFESTS if p.stem == "detr-training-seed")
    template = load_file(path, repository=repo)
    data = template.spec["templates"][1]["inputs"]["artifacts"][0]
    assert data["s3"]["bucket"] == "training" and data["s3"]["endpoint"] == "minio.minio:9000"
    assert data["s3"]["accessKeySecret"] == {"name": "s3-creds", "key": "accessKey"}
    assert data["s3"]["key"] == "{{workflow.namespace}}/{{workflow.parameters.cvat-annotation-path}}"
    assert errors_only(validate(template)) == []


def test_artifact_shorthand_becomes_gcs_with_a_gcs_repository():
    repo = ArtifactRepository.from_dict({"gcs": {
        "bucket": "ml", "serviceAccountKeySecret": {"name": "gcs-sa", "key": "key.json"}}})
    template = get_template("maskrcnn-training")
    from cvatflow.templates import complete_artifacts

    assert complete_artifacts(template.spec, repo) == 5  # export, train and fine-tune outputs, fine-tune input, the multi-node dataset
    export = template.spec["templates"][0]["inputs"]["artifacts"][0]
    assert "s3" not in export and export["gcs"]["bucket"] == "ml"
    assert export["gcs"]["serviceAccountKeySecret"] == {"name": "gcs-sa", "key": "key.json"}
    assert errors_only(validate(template)) == []


def test_artifact_repository_configmap_is_read(tmp_path):
    path = tmp_path / "cm.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "artifact-repositories",
        "annotations": {"workflows.argoproj.io/default-artifact-repository": "default-v1"}},
        "data": {"default-v1": "s3:\n  bucket: b\n  endpoint: s3.amazonaws.com\n"}}))
    repo = ArtifactRepository.from_file(path)
    assert (repo.kind, repo.bucket, repo.uri) == ("s3", "b", "s3://b")


def test_builtin_templates_validate_strict_with_no_problems_at_all():
    for name, template in builtin_templates().items():
        assert validate(template) == [], name


@pytest.mark.parametrize("name", ["detr-training", "maskrcnn-training"])
def test_builtin_template_is_a_safe_gpu_training_dag(name):
    doc = render(get_template(name))
    assert doc["metadata"]["labels"]["used-by"] == "cvat"
    templates = {t["name"]: t for t in doc["spec"]["templates"]}
    main = templates[doc["spec"]["entrypoint"]]
    tasks = {t["name"]: t for t in main["dag"]["tasks"]}
    assert tasks["train"]["depends"] == "prepare-dataset"
    train = templates["train"]
    model = name.split("-")[0]
    # One process per GPU the `gpus` parameter asks for (params.autofill resolves `auto`).
    assert train["container"]["command"] == ["cvatflow-train", "torchrun", "--standalone",
                                             "--nproc-per-node={{workflow.parameters.gpus}}", "--no-python",
                                             "cvatflow-train", model, "train"]
    # Parameters reach the program as separate args, never through a shell.
    for tpl in templates.values():
        command = (tpl.get("container") or {}).get("command") or []
        assert command[:1] != ["sh"] and "-c" not in command
    # Modest, GPU-free defaults: the node pool's patch brings a GPU (and its toleration) on GPU pools only.
    assert train["container"]["resources"] == {"requests": {"cpu": "1", "memory": "4Gi"}}
    assert "tolerations" not in train
    assert train["podSpecPatch"] == "{{workflow.parameters.sys-node-pool-patch}}"
    assert train["retryStrategy"]["limit"] == "3"
    assert {"mountPath": "/mnt/output", "name": "output"} in train["container"]["volumeMounts"]
    assert [c["metadata"]["name"] for c in doc["spec"]["volumeClaimTemplates"]] == ["output"]
    assert train["sidecars"][0]["name"] == "tensorboard"
    out = train["outputs"]["artifacts"][0]
    assert out["path"] == "/mnt/output"
    assert out["s3"]["key"] == "{{workflow.parameters.cvat-output-path}}/{{workflow.name}}"
    finetune = templates["train-from-checkpoint"]
    assert finetune["inputs"]["artifacts"][1]["path"] == "/mnt/data/models"
    names = [p["name"] for p in doc["spec"]["arguments"]["parameters"]]
    for reserved in ("cvat-annotation-path", "cvat-output-path", "cvat-num-classes", "cvat-finetune-checkpoint",
                     "cvat-model", "dump-format", "sys-node-pool", "hyperparameters", "val-split", "epochs",
                     "batch-size", "image", "sys-node-pool-patch"):
        assert reserved in names


def test_form_shows_public_parameters_in_order_with_types_and_options():
    fields = form(get_template("maskrcnn-training"), node_pools=[Option("GPU V100", "Standard_NC6")])
    names = [f["name"] for f in fields]
    assert names == ["cvat-model", "cvat-finetune-checkpoint", "epochs", "batch-size", "val-split",
                     "hyperparameters", "sys-node-pool", "gpus", "nodes"]
    model = fields[0]
    assert model["type"] == "select.select" and model["options"][0]["value"] == model["value"]
    assert fields[-3]["options"] == [{"name": "GPU V100", "value": "Standard_NC6"}]


def test_a_node_pool_field_without_configured_pools_offers_the_templates_own_value():
    fields = {f["name"]: f for f in form(get_template("maskrcnn-training"))}
    pool = fields["sys-node-pool"]
    assert pool["required"] and pool["value"] == "default"
    assert pool["options"] == [{"name": "default (no node pools configured)", "value": "default"}]


def test_hints_keep_only_links():
    hint = 'See <a href="https://docs.example.com/x" target="_blank">docs</a> <b>now</b><script>alert(1)</script>'
    assert hint_text(hint) == "See docs (https://docs.example.com/x) now"
    safe = hint_html(hint + '<a href="javascript:alert(1)">bad</a>')
    assert "<script" not in safe and "<b>" not in safe and "javascript:" not in safe
    assert '<a href="https://docs.example.com/x"' in safe


def test_unknown_template_name_lists_the_builtin_ones():
    from cvatflow.errors import NotFoundError

    with pytest.raises(NotFoundError, match="detr-training, maskrcnn-training"):
        get_template("yolo-training")


@pytest.mark.parametrize("name", ["detr-training", "maskrcnn-training"])
def test_model_options_are_variants_the_training_image_knows(name):
    from cvatflow.models import get_adapter

    adapter = get_adapter(name.split("-")[0])
    options = get_template(name).parameter("cvat-model").option_values
    assert set(options) <= set(adapter.VARIANTS)
    assert get_template(name).parameter("cvat-model").value == adapter.default_variant


@pytest.mark.parametrize("name", ["detr-training", "maskrcnn-training"])
def test_default_hyperparameters_are_accepted_by_the_training_harness(name):
    from cvatflow.training.hyperparameters import parse

    assert parse(get_template(name).parameter("hyperparameters").value).val_every == 1
