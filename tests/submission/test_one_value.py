"""One value per setting: a form field and its hyperparameters key, through auto-fill, CLI, Client, HTTP and the dialog."""
from __future__ import annotations

import json

import pytest

from api_fixtures import client, settings_for, tiny_api, wait_for
from cvatflow.errors import ProblemsError
from cvatflow.params import autofill
from cvatflow.templates import get_template
from cvatflow.templates.trace import step_pods

TEMPLATE = "maskrcnn-training"


def fill(values):
    return autofill(get_template(TEMPLATE), values)


def train_args(filled) -> list[str]:
    return step_pods(filled.template, filled.values)["train"]["args"]


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def trained_hyperparameters(args: list[str], monkeypatch):
    """What the training image parses from the train step's args (the real `cvatflow-train` CLI, no training)."""
    from cvatflow.training import cli, loop
    from cvatflow.training.hyperparameters import resolve

    seen = []
    monkeypatch.setattr(loop, "train", lambda run: seen.append(run))
    with pytest.raises(SystemExit) as done:
        cli.main(["maskrcnn", "train", *args])
    assert done.value.code == 0
    return resolve(seen[0].hyperparameters, None, seen[0].overrides)


def test_epochs_in_the_yaml_win_over_the_fields_default_and_reach_the_training_image(monkeypatch):
    filled = fill({"hyperparameters": "epochs: 1\nlr: 0.01\n"})
    args = train_args(filled)
    assert flag(args, "--epochs") == "1"
    hp, sources = trained_hyperparameters(args, monkeypatch)
    assert (hp.epochs, hp.lr) == (1, 0.01)
    assert sources["epochs"] == "hyperparameters and --epochs"
    assert filled.settings["epochs"].source == "you, in hyperparameters"
    assert filled.settings["batch_size"].source == "template default of batch-size"
    assert filled.settings["lr"].source == "you, in hyperparameters"
    recorded = json.loads(filled.annotations["cvatflow.io/hyperparameters"])
    assert recorded["epochs"] == {"value": "1", "source": "you, in hyperparameters"}


def test_a_field_the_user_set_wins_over_a_yaml_default():
    filled = fill({"epochs": "3", "batch-size": "8", "hyperparameters": "val_every: 1\namp: auto\n"})
    assert (flag(train_args(filled), "--epochs"), flag(train_args(filled), "--batch-size")) == ("3", "8")
    assert filled.settings["epochs"].source == "you, in epochs"


def test_two_different_user_values_are_one_error_naming_both():
    with pytest.raises(ProblemsError) as info:
        fill({"epochs": "3", "hyperparameters": "epochs: 1\n"})
    (problem,) = info.value.problems
    assert problem.path == "epochs"
    assert "epochs is 3" in problem.message and "epochs: 1" in problem.message


def test_the_same_value_in_both_places_is_fine_and_a_field_at_its_default_counts_as_unset():
    assert fill({"epochs": "4", "hyperparameters": "epochs: 4.0\n"}).values["epochs"] == "4"
    default = get_template(TEMPLATE).parameter("epochs").value
    filled = fill({"epochs": default, "hyperparameters": "epochs: 2\n"})  # the CVAT dialog sends every field
    assert filled.values["epochs"] == "2"


def test_val_percent_in_the_yaml_sets_the_dataset_steps_split():
    filled = fill({"hyperparameters": "val_percent: 25\n"})
    prepare = step_pods(filled.template, filled.values)["prepare-dataset"]["command"]
    assert prepare[prepare.index("--val-split") + 1] == "25"
    with pytest.raises(ProblemsError, match="val-split is 30"):
        fill({"val-split": "30", "hyperparameters": "val_percent: 25\n"})


@pytest.mark.parametrize("values, words", [
    ({"epochs": "-5"}, ["Epochs must be at least 1 and at most 100000", "-5"]),
    ({"batch-size": "0"}, ["Batch size must be at least 1"]),
    ({"val-split": "150"}, ["Validation split size must be at least 0 and at most 99"]),
    ({"epochs": "nan"}, ["finite number", "nan"]),
    ({"epochs": "inf"}, ["finite number"]),
    ({"epochs": "9" * 45_000}, ["45000 characters"]),
    ({"epochs": "2.5"}, ["epochs must be a int", "2.5"]),
    ({"hyperparameters": "epochs: -5\n"}, ["epochs must be at least 1 and at most 100000"]),
    ({"hyperparameters": "lr: .nan\n"}, ["lr must be greater than 0"]),
    ({"hyperparameters": "epochs: " + "9" * 45_000}, ["too many digits"]),
])
def test_out_of_range_values_are_refused_before_anything_runs(values, words):
    with pytest.raises(ProblemsError) as info:
        fill(values)
    text = str(info.value)
    assert len(info.value.problems) == 1, text
    assert len(text) < 400  # the 45,000 digits are not echoed back
    for word in words:
        assert word in text


