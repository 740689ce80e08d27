"""Templates accept what Argo accepts, refuse what Argo refuses, keep values as written and never crash on YAML."""
from __future__ import annotations

import codecs
import copy
import os
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cvatflow.errors import CvatflowError, TemplateError, errors_only
from cvatflow.templates import form, get_template, load_dict, load_text, render, to_yaml, validate
from cvatflow.templates.manifest import objects
from cvatflow.templates.placeholders import fill, placeholder_values
from cvatflow.templates.yamlsafe import MAX_BYTES, decode, load_documents
from paths import SHARED

# Argo's examples/ (v4.1.2), extracted from a checkout: git archive v4.1.2 examples | tar -x -C DIR
ARGO_EXAMPLES = os.environ.get("ARGO_EXAMPLES", "/tmp/argo-examples/examples")
ARGO_SKIPS = {"testvolume.yaml", "simple-parameters-configmap.yaml", "memoize-simple.yaml"}  # Argo's test skips them


def container(name: str, *args: str, **extra) -> dict:
    return {"name": name, "container": {"image": "alpine:3.20", "command": ["echo"], "args": list(args)}, **extra}


def workflow(kind: str = "Workflow", spec: dict | None = None, **metadata) -> dict:
    metadata = metadata or {"name": "hello"}
    spec = spec if spec is not None else {"entrypoint": "main", "templates": [container("main", "hi")]}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}


# Argo's own shapes, as the examples/ folder has them (described here, not copied).
STEPS = workflow(generateName="steps-", spec={"entrypoint": "hello-hello", "templates": [
    {"name": "hello-hello", "steps": [[{"name": "a", "template": "print", "arguments": {
        "parameters": [{"name": "message", "value": "one"}]}}],
        [{"name": "b", "template": "print", "arguments": {"parameters": [{"name": "message", "value": "two"}]}},
         {"name": "c", "template": "print", "arguments": {"parameters": [{"name": "message", "value": "3"}]}}]]},
    container("print", "{{inputs.parameters.message}}", inputs={"parameters": [{"name": "message"}]})]})
CONTAINER_ENTRYPOINT = workflow(generateName="hello-world-")
WITH_REF = workflow(generateName="from-template-", spec={
    "arguments": {"parameters": [{"name": "message", "value": "hi"}]},
    "workflowTemplateRef": {"name": "workflow-template-submittable"}})
CLUSTER = workflow("ClusterWorkflowTemplate", name="cluster-print", spec={"templates": [
    container("print", "{{inputs.parameters.message}}", inputs={"parameters": [{"name": "message"}]})]})
CRON = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "metadata": {"name": "hello-cron"},
        "spec": {"schedules": ["*/5 * * * *"], "timezone": "Europe/Berlin", "concurrencyPolicy": "Replace",
                 "workflowSpec": {"entrypoint": "main", "templates": [container("main", "tick")]}}}
SNAKE = workflow("WorkflowTemplate", name="train-snake", spec={
    "entrypoint": "main",
    "arguments": {"parameters": [{"name": "learning_rate", "value": "0.001"}, {"name": "batchSize", "value": "8"}]},
    "templates": [container("main", "{{workflow.parameters.learning_rate}}", "{{workflow.parameters.batchSize}}")]})
UNDECLARED = workflow("WorkflowTemplate", name="takes-from-caller", spec={
    "templates": [container("main", "{{workflow.parameters.from-the-workflow}}")]})
SHAPES = {"steps": STEPS, "container": CONTAINER_ENTRYPOINT, "workflowTemplateRef": WITH_REF,
          "ClusterWorkflowTemplate": CLUSTER, "CronWorkflow": CRON, "snake_and_camel": SNAKE,
          "undeclared_in_template": UNDECLARED}


@pytest.mark.parametrize("shape", SHAPES)
def test_argo_shapes_have_no_errors(shape):
    assert errors_only(validate(SHAPES[shape])) == []


