"""Node pools as clusters configure them: each pool's rendered train pod fits its nodes and asks a GPU only on GPUs."""
from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
import yaml

from cvatflow.config import ConfigError, NodePools
from cvatflow.errors import ProblemsError
from cvatflow.nodepool import clean_resources, quantity, requested
from cvatflow.params import autofill
from cvatflow.runs.kubernetes import workflow_object
from cvatflow.templates import get_template
from paths import ROOT

GIB = 2 ** 30

# Onepanel's shipped node-pool lists, as written: the CLI's params (Azure; onepanelio/cli cmd/build_test.go) and
# the docs' per-cloud examples (onepanelio/core-docs docs/deployment/components/nodes.md), plus the AWS K80 pool.
ONEPANEL_LISTS = {
    "cli-azure": """
- name: 'CPU: 2, RAM: 8GB'
  value: Standard_D2s_v3
- name: 'CPU: 4, RAM: 16GB'
  value: Standard_D4s_v3
- name: 'GPU: 1xK80, CPU: 6, RAM: 56GB'
  value: Standard_NC6
  resources:
    limits:
      nvidia.com/gpu: 1
""",
    "docs-aks": """
- name: 'CPU: 4, RAM: 16GB'
  value: Standard_D4s_v3
- name: 'GPU: 1xV100, CPU: 6, RAM: 112GB'
  value: Standard_NC6s_v3
  resources:
    limits:
      nvidia.com/gpu: 1
""",
    "docs-eks": """
- name: 'CPU: 4, RAM: 16GB'
  value: m5.xlarge
- name: 'GPU: 1xK80, CPU: 4, RAM: 61GB'
  value: p2.xlarge
  resources:
    limits:
      nvidia.com/gpu: 1
- name: 'GPU: 1xV100, CPU: 8, RAM: 61GB'
  value: p3.2xlarge
  resources:
    limits:
      nvidia.com/gpu: 1
""",
    "docs-gke": """
- name: 'CPU: 4, RAM: 15GB'
  value: n1-standard-4
- name: 'GPU: 1xV100, CPU: 8, RAM: 30GB'
  value: n1-standard-8
  resources:
    limits:
      nvidia.com/gpu: 1
""",
}

# The instances behind them: vCPUs, GiB of memory, GPUs (the clouds' published instance specs).
INSTANCES = {
    "Standard_D2s_v3": (2, 8, 0), "Standard_D4s_v3": (4, 16, 0), "Standard_NC6": (6, 56, 1),
    "Standard_NC6s_v3": (6, 112, 1), "m5.xlarge": (4, 16, 0), "p2.xlarge": (4, 61, 1), "p3.2xlarge": (8, 61, 1),
    "g4dn.xlarge": (4, 16, 1), "n1-standard-4": (4, 15, 0), "n1-standard-8": (8, 30, 1),
}


def allocatable(instance: str) -> dict[str, str]:
    """What a node of `instance` allocates, by GKE's published reservation formula (cloud.google.com/kubernetes-
    engine/docs/concepts/plan-node-sizes): CPU 6% of the first core, 1% of the next, 0.5% of the next 2, 0.25%
    above 4; memory 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of the next 112, 2% above;
    and 100 MiB for eviction. EKS and AKS reserve about as much or more, never less for these sizes."""
    cores, gib, gpus = INSTANCES[instance]
    cpu = Decimal(cores) - sum(Decimal(rate) * max(0, min(cores, hi) - lo)
                               for lo, hi, rate in ((0, 1, ".06"), (1, 2, ".01"), (2, 4, ".005"), (4, 10 ** 6, ".0025")))
    memory = Decimal(gib) - sum(Decimal(rate) * max(0, min(gib, hi) - lo)
                                for lo, hi, rate in ((0, 4, ".25"), (4, 8, ".2"), (8, 16, ".1"), (16, 128, ".06"),
                                                     (128, 10 ** 6, ".02"))) - Decimal(100) / 1024
    out = {"cpu": f"{int(cpu * 1000)}m", "memory": f"{int(memory * 1024)}Mi"}
    if gpus:
        out["nvidia.com/gpu"] = str(gpus)
    return out


def chart_pools() -> list[dict]:
    values = yaml.safe_load((ROOT / "charts" / "cvatflow" / "values.yaml").read_text())
    return values["config"]["nodePools"]["options"]


CASES = [(name, option["value"], option) for name, text in ONEPANEL_LISTS.items() for option in yaml.safe_load(text)]
CASES += [("chart-defaults", option["value"], option) for option in chart_pools()]


