"""Trace: every public parameter, set to a generated value through every entry point, reaches its step unchanged."""
from __future__ import annotations

import json
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_fixtures import client, settings_for, tiny_api, wait_for
from cvatflow.datasets.formats import DUMP_FORMATS
from cvatflow.one_value import FIELD_KEYS
from cvatflow.params import _runs_cvatflow_train, autofill
from cvatflow.templates import builtin_templates, load_file
from cvatflow.templates.parameter import CHOICE_TYPES, DUMP_FORMAT, FINETUNE_CHECKPOINT, NODE_POOL, Parameter
from cvatflow.templates.render import render, to_yaml
from cvatflow.templates.template import Template
from cvatflow.templates.trace import CONSUMED, step_pods, unused_parameters
from cvatflow.templates.validate import validate
from paths import DATA, onepanel_manifests

TEMPLATES = [*builtin_templates().values(), *(load_file(p) for p in onepanel_manifests())]
SEED = DATA / "onepanel" / "detr-training-seed.yaml"
SAFE = string.ascii_letters + string.digits + "-_."
# Keys of the training image's hyperparameters with values its schema accepts (the paired keys, set by
# their own form fields, are traced in test_one_value.py).
HP_VALUES = {
    "lr": st.floats(1e-6, 1.0), "weight_decay": st.floats(0, 1), "hflip": st.floats(0, 1),
    "seed": st.integers(0, 2**31), "image_size": st.integers(32, 2048), "warmup_steps": st.integers(0, 1000),
    "optimizer": st.sampled_from(["adamw", "sgd"]), "amp": st.sampled_from(["auto", "off", "bf16", "fp16"]),
    "val_every": st.floats(0.1, 10), "max_steps": st.none() | st.integers(1, 10**6),
    "deterministic": st.booleans(),
}


def traced(template: Template) -> list[Parameter]:
    """The public parameters a user sets (the node pool is mapped to its configured label value by design)."""
    return [p for p in template.public_parameters() if p.role != NODE_POOL]


def value_of(template: Template, p: Parameter, checkpoint: str | None = None) -> st.SearchStrategy[str]:
    if p.role == FINETUNE_CHECKPOINT and checkpoint is not None:
        return st.sampled_from(["", checkpoint])  # the store is asked whether it exists
    if p.name == "hyperparameters" and _runs_cvatflow_train(template):
        return st.dictionaries(st.sampled_from(sorted(HP_VALUES)), st.none(), max_size=5).flatmap(
            lambda keys: st.fixed_dictionaries({k: HP_VALUES[k] for k in keys})).map(
            lambda d: yaml.safe_dump(d, sort_keys=False))
    if p.role == DUMP_FORMAT:  # the entry points dump a real (fake) task: COCO, which every template reads
        return st.sampled_from(sorted(DUMP_FORMATS) if checkpoint is None else ["cvat_coco"])
    if p.type in CHOICE_TYPES and p.options:
        return st.sampled_from(p.option_values)
    if p.type == "input.number":
        low, high = p.bounds
        return st.integers(int(low if low is not None else 0), int(min(high if high is not None else 1000, 1000))
                           ).map(str)
    if p.type in ("editor.yaml", "textarea.textarea") or p.name == "hyperparameters":
        return st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=8),
                               st.integers(0, 99), min_size=1, max_size=3).map(yaml.safe_dump)
    return st.text(SAFE, min_size=1, max_size=16).filter(lambda v: v[0].isalnum())


def values_of(template: Template, checkpoint: str | None = None) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({p.name: value_of(template, p, checkpoint) for p in traced(template)})


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def check_reaches(template: Template, final: dict[str, str], wanted: dict[str, str]) -> None:
    """Each wanted value is what the run carries, and appears in a step's pod (or the training image's
    parsed hyperparameters, for the YAML) unchanged."""
    pods = step_pods(template, final)
    texts = [s for pod in pods.values() for s in strings(pod)]
    for name, value in wanted.items():
        if name == "gpus" and value == "auto":  # resolved from the node pool's GPU count (one without a pool)
            assert final[name].isdigit() and int(final[name]) >= 1, final[name]
            continue
        assert final[name] == value, f"{name}: {value!r} became {final[name]!r}"
        if template.parameter(name).role in CONSUMED or value == "":
            continue
        assert any(value in text for text in texts), f"{name}={value!r} reaches no step of {template.name}"
        if name == "hyperparameters" and _runs_cvatflow_train(template):
            from cvatflow.training.hyperparameters import parse

            args = pods["train"]["args"]
            parsed = parse(args[args.index("--hyperparameters") + 1])
            for key, expected in yaml.safe_load(value).items():
                assert getattr(parsed, key) == expected, key
        if name in FIELD_KEYS and "train" in pods and FIELD_KEYS[name] != "val_percent":
            args = pods["train"]["args"]
            assert args[args.index("--" + name) + 1] == value


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_every_public_parameter_reaches_its_step_unchanged(template):
    @settings(max_examples=15, deadline=None)
    @given(values_of(template))
    def trace(values):
        filled = autofill(template, values, annotation_path="annotations/1/x/", num_classes=2)
        check_reaches(template, filled.values, values)

    trace()


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_built_in_and_reference_templates_have_no_unused_parameters(template):
    assert unused_parameters(template.spec, template.parameters) == []