def test_multi_document_file_and_list_validate_each_object_by_its_own_name(cli, tmp_path):
    listed = {"apiVersion": "v1", "kind": "List", "items": [CLUSTER, SNAKE]}
    path = tmp_path / "many.yaml"
    path.write_text(yaml.safe_dump_all([STEPS, CRON, listed]))
    result = cli("templates", "validate", path)
    assert result.code == 0, result.err
    for label in ("document 1 (steps-*)", "document 2 (hello-cron)", "document 3 items[0] (cluster-print)",
                  "document 3 items[1] (train-snake)"):
        assert label in result.out
    assert "many" not in result.out.replace(str(path), "")  # names come from metadata, never the file name


def test_each_document_is_named_in_its_errors(cli, tmp_path):
    bad = copy.deepcopy(SNAKE)
    bad["spec"]["entrypoint"] = "nowhere"
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([STEPS, bad]))
    result = cli("templates", "validate", path)
    assert result.code == 1
    assert "document 2 (train-snake): spec.entrypoint: entrypoint 'nowhere' is not a template" in result.err
    assert "document 1" not in result.err


def test_snake_case_case_validates_and_imports(cli, tmp_path):
    case = SHARED / "cases" / "argo" / "snake-case-parameter-names.yaml"
    assert cli("templates", "validate", case).code == 0
    out = tmp_path / "t.yaml"
    result = cli("templates", "import", case, "--name", "train-snake", "-o", out)
    assert result.code == 0, result.err
    assert "not in Onepanel style" in result.err and "cvatflow's preference" in result.err
    names = [p["name"] for p in yaml.safe_load(out.read_text())["spec"]["arguments"]["parameters"]]
    assert names == ["learning_rate", "batchSize"]


def test_undeclared_workflow_parameter_is_argo_error_in_workflow_and_cvat_warning_in_cvat_template():
    assert errors_only(validate(UNDECLARED)) == []
    assert not validate(UNDECLARED)  # not offered to CVAT: nothing to say
    as_cvat = validate(UNDECLARED, cvat=True)
    assert errors_only(as_cvat) == [] and "CVAT's form can only fill declared" in str(as_cvat[0])
    as_workflow = copy.deepcopy(UNDECLARED)
    as_workflow["kind"] = "Workflow"
    as_workflow["spec"]["entrypoint"] = "main"
    assert "from-the-workflow}} refers to a parameter that is not declared" in str(errors_only(validate(as_workflow)))


def argo_examples() -> list[Path]:
    root = Path(ARGO_EXAMPLES)
    return sorted(p for p in root.rglob("*.yaml") if p.name not in ARGO_SKIPS) if root.is_dir() else []


@pytest.mark.upstream_files
@pytest.mark.skipif(not argo_examples(), reason=f"Argo's examples/ not extracted at ARGO_EXAMPLES={ARGO_EXAMPLES}")
def test_every_argo_example_validates_with_zero_errors():
    from cvatflow.templates.manifest import objects as split
    from cvatflow.templates.validate import KINDS

    failures = {}
    for path in argo_examples():
        for label, doc in split(load_documents(path.read_text(), str(path))):
            if isinstance(doc, dict) and doc.get("kind") in KINDS:
                errors = errors_only(validate(doc))
                if errors:
                    failures[f"{path.name} {label}"] = [str(e) for e in errors]
    assert failures == {}
    assert len(argo_examples()) > 200


# Argo's invalid cases (workflow/validate/validate_test.go) for the rules cvatflow claims: each is an error.
def _broken(mutate) -> dict:
    doc = copy.deepcopy(STEPS)
    mutate(doc["spec"])
    return doc


