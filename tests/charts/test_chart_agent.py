"""The chart's optional CVAT agent: off by default; when on, `cvat-cli function run-agent` with cvatflow's
function on a GPU node pool, CVAT's URL and token from a Secret, a valid hardened Deployment."""
from __future__ import annotations

import subprocess

import kubernetes_validate
import yaml

from chart_fixtures import CHART, KUBERNETES, helm, render

AGENT = {"cvatAgent": {"enabled": True, "functionId": 12, "model": "s3://ml/outputs/run-1/model/",
                       "nodeSelector": {"pool": "gpu-l4"}}}


def agents(docs):
    return [d for d in docs if d["kind"] == "Deployment"
            and d["metadata"]["labels"].get("app.kubernetes.io/component") == "cvat-agent"]


def test_the_agent_is_off_by_default():
    assert agents(render()) == []


def test_the_agent_runs_cvatflow_s_function_on_a_gpu_with_cvat_from_a_secret():
    (agent,) = agents(render(AGENT))
    kubernetes_validate.validate(agent, KUBERNETES, strict=True)
    pod = agent["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["cvat-cli"]
    assert container["args"] == ["--server-host", "$(CVAT_URL)", "function", "run-agent", "12", "--function-module",
                                 "cvatflow.cvat_function", "-p", "model=str:s3://ml/outputs/run-1/model/",
                                 "-p", "threshold=float:0.5"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CVAT_URL"]["valueFrom"]["secretKeyRef"] == {"name": "cvatflow-cvat", "key": "url"}
    assert env["CVAT_ACCESS_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "cvatflow-cvat", "key": "token"}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"pool": "gpu-l4"}
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsNonRoot"]


def test_an_agent_without_a_model_or_function_id_fails_naming_the_value(tmp_path):
    for values, named in (({"cvatAgent": {"enabled": True, "functionId": 3}}, "cvatAgent.model"),
                          ({"cvatAgent": {"enabled": True, "model": "s3://b/m/"}}, "cvatAgent.functionId"),
                          ({"cvatAgent": {"enabled": True, "modle": "s3://b/m/"}}, "modle")):
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        done = subprocess.run([helm(), "template", "rel", str(CHART), "-f", str(path)], capture_output=True,
                              text=True, check=False)
        assert done.returncode != 0 and named in done.stderr, done.stderr
