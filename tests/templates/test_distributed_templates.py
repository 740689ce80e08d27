"""Multi-GPU and multi-node templates: torchrun argv, /dev/shm, the JobSet resource step, its conditions, the
JobSet API check, and the local executor running them as torchrun on gloo."""
from __future__ import annotations

import asyncio
import json
import re
import sys

import jsonschema
import pytest
import yaml

from cvatflow.config import NodePool, NodePools
from cvatflow.errors import ProblemsError, RunError
from cvatflow.params import autofill
from cvatflow.templates import get_template, render
from cvatflow.templates.jobset import (
    FAILURE,
    RDZV_PORT,
    SUCCESS,
    jobset_manifest,
    local_pod,
    manifest_text,
    missing_api_message,
    nodes_asked,
    substituted,
)
from cvatflow.templates.selector import SelectorError, parse
from cvatflow.templates.steps import TrainStep, launched_program, training_template
from cvatflow.templates.validate import validate
from paths import ROOT

SCHEMAS = ROOT.parent / "shared" / "schemas"
JOBSET_CRD = SCHEMAS / "jobset.x-k8s.io_jobsets.v0.12.0.yaml"
JOBSETS = "jobset.x-k8s.io/v1alpha2/jobsets"


def templates_of(name: str) -> dict[str, dict]:
    return {t["name"]: t for t in render(get_template(name))["spec"]["templates"]}


# -- one pod, N processes ----------------------------------------------------------------------------------------

def test_train_step_with_n_gpus_runs_torchrun_with_n_processes_and_scaled_requests():
    template = training_template("four-gpus", "Four GPUs", "", get_template("maskrcnn-training").parameters,
                                 TrainStep(model="maskrcnn", gpus=4))
    train = {t["name"]: t for t in render(template)["spec"]["templates"]}["train"]
    assert train["container"]["command"] == ["cvatflow-train", "torchrun", "--standalone", "--nproc-per-node=4",
                                             "--no-python", "cvatflow-train", "maskrcnn", "train"]
    assert train["container"]["args"][:4] == ["--data", "/mnt/data/datasets", "--output", "/mnt/output"]
    # Requests scale with the processes, one GPU each; /dev/shm room for each.
    assert train["container"]["resources"] == {"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "4"},
                                               "limits": {"nvidia.com/gpu": "4"}}
    assert train["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}]
    assert validate(template) == []  # no `gpus` parameter: the count is fixed
    assert not template.has_parameter("gpus")
    # Its multi-node form starts the same 4 processes on each pod.
    jobset = substituted(render(template)["spec"]["templates"][4]["resource"]["manifest"], sample_values(gpus="x"))
    main = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "PET_NPROC_PER_NODE", "value": "4"} in main["env"]