ARGO_INVALID = {
    "template name with underscore": lambda s: s["templates"][1].update(name="print_it"),
    "duplicate template name": lambda s: s["templates"].append(copy.deepcopy(s["templates"][1])),
    "no template type": lambda s: s["templates"][1].pop("container"),
    "two template types": lambda s: s["templates"][1].update(script={"image": "a", "source": "x"}),
    "undefined entrypoint": lambda s: s.update(entrypoint="nope"),
    "missing entrypoint in Workflow": lambda s: s.pop("entrypoint"),
    "undefined step template": lambda s: s["templates"][0]["steps"][0][0].update(template="nope"),
    "duplicate step name": lambda s: s["templates"][0]["steps"][1][0].update(name="a"),
    "invalid step name": lambda s: s["templates"][0]["steps"][0][0].update(name="a_b"),
    "invalid argument parameter name": lambda s: s.update(arguments={"parameters": [{"name": "a b", "value": "1"}]}),
    "duplicate argument parameter": lambda s: s.update(arguments={"parameters": [{"name": "x", "value": "1"},
                                                                                  {"name": "x", "value": "2"}]}),
    "unresolved input parameter": lambda s: s["templates"][1]["container"]["args"].append("{{inputs.parameters.nope}}"),
    "unresolved workflow parameter": lambda s: s["templates"][1]["container"]["args"].append(
        "{{workflow.parameters.nope}}"),
    "empty image": lambda s: s["templates"][1]["container"].update(image=""),
    "bad retry policy": lambda s: s["templates"][1].update(retryStrategy={"retryPolicy": "Sometimes"}),
    "activeDeadlineSeconds on steps": lambda s: s["templates"][0].update(activeDeadlineSeconds=3),
    "parallelism on a container": lambda s: s["templates"][1].update(parallelism=2),
    "reserved sidecar name": lambda s: s["templates"][1].update(sidecars=[{"name": "wait", "image": "a"}]),
    "enum without the value": lambda s: s.update(arguments={"parameters": [{"name": "x", "value": "c",
                                                                            "enum": ["a", "b"]}]}),
    "output parameter without value or valueFrom": lambda s: s["templates"][1].update(
        outputs={"parameters": [{"name": "out"}]}),
    "output parameter of a container from a jsonPath": lambda s: s["templates"][1].update(
        outputs={"parameters": [{"name": "out", "valueFrom": {"jsonPath": "{.x}"}}]}),
    "artifact loaded onto a mounted path": lambda s: s["templates"][1].update(
        inputs={"parameters": [{"name": "message"}], "artifacts": [{"name": "a", "path": "/work"}]},
        container={**s["templates"][1]["container"], "volumeMounts": [{"name": "w", "mountPath": "/work"}]}),
    "step argument without a value": lambda s: s["templates"][0]["steps"][0][0]["arguments"]["parameters"][0].pop(
        "value"),
    "step artifact argument from nowhere": lambda s: s["templates"][0]["steps"][0][0]["arguments"].update(
        artifacts=[{"name": "a"}]),
    "withSequence with count and end": lambda s: s["templates"][0]["steps"][0][0].update(
        withSequence={"count": "3", "end": "5"}),
    "input artifact with from": lambda s: s["templates"][1].update(inputs={
        "parameters": [{"name": "message"}], "artifacts": [{"name": "a", "path": "/a", "from": "{{x}}"}]}),
}


@pytest.mark.parametrize("case", ARGO_INVALID)
def test_argo_invalid_cases_are_errors(case):
    assert errors_only(validate(_broken(ARGO_INVALID[case]))), case


DAG_INVALID = {
    "dependency not defined": {"name": "b", "template": "print", "dependencies": ["nope"]},
    "depends and dependencies together": {"name": "b", "template": "print", "dependencies": ["a"], "depends": "a"},
    "continueOn with depends": {"name": "b", "template": "print", "depends": "a", "continueOn": {"failed": True}},
    "name starting with a digit": {"name": "1b", "template": "print", "depends": "a"},
    "cycle": {"name": "b", "template": "print", "depends": "b"},
}


@pytest.mark.parametrize("case", DAG_INVALID)
def test_argo_invalid_dag_cases_are_errors(case):
    doc = workflow(spec={"entrypoint": "d", "templates": [
        {"name": "d", "dag": {"tasks": [{"name": "a", "template": "print"}, DAG_INVALID[case]]}}, container("print")]})
    assert errors_only(validate(doc)), case


