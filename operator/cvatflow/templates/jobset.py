"""The JobSet that trains across nodes: an Indexed Job of `nodes` pods under torchrun's c10d rendezvous."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from hera.workflows import Resource

from cvatflow.nodepool import NODE_POOL_RESOURCES, NODE_POOL_SELECTOR, NODE_POOL_TOLERATIONS
from cvatflow.numbers import whole_number

if TYPE_CHECKING:
    from cvatflow.templates.steps import TrainStep

GROUP, VERSION, PLURAL = "jobset.x-k8s.io", "v1alpha2", "jobsets"
API_VERSION = f"{GROUP}/{VERSION}"
REPLICATED_JOB = "node"
RDZV_PORT = 29500
# Argo reads these with the Kubernetes label-selector grammar (validate.condition_problems checks them); JobSet's
# status.terminalState is a scalar, unlike conditions[], which that grammar cannot select by type.
SUCCESS = "status.terminalState = Completed"
FAILURE = "status.terminalState = Failed"
# Whole-set restarts after a lost pod; each restart resumes from the checkpoints synced to the store.
MAX_RESTARTS = 3
# The Secret whose keys become the pods' environment: CVATFLOW_STORE and the store's credentials (AWS_* or
# GOOGLE_APPLICATION_CREDENTIALS); optional, since SDK credentials through the service account also work.
STORE_SECRET = "cvatflow-store"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
# What the publish-dataset step shares with the pods (through the store, at run_key("shared")).
SHARED = "/mnt/data/shared"
SHARED_DATASET = f"{SHARED}/dataset"
SHARED_HYPERPARAMETERS = f"{SHARED}/hyperparameters.yaml"
COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
# Placeholders that must reach the manifest unquoted: Argo substitutes them before the YAML is read, so the
# integer fields stay integers and the node pool's JSON becomes a mapping or a list.
_UNQUOTED = {}


def _raw(expression: str) -> str:
    token = f"__cvatflow_raw_{len(_UNQUOTED)}__"
    _UNQUOTED.setdefault(expression, token)
    return _UNQUOTED[expression]


def param(name: str) -> str:
    return f"{{{{workflow.parameters.{name}}}}}"


def run_key(what: str = "") -> str:
    """Where a run keeps what its pods share: `<cvat-output-path>/<workflow name>[/what]` in the store."""
    return param("cvat-output-path") + "/{{workflow.name}}" + (f"/{what}" if what else "")


def rendezvous_host() -> str:
    """Pod 0's DNS name: `<jobset>-<replicatedJob>-<job index>-<pod index>.<subdomain>` (JobSet's
    network.enableDNSHostnames; the subdomain defaults to the JobSet's name, a headless Service JobSet creates)."""
    return f"{{{{workflow.name}}}}-{REPLICATED_JOB}-0-0.{{{{workflow.name}}}}"


def pod_env(nodes: str, processes: str) -> list[dict[str, Any]]:
    """torchrun's flags as PET_* environment (torch/distributed/argparse_util.py reads PET_<FLAG>)."""
    return [
        {"name": "PET_NNODES", "value": nodes},
        {"name": "PET_NPROC_PER_NODE", "value": processes},
        {"name": "PET_RDZV_BACKEND", "value": "c10d"},
        {"name": "PET_RDZV_ENDPOINT", "value": f"{rendezvous_host()}:{RDZV_PORT}"},
        {"name": "PET_RDZV_ID", "value": "{{workflow.name}}"},
        # JobSet restarts the whole set; torchrun restarting its workers inside one pod would only desync them.
        {"name": "PET_MAX_RESTARTS", "value": "0"},
        {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}}},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "CVATFLOW_RUN", "value": "{{workflow.name}}"},
    ]


def jobset_manifest(step: TrainStep, finetune: bool) -> dict[str, Any]:
    """The JobSet as a mapping, with placeholders (the unquoted ones as tokens; `manifest_text` puts them back).

    Each pod pulls the prepared dataset and the hyperparameters file (shared by the publish-dataset step; no
    free-text parameter enters the manifest, see params.manifest_problems), the checkpoints of an earlier attempt
    and the fine-tune checkpoint from the store, then runs torchrun inside `cvatflow store sync`, which mirrors
    /mnt/output to the run's key while training runs and once when it ends.
    """
    from cvatflow.templates.steps import LAUNCHER, MODELS, OUTPUT, SHM, train_args

    def pull(name: str, key: str, folder: str, missing_ok: bool) -> dict[str, Any]:
        return {"name": name, "image": step.image, "envFrom": store_env(),
                "command": ["cvatflow", "store", "pull", *(["--missing-ok"] if missing_ok else []), key, folder],
                "volumeMounts": mounts}

    mounts = [{"name": "data", "mountPath": "/mnt/data"}, {"name": "output", "mountPath": OUTPUT}]
    init = [pull("pull-dataset", run_key("shared"), SHARED, False),
            pull("pull-checkpoints", run_key("checkpoints"), f"{OUTPUT}/checkpoints", True)]
    if finetune:
        init.append(pull("pull-models", param("cvat-finetune-checkpoint"), MODELS, False))
    program = [*LAUNCHER, "--no-python", "cvatflow-train", step.model, "train",
               *train_args(step, finetune, data=SHARED_DATASET, hyperparameters=SHARED_HYPERPARAMETERS)]
    main = {
        "name": "main",
        "image": step.image,
        "command": ["cvatflow", "store", "sync", OUTPUT, run_key(), "--", *program],
        "env": pod_env(param("nodes"), step.processes),
        "envFrom": store_env(),
        "ports": [{"containerPort": RDZV_PORT, "name": "rendezvous"}],
        "resources": _raw(param(NODE_POOL_RESOURCES)),
        "volumeMounts": [*mounts, {"name": "dshm", "mountPath": SHM}],
    }
    labels = {WORKFLOW_LABEL: "{{workflow.name}}", "app.kubernetes.io/part-of": "cvatflow"}
    pod = {
        "metadata": {"labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "{{workflow.serviceAccountName}}",
            "nodeSelector": _raw(param(NODE_POOL_SELECTOR)),
            "tolerations": _raw(param(NODE_POOL_TOLERATIONS)),
            "initContainers": init,
            "containers": [main],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "output", "emptyDir": {}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": step.shm_size}}],
        },
    }
    nodes = _raw(param("nodes"))
    return {
        "apiVersion": API_VERSION,
        "kind": "JobSet",
        "metadata": {"name": "{{workflow.name}}", "labels": labels},
        "spec": {
            "network": {"enableDNSHostnames": True},
            "failurePolicy": {"maxRestarts": MAX_RESTARTS},
            "replicatedJobs": [{
                "name": REPLICATED_JOB,
                "replicas": 1,
                "template": {"spec": {"completionMode": "Indexed", "parallelism": nodes, "completions": nodes,
                                      "backoffLimit": 0, "template": pod}},
            }],
        },
    }


