"""The Helm chart: lints strictly, renders valid Kubernetes objects, least-privilege RBAC, a CRD its examples fit."""
from __future__ import annotations

import copy
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml

from chart_fixtures import CHART, KUBERNETES, helm, only, render, rules_of
from controller_fixtures import (
    ROOT,
    argo_status,
    call,
    event_lines,
    make_deps,
    mirror,
    training_run,
)
from cvatflow.config import load_settings
from cvatflow.templates import validate as validate_template


def crd_schema() -> dict:
    crd = only(render(), "CustomResourceDefinition")
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def closed(schema: dict) -> dict:
    """The schema with unknown fields forbidden, as the API server prunes them: what is not declared is lost."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node \
                    and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def test_helm_lint_strict_passes():
    done = subprocess.run([helm(), "lint", "--strict", str(CHART)], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("values", [None, {"controller": {"clusterWide": True}},
                                    {"controller": {"watchNamespaces": ["team-a", "team-b"]},
                                     "argoArtifactRepository": {"create": True}, "rbac": {"secretNames": ["cvat"]},
                                     "cvat": {"credentialsSecret": {"name": "cvat-default"}}},
                                    {"config": {"artifactRepository": {"gcs": {"bucket": "b", "serviceAccountKeySecret": {
                                        "name": "gcs", "key": "key.json"}}}}}])
def test_rendered_builtin_kinds_pass_strict_kubernetes_validation(values):
    docs = render(values)
    builtin = [d for d in docs if not d["apiVersion"].startswith("argoproj.io/")]
    assert {d["kind"] for d in builtin} >= {"CustomResourceDefinition", "ServiceAccount", "ConfigMap", "Deployment"}
    for doc in builtin:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_controller_runs_hardened_with_a_liveness_probe():
    deployment = only(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = only([{"kind": "c", "metadata": {"name": c["name"]}, **c} for c in pod["containers"]], "c")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["command"] == ["cvatflow"]
    assert container["args"] == ["operator", "--liveness=http://0.0.0.0:8080/healthz", "--standalone",
                                 "--namespace=ml"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"} and deployment["spec"]["replicas"] == 1
    env = {e["name"]: e for e in container["env"]}
    # Credentials come from existing Secrets, by reference only.
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "cvatflow-s3", "key": "accesskey"}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "cvatflow-s3", "key": "secretkey"}
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/etc/cvatflow", "/tmp"}


def test_gcs_credentials_are_a_mounted_secret_and_cluster_wide_runs_all_namespaces():
    docs = render({"controller": {"clusterWide": True},
                   "config": {"artifactRepository": {"gcs": {"bucket": "b", "serviceAccountKeySecret": {
                       "name": "gcs", "key": "key.json"}}}}})
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert "--all-namespaces" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/var/run/secrets/cvatflow/gcs/key.json"
    assert {"name": "gcs-key", "secret": {"secretName": "gcs", "items": [{"key": "key.json", "path": "key.json"}]}} \
        in pod["volumes"]


def test_several_standalone_replicas_are_refused():
    done = subprocess.run([helm(), "template", "rel", str(CHART), "--set", "controller.replicas=2"],
                          check=False, capture_output=True, text=True)
    assert done.returncode != 0 and "needs controller.standalone=false" in done.stderr


CONTROLLER_RULES = {
    ("cvatflow.io", "trainingruns"): {"get", "list", "watch", "patch"},
    ("cvatflow.io", "trainingruns/status"): {"get", "patch"},
    ("argoproj.io", "workflows"): {"get", "list", "watch", "create", "delete"},
    ("argoproj.io", "workflowtemplates"): {"get"},
    ("", "pods/log"): {"get"},
    ("", "secrets"): {"get"},
    ("", "events"): {"create"},
}


def test_rbac_is_namespaced_by_default_and_grants_only_what_the_controller_calls():
    docs = render({"controller": {"watchNamespaces": ["team-a", "team-b"]}, "rbac": {"secretNames": ["cvat"]}})
    assert not [d for d in docs if d["kind"].startswith("Cluster")]
    roles = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "rel-cvatflow-controller"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert rules_of(role) == CONTROLLER_RULES
        assert next(r for r in role["rules"] if r["resources"] == ["secrets"])["resourceNames"] == ["cvat"]
        assert not any("*" in r["verbs"] or "*" in r["resources"] for r in role["rules"])
    bindings = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "rel-cvatflow-controller"]
    assert {b["subjects"][0]["namespace"] for b in bindings} == {"ml"}  # the controller's own namespace
    workflow_role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "cvatflow-workflow")
    assert rules_of(workflow_role) == {("argoproj.io", "workflowtaskresults"): {"create", "patch"}}


def test_rbac_cluster_wide_is_an_option():
    docs = render({"controller": {"clusterWide": True}})
    role = only(docs, "ClusterRole")
    assert rules_of(role) == {**CONTROLLER_RULES,
                              ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
                              ("", "namespaces"): {"list", "watch"}}
    assert only(docs, "ClusterRoleBinding")["roleRef"]["name"] == role["metadata"]["name"]
    assert not [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "rel-cvatflow-controller"]


def test_the_configmap_is_what_load_settings_reads(tmp_path):
    config = only(render(), "ConfigMap", "rel-cvatflow-config")["data"]["config.yaml"]
    assert "secretkey" not in config.replace("key: secretkey", "")  # names of Secret keys only, no values
    path = tmp_path / "config.yaml"
    path.write_text(config)
    settings = load_settings(path, env={})
    assert settings.backend == "kubernetes"
    assert settings.store == "s3://cvatflow"
    assert settings.artifact_repository.kind == "s3"
    assert settings.artifact_repository.access_key_secret.name == "cvatflow-s3"
    assert [p.value for p in settings.node_pools.pools] == ["g4dn.xlarge", "p3.2xlarge"]
    assert settings.node_pools.pools[0].resources == {"limits": {"nvidia.com/gpu": 1}}
    assert settings.workflow_service_account == "cvatflow-workflow"


def test_the_crd_has_status_printer_columns_and_a_structural_schema():
    crd = only(render(), "CustomResourceDefinition")
    version = crd["spec"]["versions"][0]
    assert crd["metadata"]["name"] == "trainingruns.cvatflow.io" and crd["spec"]["scope"] == "Namespaced"
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Phase", "Template", "Progress", "mAP", "Age"]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_the_example_trainingrun_fits_the_crd_schema_and_bad_ones_do_not():
    schema = closed(crd_schema())
    example = yaml.safe_load((CHART / "examples" / "trainingrun.yaml").read_text())
    jsonschema.validate(example, schema)
    both = copy.deepcopy(example)
    both["spec"]["source"]["dataset"] = "annotations/42/x/"
    neither = copy.deepcopy(example)
    neither["spec"]["source"] = {}
    number = copy.deepcopy(example)
    number["spec"]["parameters"]["epochs"] = 30
    typo = copy.deepcopy(example)
    typo["spec"]["nodepool"] = "g4dn.xlarge"
    for bad in (both, neither, number, typo):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_the_status_the_operator_writes_fits_the_crd_so_nothing_is_pruned():
    import kopf

    from cvatflow.controller import handlers

    schema = closed(crd_schema())
    deps = make_deps()
    body = training_run()
    call(handlers.reconcile, body, deps)
    deps.cluster.runs["ml", "r1"] = body
    workflow = deps.cluster.workflows["ml", "r1"]
    workflow["status"] = argo_status("Succeeded", train_phase="Succeeded", finished=True)
    deps.cluster.logs["ml", "r1-train-2222"] = event_lines(epoch=2, step=400, total=400, mAP=0.5)
    mirror(deps, workflow, kopf.Memo(deps=deps))
    call(handlers.spec_changed, body, deps)
    jsonschema.validate(deps.cluster.runs["ml", "r1"], schema)

    invalid = training_run("bad", parameters={"epochs": "x"})
    call(handlers.reconcile, invalid, deps)
    jsonschema.validate(invalid, schema)


def source_templates() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((ROOT / "workflow_templates").glob("*.yaml"))}


def test_the_charts_workflow_templates_are_exact_copies_of_workflow_templates():
    copies = {p.name: p.read_text() for p in sorted((CHART / "files" / "workflow-templates").glob("*.yaml"))}
    assert copies == source_templates(), \
        "charts/cvatflow/files/workflow-templates/ drifted: cp workflow_templates/*.yaml charts/cvatflow/files/workflow-templates/"


def test_rendered_workflow_templates_are_the_built_ins_and_pass_the_strict_argo_schema():
    docs = render({"controller": {"watchNamespaces": ["team-a", "team-b"]}})
    rendered = [d for d in docs if d["kind"] == "WorkflowTemplate"]
    sources = {yaml.safe_load(text)["metadata"]["name"]: yaml.safe_load(text) for text in source_templates().values()}
    assert sorted((d["metadata"]["namespace"], d["metadata"]["name"]) for d in rendered) == sorted(
        (ns, name) for ns in ("team-a", "team-b") for name in sources)
    for doc in rendered:
        source = sources[doc["metadata"]["name"]]
        assert doc["spec"] == source["spec"]
        assert doc["metadata"]["annotations"] == source["metadata"]["annotations"]
        assert source["metadata"]["labels"].items() <= doc["metadata"]["labels"].items()
        errors = [p for p in validate_template(doc) if p.severity == "error"]
        assert not errors, errors
    assert not [d for d in render({"workflowTemplates": {"install": False}}) if d["kind"] == "WorkflowTemplate"]


# -- values as clusters write them: a matrix of values files (charts/cvatflow/ci/, chart-testing's layout) -----

VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))


def test_the_values_matrix_covers_the_usual_clusters():
    assert {p.name.removesuffix("-values.yaml") for p in VALUES_FILES} >= {
        "irsa", "workload-identity", "private-registry", "air-gapped", "namespaces", "cluster-wide"}


@pytest.mark.parametrize("path", VALUES_FILES, ids=[p.name for p in VALUES_FILES])
def test_each_values_file_lints_strictly_renders_valid_objects_and_a_config_cvatflow_reads(path, tmp_path):
    done = subprocess.run([helm(), "lint", "--strict", str(CHART), "-f", str(path)], check=False,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    docs = render(yaml.safe_load(path.read_text()))
    for doc in docs:
        if not doc["apiVersion"].startswith("argoproj.io/"):
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    config = only(docs, "ConfigMap", "rel-cvatflow-config")["data"]["config.yaml"]
    (tmp_path / "config.yaml").write_text(config)
    settings = load_settings(tmp_path / "config.yaml", env={"CVATFLOW_HOME": str(tmp_path)})
    assert settings.artifact_repository is not None and settings.node_pools.pools


@pytest.mark.parametrize(("values", "named"), [
    ("controller:\n  replica: 2\n", "at '/controller': additional properties 'replica' not allowed"),
    ("workflowServiceAcount:\n  create: false\n", "additional properties 'workflowServiceAcount' not allowed"),
    ("workflowServiceAccount:\n  imagePullSecret: [{name: r}]\n", "additional properties 'imagePullSecret'"),
    ("controller:\n  dumpSpace:\n    size: lots\n", "/controller/dumpSpace/size"),
    ("config:\n  nodePools:\n    options:\n      - {value: x, resouces: {}}\n",
     "at '/config/nodePools/options/0': additional properties 'resouces' not allowed"),
    ("controller:\n  clusterWide: \"yes\"\n", "/controller/clusterWide"),
    ("config:\n  artifactRepository:\n    S3: {bucket: b}\n", "additional properties 'S3' not allowed"),
    ("config:\n  artifactRepository:\n    s3: {bucket: b, useSdkCreds: true}\n", "additional properties 'useSdkCreds'"),
])
def test_a_values_file_with_a_typo_or_a_wrong_type_fails_helm_lint_naming_the_key(values, named, tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(values)
    done = subprocess.run([helm(), "lint", "--strict", str(CHART), "-f", str(path)], check=False,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert named in done.stdout + done.stderr


def test_dump_space_is_sized_for_real_exports_and_requested_from_the_node():
    pod = only(render(), "Deployment")["spec"]["template"]["spec"]
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp == {"name": "tmp", "emptyDir": {"sizeLimit": "20Gi"}}
    assert pod["containers"][0]["resources"]["requests"]["ephemeral-storage"] == "20Gi"
    assert not [d for d in render() if d["kind"] == "PersistentVolumeClaim"]

    docs = render({"controller": {"dumpSpace": {"size": "200Gi", "persistentVolumeClaim": {
        "enabled": True, "storageClassName": "fast"}}}})
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    claim = only(docs, "PersistentVolumeClaim")
    assert claim["spec"]["resources"]["requests"]["storage"] == "200Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert next(v for v in pod["volumes"] if v["name"] == "tmp")["persistentVolumeClaim"] == {
        "claimName": claim["metadata"]["name"]}
    assert "ephemeral-storage" not in pod["containers"][0]["resources"]["requests"]


def test_the_workflow_service_account_takes_pull_secrets_and_cloud_identity_annotations():
    docs = render(yaml.safe_load((CHART / "ci" / "irsa-values.yaml").read_text()))
    account = only(docs, "ServiceAccount", "cvatflow-workflow")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/cvatflow-training"}
    assert "imagePullSecrets" not in account
    docs = render({"images": {"pullSecrets": [{"name": "reg"}]}})
    assert only(docs, "ServiceAccount", "cvatflow-workflow")["imagePullSecrets"] == [{"name": "reg"}]
    docs = render(yaml.safe_load((CHART / "ci" / "private-registry-values.yaml").read_text()))
    assert only(docs, "ServiceAccount", "cvatflow-workflow")["imagePullSecrets"] == [
        {"name": "registry-credentials"}, {"name": "training-registry"}]


def test_air_gapped_training_images_come_from_the_mirror():
    docs = render(yaml.safe_load((CHART / "ci" / "air-gapped-values.yaml").read_text()))
    for template in (d for d in docs if d["kind"] == "WorkflowTemplate"):
        image = next(p for p in template["spec"]["arguments"]["parameters"] if p["name"] == "image")["value"]
        assert image.startswith("mirror.internal:5000/cvatflow/")
        assert "ghcr.io" not in yaml.safe_dump(template)
    assert only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "mirror.internal:5000/cvatflow/controller:0.1.0"


def test_reading_nodes_is_one_cluster_role_with_list_nodes_only():
    assert not [d for d in render() if d["kind"].startswith("Cluster")]
    docs = render({"rbac": {"readNodes": True}})
    role = only(docs, "ClusterRole")
    assert rules_of(role) == {("", "nodes"): {"list"}}
    binding = only(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rel-cvatflow-controller", "namespace": "ml"}]


def test_the_schemas_artifact_repository_fields_are_argos_as_cvatflow_reads_them():
    import json

    from cvatflow.artifact_repository import KINDS

    schema = json.loads((CHART / "values.schema.json").read_text())
    repository = schema["properties"]["config"]["properties"]["artifactRepository"]["properties"]
    assert set(repository) == {*KINDS, "archiveLogs"}
    for name, kind in KINDS.items():
        assert set(repository[name]["properties"]) == kind.shared | kind.repository_only | {kind.format_field}, name
        assert repository[name]["additionalProperties"] is False


def test_onepanels_node_pool_keys_are_taken_as_they_are(tmp_path):
    # Onepanel's `onepanel` ConfigMap kept the options as YAML text; pasted into the values, they work unchanged.
    onepanel = {"applicationNodePoolLabel": "beta.kubernetes.io/instance-type",
                "applicationNodePoolOptions": "- name: 'CPU: 4, RAM: 16GB'\n  value: Standard_D4s_v3\n"
                                              "- name: 'GPU: 1xK80, CPU: 6, RAM: 56GB'\n  value: Standard_NC6\n"
                                              "  resources:\n    limits:\n      nvidia.com/gpu: 1\n"}
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"config": {"nodePools": onepanel}}))
    done = subprocess.run([helm(), "lint", "--strict", str(CHART), "-f", str(values)], check=False,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # They replace the chart's default label and options, which Helm would otherwise merge beside them.
    config = only(render({"config": {"nodePools": onepanel}}), "ConfigMap", "rel-cvatflow-config")["data"]["config.yaml"]
    (tmp_path / "config.yaml").write_text(config)
    pools = load_settings(tmp_path / "config.yaml", env={"CVATFLOW_HOME": str(tmp_path)}).node_pools
    assert pools.label == "beta.kubernetes.io/instance-type"
    assert [p.value for p in pools.pools] == ["Standard_D4s_v3", "Standard_NC6"]