@pytest.mark.parametrize("spec, expected", [
    ({"schedules": []}, "at least one schedule"),
    ({"schedules": ["every day"]}, "is malformed"),
    ({"schedules": ["0 * * * *"], "timezone": "Mars/Olympus"}, "invalid timezone"),
    ({"schedules": ["0 * * * *"], "concurrencyPolicy": "Sometimes"}, "not a valid concurrencyPolicy"),
])
def test_cron_workflow_rules(spec, expected):
    doc = copy.deepcopy(CRON)
    doc["spec"].update(spec)
    assert expected in str(errors_only(validate(doc)))


def test_workflow_with_template_ref_may_not_bring_templates():
    doc = copy.deepcopy(WITH_REF)
    doc["spec"]["templates"] = [container("main")]
    assert "cannot have its own templates" in str(errors_only(validate(doc)))


def test_cvatflow_preferences_are_warnings_that_say_so():
    problems = validate(CONTAINER_ENTRYPOINT, cvat=True)
    assert errors_only(problems) == []
    assert [p for p in problems if "is not a DAG" in p.message and "cvatflow's preference" in p.message]


# Robust to any YAML: wrong-type fields are one error at their path; the semantic checks skip them.
WRONG_TYPES = {
    "task named 5": (lambda d: d["spec"]["templates"][0]["dag"]["tasks"][0].update(name=5),
                     "spec.templates[0].dag.tasks[0].name"),
    "entrypoint [main]": (lambda d: d["spec"].update(entrypoint=["main"]), "spec.entrypoint"),
    "metadata a string": (lambda d: d.update(metadata="a-string"), "metadata"),
    "dag a list": (lambda d: d["spec"]["templates"][0].update(dag=[{"name": "t"}]), "spec.templates[0].dag"),
    "options 5": (lambda d: d["spec"]["arguments"]["parameters"][0].update(options=5),
                  "spec.arguments.parameters[0]"),
}


def dag_template() -> dict:
    return workflow("WorkflowTemplate", name="dag-one", spec={
        "entrypoint": "main", "arguments": {"parameters": [{"name": "epochs", "value": "3"}]},
        "templates": [{"name": "main", "dag": {"tasks": [{"name": "t", "template": "step"}]}},
                      container("step", "{{workflow.parameters.epochs}}")]})


@pytest.mark.parametrize("case", WRONG_TYPES)
def test_wrong_type_field_is_one_error_at_its_path(case, cli, tmp_path):
    mutate, path = WRONG_TYPES[case]
    doc = dag_template()
    mutate(doc)
    errors = errors_only(validate(doc))
    assert [e.path for e in errors if e.path.startswith(path)] == [path], errors
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(doc))
    for args in (("templates", "validate", file), ("templates", "import", file, "--name", "x")):
        result = cli(*args)
        assert result.code == 1 and "Traceback" not in result.err + result.out, (args, result)
    result = cli("templates", "form", file)  # the form needs only the parameters: shown, or one clear error
    assert result.code in (0, 1) and "Traceback" not in result.err + result.out


def test_paths_after_a_wrong_typed_item_keep_their_index():
    doc = dag_template()
    doc["spec"]["templates"].insert(0, 5)
    doc["spec"]["templates"][2]["container"]["image"] = ""
    assert [e.path for e in errors_only(validate(doc))] == ["spec.templates[0]", "spec.templates[2].container.image"]


@pytest.mark.parametrize("annotation", ["not json", '{"a": 1}', "[1, 2]", "[" * 100_000])
def test_unreadable_form_annotation_is_one_problem_and_one_import_error(annotation):
    from cvatflow.templates.render import PARAMETERS_ANNOTATION

    doc = dag_template()
    doc["metadata"]["annotations"] = {PARAMETERS_ANNOTATION: annotation}
    assert [p.path for p in errors_only(validate(doc))] == [f"metadata.annotations.{PARAMETERS_ANNOTATION}"]
    with pytest.raises(TemplateError, match="is not a JSON list of parameters"):
        load_dict(doc)


def test_onepanel_options_of_the_wrong_type_are_one_clear_error():
    body = {"entrypoint": "main", "templates": [container("main")],
            "arguments": {"parameters": [{"name": "model", "type": "select.select", "options": 5}]}}
    with pytest.raises(TemplateError, match=r"parameters\[0\] \(model\): `options` must be a list"):
        load_dict(body)