def store_env() -> list[dict[str, Any]]:
    return [{"secretRef": {"name": STORE_SECRET, "optional": True}}]


class _NoAliases(yaml.SafeDumper):
    """Writes shared lists (the pull steps' mounts) out in full: no &anchors in a manifest people read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def manifest_text(manifest: dict[str, Any]) -> str:
    """The manifest as YAML with the unquoted placeholders put back (Argo substitutes before parsing it)."""
    text = yaml.dump(manifest, Dumper=_NoAliases, sort_keys=False, width=1000)
    for expression, token in _UNQUOTED.items():
        text = text.replace(token, expression)
    return text


def jobset_resource(step: TrainStep, name: str, finetune: bool) -> Resource:
    """The Argo `resource` step that creates the JobSet, owned by the Workflow, and waits for its terminal state."""
    return Resource(name=name, action="create", set_owner_reference=True,
                    manifest=manifest_text(jobset_manifest(step, finetune)),
                    success_condition=SUCCESS, failure_condition=FAILURE)


def substituted(text: str, values: dict[str, str]) -> dict[str, Any]:
    """The manifest as the cluster receives it: `{{...}}` replaced from `values` (workflow.parameters.x,
    workflow.name, ...), then read as YAML. Raises KeyError naming a placeholder without a value."""
    import re

    def value(match: re.Match) -> str:
        return values[match.group(1).strip()]

    return yaml.safe_load(re.sub(r"{{\s*([^{}]+?)\s*}}", value, text))


def local_pod(jobset: dict[str, Any]) -> list[dict[str, Any]]:
    """What one machine runs for a JobSet cvatflow made (the local executor): its pod's init containers, then the
    main container with torchrun made standalone and given every worker of the set (PET_NNODES x
    PET_NPROC_PER_NODE, `auto` counting 1), so N nodes become N processes on gloo.

    Raises ValueError when the JobSet is not one pod template with one main container running torchrun.
    """
    jobs = (jobset.get("spec") or {}).get("replicatedJobs") or []
    if len(jobs) != 1:
        raise ValueError(f"the JobSet has {len(jobs)} replicated jobs; cvatflow's has one")
    spec = jobs[0]["template"]["spec"]["template"]["spec"]
    main = next((c for c in spec.get("containers") or [] if c.get("name") == "main"), None)
    command = list((main or {}).get("command") or [])
    if "torchrun" not in command:
        raise ValueError("the JobSet's main container does not run torchrun")
    env = {e["name"]: str(e.get("value", "")) for e in main.get("env") or []}

    def count(name: str) -> int:
        return whole_number(env.get(name, "1"), 6) or 1

    workers = count("PET_NNODES") * count("PET_NPROC_PER_NODE")
    at = command.index("torchrun") + 1
    command[at:at] = ["--standalone", f"--nproc-per-node={workers}"]
    return [*(spec.get("initContainers") or []), {**main, "command": command}]


def nodes_asked(values: dict[str, str]) -> int:
    """The `nodes` a run's filled parameters ask for (1 when the template has none or it is no whole number)."""
    try:
        number = float(str(values.get("nodes", "1")).strip())
    except ValueError:
        return 1
    return int(number) if number.is_integer() and number >= 1 else 1


def api_served(api_client) -> bool:
    """Whether the API server serves jobsets in jobset.x-k8s.io/v1alpha2 (discovery: GET /apis/<group>/<version>).

    Raises the client's ApiException for answers other than 404 (no credentials, server down).
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        found = client.CustomObjectsApi(api_client).get_api_resources(GROUP, VERSION)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return any(r.name == PLURAL for r in (found.resources or []) if r is not None)


def missing_api_message(nodes: int) -> str:
    """Why a multi-node run is refused on a cluster without JobSet, and the two ways out."""
    return (f"nodes={nodes} trains on a JobSet, but this cluster does not serve the JobSet API ({API_VERSION}, "
            f"{PLURAL}); install JobSet (kubectl apply --server-side -f https://github.com/kubernetes-sigs/jobset/"
            f"releases/download/v0.12.0/manifests.yaml) and set the chart's jobset.enabled=true, or set nodes=1 "
            f"to train on the GPUs of one node")