def test_builtin_train_steps_mount_a_memory_backed_dev_shm_with_a_size_limit():
    for name in ("maskrcnn-training", "detr-training", "rtdetr-training"):
        templates = templates_of(name)
        for step in ("train", "train-from-checkpoint"):
            tpl = templates[step]
            assert {"mountPath": "/dev/shm", "name": "dshm"} in tpl["container"]["volumeMounts"], (name, step)
            assert tpl["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}]
            command = tpl["container"]["command"]
            assert command[:5] == ["cvatflow-train", "torchrun", "--standalone",
                                   "--nproc-per-node={{workflow.parameters.gpus}}", "--no-python"]
            assert launched_program(command) == ["cvatflow-train", name.split("-")[0], "train"]
            # Parameter values stay separate args: no shell anywhere.
            assert "sh" not in command and "-c" not in command


def test_builtin_templates_have_gpus_and_nodes_parameters():
    template = get_template("maskrcnn-training")
    gpus, nodes = template.parameter("gpus"), template.parameter("nodes")
    assert (gpus.type, gpus.value) == ("select.select", "auto") and "2" in gpus.option_values
    assert (nodes.type, nodes.value, nodes.min) == ("input.number", "1", "1")


def test_gpus_auto_takes_the_node_pools_gpu_count_and_the_patch_asks_that_many():
    pools = NodePools(pools=[NodePool("A100", "p4d.24xlarge", {"limits": {"nvidia.com/gpu": 8}})])
    filled = autofill(get_template("maskrcnn-training"), annotation_path="a/", num_classes=2, node_pools=pools)
    assert filled.values["gpus"] == "8"
    patch = json.loads(filled.values["sys-node-pool-patch"])
    assert patch["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    # The JobSet's pods get the same placement through their own hidden parameters.
    assert json.loads(filled.values["sys-node-pool-selector"]) == {"node.kubernetes.io/instance-type": "p4d.24xlarge"}
    assert json.loads(filled.values["sys-node-pool-resources"])["limits"] == {"nvidia.com/gpu": "8"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in json.loads(
        filled.values["sys-node-pool-tolerations"])


def test_chosen_gpus_on_a_pool_without_resources_scale_requests_and_gpu_limit():
    pools = NodePools(pools=[NodePool("A10G x4", "g5.12xlarge", allocatable={"nvidia.com/gpu": "4", "cpu": "47",
                                                                                "memory": "186Gi"})])
    filled = autofill(get_template("maskrcnn-training"), {"gpus": "2"}, annotation_path="a/", num_classes=2,
                      node_pools=pools)
    resources = json.loads(filled.values["sys-node-pool-patch"])["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"nvidia.com/gpu": "2"}}


def test_more_gpus_than_a_node_of_the_pool_has_is_refused_before_submission():
    pools = NodePools(pools=[NodePool("A10G x4", "g5.12xlarge", allocatable={"nvidia.com/gpu": "4", "cpu": "47",
                                                                                "memory": "186Gi"})])
    with pytest.raises(ProblemsError, match="nvidia.com/gpu 8 but a node allocates 4"):
        autofill(get_template("maskrcnn-training"), {"gpus": "8"}, annotation_path="a/", num_classes=2,
                 node_pools=pools)
    small = NodePools(pools=[NodePool("T4", "g4dn.xlarge", allocatable={"nvidia.com/gpu": "4", "cpu": "3920m",
                                                                         "memory": "14Gi"})])
    with pytest.raises(ProblemsError, match="cpu 4 but a node allocates 3.92"):  # 1 CPU per process
        autofill(get_template("maskrcnn-training"), {"gpus": "4"}, annotation_path="a/", num_classes=2,
                 node_pools=small)


def test_gpus_auto_without_node_pools_is_one_process_and_nodes_must_be_whole():
    filled = autofill(get_template("maskrcnn-training"), {"nodes": "2.0"}, annotation_path="a/", num_classes=2)
    assert (filled.values["gpus"], filled.values["nodes"]) == ("1", "2")
    with pytest.raises(ProblemsError, match="Nodes must be a whole number"):
        autofill(get_template("maskrcnn-training"), {"nodes": "1.5"}, annotation_path="a/", num_classes=2)
    with pytest.raises(ProblemsError, match="Nodes"):
        autofill(get_template("maskrcnn-training"), {"nodes": "0"}, annotation_path="a/", num_classes=2)


# -- across nodes: the JobSet resource step ------------------------------------------------------------------------

def sample_values(nodes: str = "2", gpus: str = "4") -> dict[str, str]:
    """What Argo has substituted by the time the manifest reaches the API server."""
    return {"workflow.parameters.nodes": nodes, "workflow.parameters.gpus": gpus,
            "workflow.parameters.image": "ghcr.io/cvatflow/maskrcnn:0.1.0",
            "workflow.parameters.cvat-output-path": "outputs/task-3", "workflow.name": "maskrcnn-training-x7k2p",
            "workflow.serviceAccountName": "cvatflow-workflow",
            "workflow.parameters.cvat-model": "maskrcnn_resnet50_fpn_v2", "workflow.parameters.cvat-num-classes": "3",
            "workflow.parameters.epochs": "20", "workflow.parameters.batch-size": "2",
            "workflow.parameters.hyperparameters": "val_every: 1\n",
            "workflow.parameters.cvat-finetune-checkpoint": "outputs/task-3/earlier",
            "workflow.parameters.sys-node-pool-selector": '{"node.kubernetes.io/instance-type":"p4d.24xlarge"}',
            "workflow.parameters.sys-node-pool-tolerations":
                '[{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedule"}]',
            "workflow.parameters.sys-node-pool-resources": '{"limits":{"nvidia.com/gpu":"4"}}'}


def jobset_schema() -> dict:
    crd = yaml.safe_load(JOBSET_CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha2")
    return version["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("step", ["train-jobset", "train-jobset-from-checkpoint"])
def test_the_jobset_the_resource_step_creates_is_valid_against_the_jobset_crd(step):
    resource = templates_of("maskrcnn-training")[step]["resource"]
    assert (resource["action"], resource["setOwnerReference"]) == ("create", True)
    assert (resource["successCondition"], resource["failureCondition"]) == (SUCCESS, FAILURE)
    doc = substituted(resource["manifest"], sample_values())
    jsonschema.validate(doc, jobset_schema())
    job = doc["spec"]["replicatedJobs"][0]["template"]["spec"]
    # Integers and the node pool's JSON arrive as YAML values, not strings (the placeholders are unquoted).
    assert (job["completionMode"], job["parallelism"], job["completions"]) == ("Indexed", 2, 2)
    pod = job["template"]["spec"]
    assert pod["nodeSelector"] == {"node.kubernetes.io/instance-type": "p4d.24xlarge"}
    main = pod["containers"][0]
    assert main["resources"] == {"limits": {"nvidia.com/gpu": "4"}}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in main["volumeMounts"]
    assert next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]["medium"] == "Memory"
    assert job["template"]["metadata"]["labels"]["workflows.argoproj.io/workflow"] == "maskrcnn-training-x7k2p"


def test_rendezvous_environment_names_pod_zero_of_the_jobsets_headless_service():
    doc = substituted(templates_of("detr-training")["train-jobset"]["resource"]["manifest"], sample_values())
    name, replicated = doc["metadata"]["name"], doc["spec"]["replicatedJobs"][0]["name"]
    assert doc["spec"]["network"]["enableDNSHostnames"] is True
    main = doc["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in main["env"]}
    # JobSet's pod hostnames: <jobset>-<replicatedJob>-<job index>-<pod index>.<subdomain = jobset name>
    assert env["PET_RDZV_ENDPOINT"] == f"{name}-{replicated}-0-0.{name}:{RDZV_PORT}"
    assert {"containerPort": RDZV_PORT, "name": "rendezvous"} in main["ports"]
    assert (env["PET_RDZV_BACKEND"], env["PET_NNODES"], env["PET_NPROC_PER_NODE"]) == ("c10d", "2", "4")
    assert env["PET_NODE_RANK"]["fieldRef"]["fieldPath"].endswith("['batch.kubernetes.io/job-completion-index']")
    # Rank 0's outputs go where a single-node run's output artifact goes: <cvat-output-path>/<workflow name>.
    assert main["command"][:5] == ["cvatflow", "store", "sync", "/mnt/output", f"outputs/task-3/{name}"]
    assert launched_program(main["command"][main["command"].index("--") + 1:])[:3] == [
        "cvatflow-train", "detr", "train"]


def test_jobset_pods_pull_the_shared_dataset_and_earlier_checkpoints_first():
    doc = substituted(templates_of("maskrcnn-training")["train-jobset-from-checkpoint"]["resource"]["manifest"],
                      sample_values())
    pod = doc["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    pulls = [c["command"][3:] for c in pod["initContainers"]]
    run = "outputs/task-3/maskrcnn-training-x7k2p"
    assert pulls == [[f"{run}/shared", "/mnt/data/shared"],
                     ["--missing-ok", f"{run}/checkpoints", "/mnt/output/checkpoints"],
                     ["outputs/task-3/earlier", "/mnt/data/models"]]
    publish = templates_of("maskrcnn-training")["publish-dataset"]
    assert publish["outputs"]["artifacts"][0]["s3"]["key"] == (
        "{{workflow.parameters.cvat-output-path}}/{{workflow.name}}/shared")
    # Free text (the hyperparameters YAML) reaches the pods as a file, never pasted into the manifest.
    assert publish["inputs"]["artifacts"][1]["raw"]["data"] == "{{workflow.parameters.hyperparameters}}"
    main = pod["containers"][0]["command"]
    assert main[main.index("--hyperparameters") + 1] == "/mnt/data/shared/hyperparameters.yaml"
    assert main[main.index("--data") + 1] == "/mnt/data/shared/dataset"
    manifest = templates_of("maskrcnn-training")["train-jobset"]["resource"]["manifest"]
    assert "hyperparameters}}" not in manifest


def test_values_that_could_break_out_of_the_manifest_are_refused():
    with pytest.raises(ProblemsError, match="goes into a Kubernetes manifest") as excinfo:
        autofill(get_template("maskrcnn-training"), {"image": "evil:1'\n  privileged: true"}, annotation_path="a/",
                 num_classes=2)
    assert [p.path for p in excinfo.value.problems] == ["image"]
    # Multi-line hyperparameters are fine: they travel as a file.
    autofill(get_template("maskrcnn-training"), {"hyperparameters": "lr: 0.001\n# a comment: 'quoted'\n"},
             annotation_path="a/", num_classes=2)


def test_the_dag_takes_the_jobset_only_above_one_node():
    doc = render(get_template("maskrcnn-training"))
    tasks = {t["name"]: t for t in next(t for t in doc["spec"]["templates"] if t["name"] == "main")["dag"]["tasks"]}
    assert tasks["train"]["when"].endswith("{{workflow.parameters.nodes}} <= 1")
    assert tasks["train-nodes"]["when"].endswith("{{workflow.parameters.nodes}} > 1")
    assert tasks["train-nodes"]["depends"] == "publish-dataset"


# -- success/failure conditions: the label-selector grammar ---------------------------------------------------------

@pytest.mark.parametrize("text", [SUCCESS, FAILURE, "status.phase == Succeeded", "status.succeeded > 0",
                                  "status.failed > 3", "status.replicaStatuses.Master.succeeded > 0",
                                  "status.phase in (Failed, Error)", "!status.x, status.y", "a=", "x notin ()",
                                  "example.com/key = v", "status.succeeded>0", "status.phase!=Failed,x", ""])
def test_conditions_argo_accepts_parse(text):
    parse(text)


@pytest.mark.parametrize("text, message", [
    ('status.conditions.#(type=="Complete").status = True', "name part must consist"),
    ("status.phase = Succeeded Failed", "expected: ',' or 'end of string'"),
    ("status.succeeded > one", "must be an integer"),
    ("status.phase = Not Done", "expected: ',' or 'end of string'"),
    ("= Completed", "expected: !, identifier"),
    ("status.phase in Failed", "expected: '('"),
    ("status.x = " + "v" * 64, "no more than 63 characters"),
])
def test_conditions_argo_refuses_fail_with_its_message(text, message):
    with pytest.raises(SelectorError, match=re.escape(message)):
        parse(text)


def resource_template(condition: str) -> dict:
    doc = render(get_template("maskrcnn-training"))
    tpl = next(t for t in doc["spec"]["templates"] if t["name"] == "train-jobset")
    tpl["resource"]["successCondition"] = condition
    return doc


def test_validate_refuses_a_condition_argo_cannot_parse_and_warns_when_a_placeholder_might_fix_it():
    problems = validate(resource_template('status.conditions.#(type=="Complete").status = True'))
    assert [p.severity for p in problems] == ["error"]
    assert problems[0].path.endswith("resource.successCondition") and "label selector" in problems[0].message
    warned = validate(resource_template("status.phase = {{workflow.parameters.epochs}} x"))
    assert [p.severity for p in warned] == ["warning"]
    assert validate(resource_template("status.terminalState = {{workflow.parameters.epochs}}")) == []


def test_validate_refuses_a_manifest_that_is_not_yaml():
    doc = render(get_template("maskrcnn-training"))
    next(t for t in doc["spec"]["templates"] if t["name"] == "train-jobset")["resource"]["manifest"] = "a: [b"
    assert [p.path.split(".")[-1] for p in validate(doc)] == ["manifest"]


# -- the JobSet API must exist before a multi-node run is submitted ------------------------------------------------

def kube_backend(kmock):
    from kubernetes import client

    from cvatflow.runs.kubernetes import KubernetesBackend

    config = client.Configuration()
    config.host = str(kmock.url)
    return KubernetesBackend("ml", api=client.ApiClient(config))


def declare(kmock, jobset: bool) -> None:
    info = kmock.ResourceInfo
    verbs = {"list", "watch", "get", "patch", "create", "delete"}
    kmock.resources["argoproj.io/v1alpha1/workflows"] = info(kind="Workflow", namespaced=True, verbs=verbs)
    if jobset:
        kmock.resources[JOBSETS] = info(kind="JobSet", namespaced=True, verbs=verbs)


def filled(nodes: str):
    return autofill(get_template("maskrcnn-training"), {"nodes": nodes}, annotation_path="a/", num_classes=2)


@pytest.mark.asyncio
async def test_kubernetes_backend_refuses_nodes_above_one_without_the_jobset_api(kmock):
    declare(kmock, jobset=False)
    backend = kube_backend(kmock)
    with pytest.raises(RunError, match=re.escape("does not serve the JobSet API (jobset.x-k8s.io/v1alpha2")):
        await asyncio.to_thread(backend.submit, filled("2"), "r-multi")
    assert ("argoproj.io/v1alpha1/workflows", "ml", "r-multi") not in kmock.objects
    await asyncio.to_thread(backend.submit, filled("1"), "r-single")  # one node needs nothing extra
    assert kmock.objects["argoproj.io/v1alpha1/workflows", "ml", "r-single"]["kind"] == "Workflow"


@pytest.mark.asyncio
async def test_a_jobset_group_without_jobsets_in_it_is_no_jobset_api(kmock):
    from cvatflow.templates.jobset import api_served

    declare(kmock, jobset=False)
    kmock.resources["jobset.x-k8s.io/v1alpha2/otherthings"] = kmock.ResourceInfo(
        kind="OtherThing", namespaced=True, verbs={"get"})
    assert await asyncio.to_thread(api_served, kube_backend(kmock).api) is False


@pytest.mark.asyncio
async def test_kubernetes_backend_submits_nodes_above_one_where_jobset_is_served(kmock):
    declare(kmock, jobset=True)
    await asyncio.to_thread(kube_backend(kmock).submit, filled("2"), "r-multi")
    workflow = kmock.objects["argoproj.io/v1alpha1/workflows", "ml", "r-multi"]
    assert {"name": "nodes", "value": "2"} in workflow["spec"]["arguments"]["parameters"]


@pytest.mark.asyncio
async def test_the_operator_marks_a_multi_node_run_invalid_without_the_jobset_api_and_dumps_nothing(kmock):
    from kubernetes import client

    from controller_fixtures import call, make_deps, training_run
    from cvatflow.controller import handlers

    declare(kmock, jobset=False)
    deps = make_deps()
    config = client.Configuration()
    config.host = str(kmock.url)
    deps.cluster.api = client.ApiClient(config)  # discovery goes to kmock; the rest stays in memory
    body = training_run(parameters={"epochs": "3", "cvat-model": "detr_small", "nodes": "3"})
    status = await asyncio.to_thread(call, handlers.reconcile, body, deps)
    assert status["phase"] == "Invalid"
    assert "nodes=3 trains on a JobSet" in json.dumps(status)
    assert deps.cluster.creates == 0 and deps.dump.calls == []


def test_missing_api_message_says_how_to_fix_it():
    text = missing_api_message(2)
    assert "install JobSet" in text and "nodes=1" in text and "jobset.enabled=true" in text
    assert (nodes_asked({"nodes": "2"}), nodes_asked({"nodes": "2.0"}), nodes_asked({})) == (2, 2, 1)


# -- locally: torchrun with gloo on the CPU ----------------------------------------------------------------------

FAKE_TRAIN = """
import json, os, sys
args = sys.argv[1:]
out = args[args.index("--output") + 1]
os.makedirs(out, exist_ok=True)
import torch.distributed as dist
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
import torch
t = torch.tensor([rank + 1.0])
dist.all_reduce(t)
with open(os.path.join(out, f"rank-{rank}.json"), "w") as f:
    h = args[args.index("--hyperparameters") + 1]
    json.dump({"world": world, "sum": t.item(), "data": sorted(os.listdir(args[args.index("--data") + 1])),
               "hyperparameters": open(h).read() if os.path.isfile(h) else h}, f)
dist.destroy_process_group()
"""


def run_locally(tmp_path, values):
    from cvatflow.datasets.synth import make_export
    from cvatflow.datasets.upload import upload_dataset
    from cvatflow.local import LocalExecutor

    store = (tmp_path / "store").as_uri()
    prefix, _ = upload_dataset(make_export(tmp_path / "shapes.zip", images=6, seed=0, size=64), store)
    fake = tmp_path / "fake_train.py"
    fake.write_text(FAKE_TRAIN)
    template = get_template("maskrcnn-training")
    filled_values = autofill(template, values, annotation_path=prefix, num_classes=3).values
    executor = LocalExecutor(tmp_path / "runs", store, entry_points={"cvatflow-train": [sys.executable, str(fake)]})
    run_dir = executor.create(render(template), dict(filled_values), "run-1")
    return executor.execute(run_dir), tmp_path / "store" / "outputs" / "run-1", run_dir


@pytest.mark.slow
def test_local_executor_runs_a_two_gpu_train_step_as_two_gloo_ranks(tmp_path):
    status, output, run_dir = run_locally(tmp_path, {"gpus": "2"})
    assert status["phase"] == "Succeeded", (status, (run_dir / "logs" / "train.log").read_text()[-2000:])
    assert status["nodes"]["train-nodes"]["phase"] == "Skipped"
    ranks = [json.loads((output / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and ranks[0]["sum"] == 3.0  # 1 + 2: they talked


@pytest.mark.slow
def test_local_executor_runs_the_multi_node_jobset_step_as_one_standalone_torchrun(tmp_path):
    status, output, run_dir = run_locally(tmp_path, {"nodes": "2"})
    log = (run_dir / "logs" / "train-nodes.log").read_text() if (run_dir / "logs" / "train-nodes.log").exists() else ""
    assert status["phase"] == "Succeeded", (status["nodes"], log[-2000:])
    assert [status["nodes"][t]["phase"] for t in ("train", "publish-dataset", "train-nodes")] == [
        "Skipped", "Succeeded", "Succeeded"]
    ranks = [json.loads((output / f"rank-{r}.json").read_text()) for r in (0, 1)]  # synced to the run's key
    assert [r["world"] for r in ranks] == [2, 2]
    assert "annotations" in ranks[0]["data"]  # the dataset came from the store, published by publish-dataset
    assert "val_every: 1" in ranks[0]["hyperparameters"]  # the form's YAML, as a file
    assert (output / "shared" / "dataset" / "annotations").is_dir()


def test_local_pod_makes_the_jobsets_torchrun_standalone_with_every_worker():
    doc = substituted(manifest_text(jobset_manifest(TrainStep(model="detr", gpus="{{workflow.parameters.gpus}}"),
                                                    finetune=False)),
                      sample_values(nodes="3", gpus="2"))
    containers = local_pod(doc)
    assert [c["name"] for c in containers] == ["pull-dataset", "pull-checkpoints", "main"]
    command = containers[-1]["command"]
    at = command.index("torchrun")
    assert command[at - 1:at + 4] == ["cvatflow-train", "torchrun", "--standalone", "--nproc-per-node=6",
                                      "--no-python"]


# -- the Helm chart: JobSet is optional, and so is its RBAC --------------------------------------------------------

def test_the_chart_grants_jobsets_to_the_workflow_service_account_only_when_enabled():
    from chart_fixtures import render as helm_render
    from chart_fixtures import rules_of

    def workflow_rules(values):
        docs = helm_render(values)
        return rules_of(next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "cvatflow-workflow"))

    assert ("jobset.x-k8s.io", "jobsets") not in workflow_rules(None)
    rules = workflow_rules({"jobset": {"enabled": True}})
    # What Argo's resource step does with it: create, then watch to the terminal state. Nothing cluster-wide.
    assert rules[("jobset.x-k8s.io", "jobsets")] == {"create", "get", "list", "watch"}
    assert not [d for d in helm_render({"jobset": {"enabled": True}}) if d["kind"].startswith("Cluster")]


def test_the_chart_values_schema_refuses_a_mistyped_jobset_option():
    import subprocess

    from chart_fixtures import CHART, helm

    done = subprocess.run([helm(), "lint", "--strict", str(CHART), "--set", "jobset.enabld=true"],
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "enabld" in done.stdout + done.stderr


@pytest.mark.slow
def test_cvatflow_run_with_two_gpus_trains_the_real_harness_under_torchrun_on_the_cpu(cli, tmp_path, monkeypatch):
    """`cvatflow run maskrcnn-training --data export.zip -p gpus=2` end to end: two gloo ranks of the training
    harness (rank 0 writes once the harness is DDP-aware; before that both ranks train the same model)."""
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    export = tmp_path / "shapes.zip"
    assert cli("dataset", "synth", "--out", export, "--images", "8", "--size", "64").code == 0
    result = cli("run", "maskrcnn-training", "--data", export, "--name", "ddp-run", "-p", "gpus=2",
                 "-p", "cvat-model=maskrcnn_resnet18_fpn", "-p", "epochs=1",
                 "-p", "hyperparameters=max_steps: 2\nimage_size: 64\nnum_workers: 0\nval_every: 1\n", "--wait")
    log = next((tmp_path / "home" / "runs" / "ddp-run" / "logs").glob("train.log")).read_text()
    assert result.code == 0, result.err + log[-3000:]
    assert "Setting OMP_NUM_THREADS environment variable for each process" in log  # torchrun started >1 worker
    store = tmp_path / "home" / "store" / "outputs" / "ddp-run"
    assert (store / "checkpoints" / "last.pt").is_file() and (store / "model").is_dir()


# -- `cvatflow store`: what the JobSet's pods run around training -------------------------------------------------

def test_store_sync_runs_the_command_uploads_what_it_wrote_and_keeps_its_exit_code(cli, tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.setenv("CVATFLOW_STORE", store.as_uri())
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    write = f"import pathlib; p = pathlib.Path({str(out)!r}) / 'checkpoints'; p.mkdir(parents=True); " \
            f"(p / 'last.pt').write_text('w'); raise SystemExit(3)"
    result = cli("store", "sync", out, "outputs/run-1", "--", sys.executable, "-c", write)
    assert result.code == 3  # the pod fails when training fails
    assert (store / "outputs" / "run-1" / "checkpoints" / "last.pt").read_text() == "w"  # and still uploads
    # A restarted pod pulls the checkpoints back; a first attempt has none, which is fine with --missing-ok.
    assert cli("store", "pull", "--missing-ok", "outputs/run-1/checkpoints", tmp_path / "again").code == 0
    assert (tmp_path / "again" / "last.pt").read_text() == "w"
    missing = cli("store", "pull", "--missing-ok", "outputs/run-2/checkpoints", tmp_path / "none")
    assert missing.code == 0 and "starting without it" in missing.out
    refused = cli("store", "pull", "outputs/run-2/dataset", tmp_path / "none")
    assert refused.code == 1 and "nothing there" in refused.err and "Traceback" not in refused.err