# Any YAML tree: the only outcomes are a result or a CvatflowError.
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12),
                    st.sampled_from(["main", "{{workflow.parameters.x}}", "{{inputs.parameters.y}}", "sh", "-c",
                                     "WorkflowTemplate", "Workflow", "CronWorkflow"]))
KEYS = ["apiVersion", "kind", "metadata", "name", "generateName", "spec", "entrypoint", "templates", "dag", "tasks",
        "steps", "container", "script", "arguments", "parameters", "options", "value", "enum", "inputs",
        "outputs", "artifacts", "depends", "dependencies", "template", "templateRef", "command", "args",
        "annotations", "labels", "workflowTemplateRef", "workflowSpec", "schedules", "items", "type", "sidecars"]
trees = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=5)), max_leaves=30)
kinds = st.sampled_from([None, "Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow", "List"])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(tree=trees, kind=kinds, spec=trees)
def test_any_yaml_tree_gives_a_result_or_a_cvatflow_error(tree, kind, spec):
    doc = {"kind": kind, "metadata": {"name": "x"}, "spec": spec} if kind else tree
    if kind and isinstance(tree, dict):
        doc["spec"] = {**tree, "templates": [spec]}
    text = yaml.safe_dump(doc)
    tracemalloc.start()
    try:
        assert isinstance(validate(doc), list)
        try:
            template = load_text(text, source="fuzz.yaml")
        except CvatflowError as exc:
            assert str(exc).startswith("fuzz.yaml")  # names the input
        else:
            assert isinstance(form(template), list)
            assert isinstance(validate(template), list)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024  # a small manifest never costs more than this


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(tree=trees, kind=kinds)
def test_cli_on_any_yaml_tree_exits_cleanly(tree, kind, tmp_path_factory, cli):
    path = tmp_path_factory.mktemp("fuzz") / "any.yaml"
    path.write_text(yaml.safe_dump_all([{"kind": kind, "spec": tree} if kind else tree, tree]))
    for args in (("templates", "validate", path), ("templates", "import", path, "--name", "x"),
                 ("templates", "form", path)):
        result = cli(*args)
        assert result.code in (0, 1) and "Traceback" not in result.out + result.err, (args, result)


@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet="[]{}:,-?&*!|>'\"#%@ \nab1", max_size=80))
def test_any_text_gives_documents_or_one_template_error(text):
    try:
        assert isinstance(load_documents(text, "x.yaml"), list)
    except TemplateError as exc:
        assert str(exc).startswith("x.yaml: ") and "\n" not in str(exc)


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize("text, expected", [
    (BILLION_LAUGHS, "aliases expand to over"),
    ("a: " + "[" * 5000 + "]" * 5000, "nesting"),  # ours, or libyaml's own limit that its scanner meets first
    ("a:\n" + "".join(" " * i + "- \n" for i in range(0, 600, 2)), "nesting deeper than"),
    ("a: &r [*r]", "recursive"),
    ("? [a]\n: b", "mapping key must be a plain value"),
])
def test_yaml_bombs_are_one_error_within_a_memory_bound(text, expected):
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match=expected):
            load_documents(text, "bomb.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024


def test_a_dict_nested_too_deep_is_one_problem_not_a_recursion_error():
    template = {"name": "x", "container": {"image": "a"}}
    for _ in range(100):
        template = {"name": "s", "steps": [[{"name": "a", "inline": template}]]}
    doc = workflow("WorkflowTemplate", name="deep", spec={"templates": [template]})
    assert [p.message for p in validate(doc)] == ["nests deeper than 200 levels"]


def test_encodings_and_size(cli, tmp_path):
    text = yaml.safe_dump(SNAKE)
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    assert cli("templates", "validate", utf16).code == 0
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(text.replace("train-snake", "tr\xe4in").encode("latin-1"))
    result = cli("templates", "validate", latin)
    assert result.code == 1 and "not UTF-8 text" in result.err and len(result.err.strip().splitlines()) == 1
    with pytest.raises(TemplateError, match="over the"):
        decode(b"a" * (MAX_BYTES + 1), "big.yaml")


def test_import_into_a_missing_folder_is_one_error(cli, tmp_path):
    case = SHARED / "cases" / "argo" / "snake-case-parameter-names.yaml"
    result = cli("templates", "import", case, "--name", "x", "-o", tmp_path / "nope" / "t.yaml")
    assert result.code == 1 and "does not exist" in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


# Values as written: render -> import -> render keeps them byte for byte.
YAML11 = ["3.10", "010", "on", "off", "yes", "1e3", "12:30", "null", "~", "0x1F", "0o17", "1_000", "+1", ".5", "y"]


def test_unquoted_values_import_as_their_source_text():
    body = ("entrypoint: main\narguments:\n  parameters:\n" + "".join(
        f"  - name: p{i}\n    value: {v}\n" for i, v in enumerate(YAML11))
        + "  - name: pick\n    value: 010\n    type: select.select\n    options:\n    - {name: on, value: on}\n"
        + "    - {name: eight, value: 010}\n"
        + "templates:\n- name: main\n  container: {image: alpine, command: [echo]}\n")
    template = load_text(body)
    values = {p.name: p.value for p in template.parameters}
    expected = {f"p{i}": ("" if v in ("null", "~") else v) for i, v in enumerate(YAML11)}
    assert {k: values[k] for k in expected} == expected
    assert template.parameter("pick").option_values == ["on", "010"]


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.sampled_from(YAML11), st.from_regex(r"[0-9.:eE+_xo-]{1,6}", fullmatch=True)),
                       min_size=1, max_size=5))