def strategic_merge(pod: dict, patch: dict) -> dict:
    """Kubernetes' strategic merge of a podSpecPatch, as far as the patch uses it: containers merge by name,
    maps merge key by key unless they say `$patch: replace`, lists without a merge key (tolerations) replace."""
    def merge(base, change):
        if isinstance(change, dict) and isinstance(base, dict):
            if change.get("$patch") == "replace":
                return {k: v for k, v in change.items() if k != "$patch"}
            out = dict(base)
            for key, value in change.items():
                if key == "containers":
                    by_name = {c["name"]: c for c in out.get(key, [])}
                    for container in value:
                        by_name[container["name"]] = merge(by_name.get(container["name"], {}), container)
                    out[key] = list(by_name.values())
                else:
                    out[key] = merge(out.get(key), value)
            return out
        return copy.deepcopy(change)
    return merge(pod, patch)


def train_pods(pools: NodePools, value: str) -> list[dict]:
    """The pods of the rendered maskrcnn-training Workflow's train steps on pool `value`."""
    template = get_template("maskrcnn-training")
    filled = autofill(template, {"sys-node-pool": value}, annotation_path="annotations/1/x/", num_classes=2,
                      node_pools=pools)
    workflow = workflow_object(filled, "maskrcnn-training-abcde", "ml")
    arguments = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    pods = []
    for step in template.container_templates():
        if step["name"].startswith("train"):
            pod = {"containers": [{"name": "main", "resources": step["container"].get("resources") or {}}],
                   "tolerations": step.get("tolerations") or [], "nodeSelector": step.get("nodeSelector") or {}}
            patch = step["podSpecPatch"].replace("{{workflow.parameters.sys-node-pool-patch}}",
                                                 arguments["sys-node-pool-patch"])
            pods.append(strategic_merge(pod, json.loads(patch)))
    assert len(pods) == 2
    return pods


@pytest.mark.parametrize(("source", "value", "option"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_each_pools_train_pod_fits_its_instance_and_asks_a_gpu_only_on_gpus(source, value, option):
    has_gpu = INSTANCES[value][2] > 0
    # The pools exactly as shipped (no allocatable in them): nothing can be checked, so what the pod asks is
    # what decides whether it ever schedules.
    pools = NodePools.from_dict({"applicationNodePoolLabel": "node.kubernetes.io/instance-type",
                                 "applicationNodePoolOptions": yaml.safe_dump([option])})
    for pod in train_pods(pools, value):
        wanted = requested(pod["containers"][0]["resources"])
        have = {k: quantity(v) for k, v in allocatable(value).items()}
        for resource, amount in wanted.items():
            assert amount <= have.get(resource, 0), f"{value}: {resource} {amount} > {have.get(resource, 0)}"
        assert ("nvidia.com/gpu" in wanted) == has_gpu
        tolerated = {t["key"] for t in pod["tolerations"]}
        assert ("nvidia.com/gpu" in tolerated) == has_gpu
        assert pod["nodeSelector"] == {"node.kubernetes.io/instance-type": value}
        if option.get("resources"):  # Onepanel's rule: the pool's resources are the container's, whole
            assert pod["containers"][0]["resources"] == clean_resources(option["resources"])


def test_pools_with_allocatable_pass_the_check_and_a_too_big_request_is_refused_with_the_numbers():
    ok = NodePools.from_dict({"options": [{**option, "allocatable": allocatable(value)} for _, value, option in
                                          CASES[:3]]})
    for pool in ok.pools:
        train_pods(ok, pool.value)  # no problem raised

    # The old train defaults, written as a pool's resources: 4 CPU and 16Gi never fit a 4-vCPU, 16 GiB node.
    big = NodePools.from_dict({"options": [{
        "name": "NVIDIA T4 (1 GPU)", "value": "g4dn.xlarge", "allocatable": allocatable("g4dn.xlarge"),
        "resources": {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"nvidia.com/gpu": 1}}}]})
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("maskrcnn-training"), annotation_path="annotations/1/x/", num_classes=2,
                 node_pools=big)
    message = str(excinfo.value)
    assert "node pool 'NVIDIA T4 (1 GPU)' (node.kubernetes.io/instance-type=g4dn.xlarge)" in message
    assert "cpu 4 but a node allocates 3.92" in message
    assert "memory 16Gi but a node allocates 13.3Gi" in message
    assert "nvidia.com/gpu" not in message  # the GPU fits
    assert "steps 'train', 'train-from-checkpoint' request" in message and "1 problem" in message