def test_templates_validate_warns_about_a_parameter_that_reaches_nothing():
    template = builtin_templates()["detr-training"]
    template.parameters.append(Parameter("learning-rate", "0.1", "Learning rate"))
    template.parameter("epochs").min = "ten"
    problems = {p.path: p for p in validate(template)}
    unused = problems["parameters.learning-rate"]
    assert unused.severity == "warning" and "no step uses this parameter" in unused.message
    assert problems["parameters.epochs.min"].severity == "error"
    assert "parameters.epochs" not in problems


# -- the same through every entry point ------------------------------------------------------------------

ENTRY = settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def no_start(monkeypatch):
    from cvatflow.local.executor import LocalExecutor

    monkeypatch.setattr(LocalExecutor, "start", lambda self, run_dir: 0)


@pytest.fixture
def home(tmp_path, fake_cvat, no_start, monkeypatch):
    """A served API (with the seed's Onepanel template installed) and what the other entry points need."""
    home = tmp_path / "home"
    (home / "templates").mkdir(parents=True)
    seed = load_file(SEED, name="detr-training-seed")
    (home / "templates" / "detr-training-seed.yaml").write_text(to_yaml(render(seed)))
    monkeypatch.setenv("CVATFLOW_HOME", str(home))
    from cvatflow.datasets.synth import make_export

    export = make_export(tmp_path / "export.zip", images=4, size=64)
    from cvatflow.runs.client import Client

    Client("local", settings=settings_for(home)).store.put_bytes(b"{}", CHECKPOINT + "model/config.json")
    with tiny_api(home, fake_cvat.url) as (url, _):
        yield {"home": home, "url": url, "export": export, "cvat": fake_cvat}


CHECKPOINT = "outputs/task-1/earlier-run/"
NAMES = ["maskrcnn-training", "detr-training", "detr-training-seed"]


def _template(name: str) -> Template:
    return load_file(SEED, name=name) if name == "detr-training-seed" else builtin_templates()[name]


def _local_run(home, name: str) -> dict[str, str]:
    return json.loads((home / "runs" / name / "workflow.json").read_text())["parameters"]


@pytest.mark.parametrize("name", NAMES)
def test_client_and_cli_carry_every_public_parameter(home, cli, name):
    from cvatflow.runs.client import Client

    template = _template(name)
    api = Client("local", settings=settings_for(home["home"]))
    count = iter(range(1000))

    @ENTRY
    @given(values_of(template, CHECKPOINT))
    def trace(values):
        run = api.execute(name, dataset=home["export"], parameters=values, name=f"c{next(count)}")
        check_reaches(template, _local_run(home["home"], run.name), values)
        run_name = f"c{next(count)}"
        args = [a for k, v in values.items() for a in ("-p", f"{k}={v}")]
        result = cli("run", name, "--data", home["export"], *args, "--local", "--name", run_name)
        assert result.code == 0, result.err
        check_reaches(template, _local_run(home["home"], run_name), values)

    trace()


@pytest.mark.parametrize("name", NAMES)
def test_http_api_and_cvat_dialog_carry_every_public_parameter(home, name):
    template = _template(name)

    @ENTRY
    @given(values_of(template, CHECKPOINT))
    def trace(values):
        with client(home["url"]) as http:
            answer = http.post("/api/v1/executions", json={"template": name, "cvatTask": home["cvat"].task_id,
                                                          "parameters": values})
            assert answer.status_code in (200, 201, 202), answer.text
            done = wait_for(lambda: (e := http.get(f"/api/v1/executions/{answer.json()['id']}").json())
                            ["phase"] != "Preparing" and e, timeout=60)
            check_reaches(template, done["parameters"], values)
            form = http.get(f"/onepanelio/workflow_templates/{name}/versions/0").json()
            dialog = {p["name"]: p["value"] for p in form["parameters"]} | values
            answer = http.post(f"/onepanelio/execute_workflow/{home['cvat'].task_id}",
                               json={"workflow_template": name, "parameters": dialog})
            assert answer.status_code == 200, answer.text
            # the answer's `url` is the web UI's run page (HTML); the execution itself is at the API
            execution = f"/api/v1/executions/{answer.json()['name']}"
            done = wait_for(lambda: (e := http.get(execution).json())["phase"] != "Preparing" and e, timeout=60)
            check_reaches(template, done["parameters"], values)

    trace()


@pytest.mark.parametrize("name", NAMES)
def test_the_operator_carries_every_public_parameter(name):
    from controller_fixtures import STORE, call, make_deps, training_run
    from cvatflow.controller import handlers

    template = _template(name)
    count = iter(range(1000))

    @settings(max_examples=5, deadline=None)
    @given(values_of(template))
    def trace(values):
        deps = make_deps()
        deps.checkpoint_exists = lambda prefix: True  # every generated checkpoint path is "in the store"
        deps.cluster.templates["ml", name] = render(template)
        run = f"r{next(count)}"
        given = values | ({"cvat-num-classes": "2"} if template.has_parameter("cvat-num-classes") else {}) | (
            {"sys-node-pool": "default"} if template.has_parameter(NODE_POOL) else {})
        status = call(handlers.reconcile, training_run(run, template=name, parameters=given,
                                                       source={"dataset": f"{STORE}/datasets/d/"}), deps)
        assert ("ml", run) in deps.cluster.workflows, status
        workflow = deps.cluster.workflows["ml", run]
        final = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
        check_reaches(template, final, values)

    trace()