@example(values=YAML11[:5])
@example(values=YAML11[5:10])
@example(values=YAML11[10:])
def test_render_import_render_is_byte_stable(values):
    template = get_template("detr-training")
    for parameter, value in zip(template.parameters, values, strict=False):
        parameter.value = value
    first = to_yaml(template)
    again = load_text(first)
    assert to_yaml(again) == first
    assert [p.value for p in again.parameters][:len(values)] == [p.value for p in template.parameters][:len(values)]
    for doc in load_documents(first, "t"):  # and every reader sees strings: no value is written unquoted
        assert all(isinstance(p["value"], str) for p in doc["spec"]["arguments"]["parameters"])


# Onepanel's historic placeholders.
HISTORIC = """entrypoint: main
arguments:
  parameters:
  - {name: sys-node-pool, value: {{.DefaultNodePoolOption}}, type: select.nodepool}
templates:
- name: main
  nodeSelector:
    {{.NodePoolLabel}}: '{{workflow.parameters.sys-node-pool}}'
  container: {image: alpine, command: [echo]}
  outputs:
    artifacts:
    - name: out
      path: /mnt/output
      {{.ArtifactRepositoryType}}: {key: out}
"""


def test_placeholders_are_filled_from_the_config():
    from cvatflow.artifact_repository import ArtifactRepository
    from cvatflow.config import NodePools

    repository = ArtifactRepository.from_dict({"gcs": {"bucket": "b"}})
    pools = NodePools.from_dict({"label": "cloud.google.com/machine", "options": [{"name": "GPU", "value": "a2"}]})
    values = placeholder_values(repository, pools)
    text, notes = fill(HISTORIC, "old.yaml", values)
    assert "{{." not in text and len(notes) == 3
    template = load_text(HISTORIC, "old.yaml", repository=repository, node_pools=pools)
    main = template.spec["templates"][0]
    assert main["nodeSelector"] == {"cloud.google.com/machine": "{{workflow.parameters.sys-node-pool}}"}
    assert main["outputs"]["artifacts"][0]["gcs"]["bucket"] == "b"
    assert template.parameter("sys-node-pool").value == "a2"


def test_node_pool_placeholders_without_pools_take_cvatflows_default():
    from cvatflow.config import NodePools

    text, notes = fill(HISTORIC.replace("{{.ArtifactRepositoryType}}", "s3"), "old.yaml",
                       placeholder_values(None, NodePools()))
    assert "value: default," in text and "node.kubernetes.io/instance-type:" in text
    assert any("none configured" in note for note in notes)