def test_a_gpu_asked_of_a_cpu_pool_is_refused():
    pools = NodePools.from_dict({"options": [{"name": "cpu", "value": "m5.xlarge", "allocatable":
                                              allocatable("m5.xlarge"),
                                              "resources": {"limits": {"nvidia.com/gpu": 1}}}]})
    with pytest.raises(ProblemsError, match=r"nvidia.com/gpu 1 but a node allocates 0"):
        autofill(get_template("maskrcnn-training"), annotation_path="a/", num_classes=2, node_pools=pools)


def test_allocatable_read_from_the_cluster_checks_and_adds_the_gpu_a_pool_without_resources_has():
    asked = []

    def lookup(label, value):
        asked.append((label, value))
        return allocatable(value)

    pools = NodePools.from_dict({"options": [{"name": "T4", "value": "g4dn.xlarge"},
                                             {"name": "small", "value": "Standard_D2s_v3",
                                              "resources": {"requests": {"cpu": "3"}}}]})
    pools.lookup = lookup
    [pod, _] = train_pods(pools, "g4dn.xlarge")
    assert asked == [("node.kubernetes.io/instance-type", "g4dn.xlarge")]
    # The step's modest defaults stay, and the GPU the cluster's nodes have is asked for and tolerated.
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "4Gi"},
                                                 "limits": {"nvidia.com/gpu": "1"}}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    with pytest.raises(ProblemsError, match=r"'small' .*cpu 3 but a node allocates 1.93"):
        train_pods(pools, "Standard_D2s_v3")


def test_the_kubernetes_backend_reads_allocatable_from_the_pools_nodes(monkeypatch):
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from cvatflow.runs.kubernetes import KubernetesBackend

    def list_node(self, label_selector=None):
        if label_selector != "pool=gpu":
            raise ApiException(status=403, reason="Forbidden")  # a namespaced service account may not list nodes
        return client.V1NodeList(items=[
            client.V1Node(status=client.V1NodeStatus(allocatable={"cpu": "3920m", "memory": "14Gi"})),
            client.V1Node(status=client.V1NodeStatus(allocatable={"cpu": "7910m", "nvidia.com/gpu": "1"}))])

    monkeypatch.setattr(client.CoreV1Api, "list_node", list_node)
    backend = KubernetesBackend("ml", api=client.ApiClient())
    assert backend.node_allocatable("pool", "gpu") == {"cpu": "7910m", "memory": "14Gi", "nvidia.com/gpu": "1"}
    assert backend.node_allocatable("pool", "other") is None  # unknown: not checked, not refused


def test_onepanels_configmap_is_read_as_is_and_mistakes_name_the_option():
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "onepanel", "namespace": "onepanel"},
                 "data": {"applicationNodePoolLabel": "beta.kubernetes.io/instance-type",
                          "applicationNodePoolOptions": ONEPANEL_LISTS["cli-azure"]}}
    pools = NodePools.from_dict(configmap)
    assert pools.label == "beta.kubernetes.io/instance-type"
    assert [p.value for p in pools.pools] == ["Standard_D2s_v3", "Standard_D4s_v3", "Standard_NC6"]
    assert pools.pools[2].resources == {"limits": {"nvidia.com/gpu": 1}}
    with pytest.raises(ConfigError, match=r"options\[0\]: resources.limits.nvidia.com/gpu = 'one' is not a "):
        NodePools.from_dict({"options": [{"value": "x", "resources": {"limits": {"nvidia.com/gpu": "one"}}}]})
    with pytest.raises(ConfigError, match=r"give `options` or Onepanel's `applicationNodePoolOptions`, not both"):
        NodePools.from_dict({"options": [{"value": "x"}], "applicationNodePoolOptions": "- value: y\n"})
    with pytest.raises(ConfigError, match=r"options\[0\]: unknown keys resource;"):
        NodePools.from_dict({"options": [{"value": "x", "resource": {"limits": {"nvidia.com/gpu": 1}}}]})


def test_the_operator_refuses_a_run_no_node_of_its_pool_can_hold():
    from controller_fixtures import FakeCluster, call, make_deps, training_run
    from cvatflow.controller import handlers

    class Cluster(FakeCluster):
        def node_allocatable(self, label, value):  # what the chart's rbac.readNodes lets it read
            return {"cpu": "3920m", "memory": "14Gi"}  # the nodes lost their GPU (no device plugin)

    deps = make_deps(cluster=Cluster())
    status = call(handlers.reconcile, training_run(nodePool="g4dn.xlarge"), deps)
    assert status["phase"] == "Invalid", status
    assert "node pool 'T4' (node.kubernetes.io/instance-type=g4dn.xlarge)" in status["message"]
    assert "nvidia.com/gpu 1 but a node allocates 0" in status["message"]
    assert deps.cluster.creates == 0