def test_template_metadata_bounds_apply_to_imported_templates_too():
    template = get_template(TEMPLATE)
    template.parameter("batch-size").max = "16"
    with pytest.raises(ProblemsError, match="Batch size must be at least 1 and at most 16"):
        autofill(template, {"batch-size": "32"})


# -- the entry points ------------------------------------------------------------------------------------

@pytest.fixture
def no_start(monkeypatch):
    """Local runs are created but not started: what reaches the run is read back, nothing trains."""
    from cvatflow.local.executor import LocalExecutor

    monkeypatch.setattr(LocalExecutor, "start", lambda self, run_dir: 0)


@pytest.fixture
def export(tmp_path):
    from cvatflow.datasets.synth import make_export

    return make_export(tmp_path / "export.zip", images=4, size=64)


def test_cli_yaml_epochs_reach_the_run_and_runs_get_shows_the_source(cli, tmp_path, monkeypatch, no_start, export):
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    result = cli("run", TEMPLATE, "--data", export, "-p", "hyperparameters=epochs: 1", "--local",
                 "--name", "one-epoch")
    assert result.code == 0, result.err
    got = json.loads(cli("runs", "get", "one-epoch", "--local", "--json").out)
    assert got["parameters"]["epochs"] == "1"
    assert got["hyperparameters"]["epochs"] == {"value": "1", "source": "you, in hyperparameters"}
    shown = cli("runs", "get", "one-epoch", "--local").out
    assert "epochs: 1  (you, in hyperparameters)" in shown


def test_cli_two_values_for_epochs_is_one_error_line(cli, tmp_path, monkeypatch, no_start, export):
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    result = cli("run", TEMPLATE, "--data", export, "-p", "hyperparameters=epochs: 1", "-p", "epochs=3", "--local")
    assert result.code == 1
    assert "epochs is 3 but hyperparameters sets epochs: 1" in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "home" / "runs").exists() or not any((tmp_path / "home" / "runs").iterdir())


def test_client_records_the_effective_values(tmp_path, no_start, export):
    from cvatflow.runs.client import Client

    api = Client("local", settings=settings_for(tmp_path / "home"))
    run = api.execute(TEMPLATE, dataset=export, parameters={"hyperparameters": "batch_size: 3\n"})
    status = run.status()
    assert status.parameters["batch-size"] == "3"
    assert json.loads(status.annotations["cvatflow.io/hyperparameters"])["batch_size"]["source"] == \
        "you, in hyperparameters"
    with pytest.raises(ProblemsError, match="batch-size is 5"):
        api.execute(TEMPLATE, dataset=export, parameters={"batch-size": 5, "hyperparameters": "batch_size: 3\n"})


@pytest.fixture
def served(tmp_path, fake_cvat):
    with tiny_api(tmp_path / "home", fake_cvat.url) as (url, _):
        yield url


def test_http_api_and_cvat_dialog_take_the_yaml_value_and_refuse_two(served, fake_cvat, no_start):
    with client(served) as http:
        template = http.get(f"/onepanelio/workflow_templates/{TEMPLATE}/versions/0").json()
        dialog = {p["name"]: p["value"] for p in template["parameters"]}  # the dialog sends every field
        dialog["hyperparameters"] = "epochs: 1\n"
        answer = http.post(f"/onepanelio/execute_workflow/{fake_cvat.task_id}",
                           json={"workflow_template": TEMPLATE, "parameters": dialog})
        assert answer.status_code == 200, answer.text
        link = f"/api/v1/executions/{answer.json()['name']}"  # `url` is the web UI's run page
        execution = wait_for(lambda: (e := http.get(link).json())["parameters"] and e, timeout=60)
        assert execution["parameters"]["epochs"] == "1"
        assert execution["hyperparameters"]["epochs"] == {"value": "1", "source": "you, in hyperparameters"}

        both = dict(dialog, epochs="3")
        refused = http.post(f"/onepanelio/execute_workflow/{fake_cvat.task_id}",
                            json={"workflow_template": TEMPLATE, "parameters": both})
        assert refused.status_code == 422, refused.text
        assert "epochs is 3 but hyperparameters sets epochs: 1" in refused.text

        api = http.post("/api/v1/executions", json={"template": TEMPLATE, "cvatTask": fake_cvat.task_id,
                                                    "parameters": {"epochs": 3, "hyperparameters": "epochs: 1"}})
        assert api.status_code == 422
        assert [p["path"] for p in api.json()["problems"]] == ["epochs"]


def test_kubernetes_and_argo_server_workflows_carry_the_settings():
    from cvatflow.runs.kubernetes import status_from_workflow, workflow_object

    body = workflow_object(fill({"hyperparameters": "epochs: 1\n"}), "r1", "ml", output_prefix="s3://b/o/r1/")
    annotations = body["metadata"]["annotations"]
    assert json.loads(annotations["cvatflow.io/hyperparameters"])["epochs"]["value"] == "1"
    assert annotations["cvatflow.io/output-prefix"] == "s3://b/o/r1/"
    assert status_from_workflow(body).annotations == annotations