def test_placeholder_without_a_value_and_unknown_placeholder_are_one_clear_error():
    with pytest.raises(TemplateError, match=r"\{\{\.ArtifactRepositoryType\}\} has no value; configure the artifact"):
        load_text(HISTORIC, "old.yaml")
    with pytest.raises(TemplateError, match=r"unknown Go-template placeholder \{\{\.Namespace\}\}"):
        load_text(HISTORIC.replace("{{.NodePoolLabel}}", "{{.Namespace}}"), "old.yaml")
    with pytest.raises(TemplateError, match=r"unknown Go-template placeholder \{\{\.Namespace\}\}"):
        load_text("entrypoint: {{.Namespace}}\ntemplates: []\n", "old.yaml")


# Injection warnings: every common way of starting a shell or interpreter, in every kind of container.
SPLICE = "{{workflow.parameters.epochs}}"


@pytest.mark.parametrize("where, body", [
    ("container", {"command": ["sh", "-c"], "args": [f"train --epochs {SPLICE}"]}),
    ("container", {"command": ["bash", "-c", f"train --epochs {SPLICE}"]}),
    ("container", {"command": ["/bin/bash", "-lc", f"train {SPLICE}"]}),
    ("container", {"command": ["/usr/bin/env", "bash", "-c", f"train {SPLICE}"]}),
    ("container", {"command": ["python3", "-c", f"print({SPLICE})"]}),
    ("script", {"command": ["python"], "source": f"print({SPLICE})"}),
    ("initContainers", {"name": "i", "command": ["sh", "-c", f"echo {SPLICE}"]}),
    ("sidecars", {"name": "s", "command": ["bash", "-c", f"echo {SPLICE}"]}),
])
def test_parameter_spliced_into_a_shell_is_warned(where, body):
    doc = dag_template()
    step = doc["spec"]["templates"][1]
    body = {"image": "alpine", **body}
    if where in ("initContainers", "sidecars"):
        step[where] = [body]
    else:
        step.pop("container")
        step[where] = body
    problems = validate(doc)
    assert errors_only(problems) == []
    assert [p for p in problems if "command injection" in p.message and "cvatflow's rule" in p.message]


def test_parameter_passed_as_an_argument_is_not_warned():
    doc = dag_template()
    doc["spec"]["templates"][1]["container"]["command"] = ["sh", "train.sh", "-c"]
    assert not [p for p in validate(doc) if "command injection" in p.message]


def test_objects_expands_lists_and_labels_documents():
    found = objects([{"kind": "List", "items": [1, 2]}, {"kind": "Workflow"}])
    assert [label for label, _ in found] == ["document 1 items[0]", "document 1 items[1]", "document 2"]


def test_render_of_builtin_templates_is_unchanged_by_the_new_loader():
    for name in ("detr-training", "maskrcnn-training"):
        template = get_template(name)
        assert load_documents(to_yaml(template), name)[0] == render(template)


@pytest.mark.parametrize("kind", ["WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"])
def test_generate_name_is_a_warning_about_kubectl_apply_not_a_refusal(kind):
    # `kubectl create` accepts generateName on any kind; only `kubectl apply` needs metadata.name.
    manifest = workflow(kind, generateName="my-tpl-")
    if kind == "CronWorkflow":
        manifest["spec"] = CRON["spec"]
    problems = validate(manifest)
    assert errors_only(problems) == []
    [warning] = [p for p in problems if "generateName" in str(p)]
    text = str(warning)
    assert "`kubectl apply` needs metadata.name" in text and "`kubectl create` accepts" in text
    assert "cvatflow's check" in text and "refuse" not in text
    assert not [p for p in validate(workflow(generateName="run-")) if "name" in str(p)]  # Workflows: argo submit


def test_no_name_at_all_is_what_kubernetes_refuses():
    [warning] = [p for p in validate(workflow("WorkflowTemplate", labels={"a": "b"})) if "metadata" in str(p)]
    assert "neither metadata.name nor metadata.generateName" in str(warning)
    assert "Kubernetes will refuse" in str(warning)
