"""The annotate-task pipeline: one GPU step that runs a model state over a CVAT task (cvat_sdk's annotate_task)."""
from __future__ import annotations

from hera.workflows import Container, Env, Resources, S3Artifact, SecretEnv, WorkflowTemplate

from cvatflow.nodepool import NODE_POOL_PATCH
from cvatflow.templates.parameter import Parameter
from cvatflow.templates.steps import MODELS, _name_first, param
from cvatflow.templates.template import Template

# The Secret the chart creates for CVAT's URL and a personal access token (charts/cvatflow, `cvat.secretName`).
CVAT_SECRET = "cvatflow-cvat"
TEMPLATE = "annotate-task"


def _secret_env(name: str, key: str) -> SecretEnv:
    return SecretEnv(name=name, secret_name=CVAT_SECRET, secret_key=key)


def annotate_container() -> Container:
    """`cvatflow annotate-task` on the model downloaded from the store; values go in as separate args."""
    return Container(
        name="annotate",
        image=param("image"),
        command=["cvatflow", "annotate-task", "--model", MODELS, "--cvat-task", param("cvat-task-id"),
                 "--threshold", param("threshold"), "--clear-existing", param("clear-existing"),
                 "--shape", param("shape")],
        inputs=[S3Artifact(name="model", path=MODELS, key=param("model-path"))],
        env=[Env(name="PYTHONUNBUFFERED", value="1"), _secret_env("CVAT_URL", "url"),
             _secret_env("CVAT_ACCESS_TOKEN", "token")],
        resources=Resources(cpu_request="1", memory_request="4Gi"),
        pod_spec_patch=param(NODE_POOL_PATCH),
    )


def annotate_template(parameters: list[Parameter]) -> Template:
    with WorkflowTemplate(name=TEMPLATE, entrypoint="annotate") as wt:
        annotate_container()
    spec = wt.to_dict()["spec"]
    spec["templates"] = [_name_first(t) for t in spec["templates"]]
    return Template(name=TEMPLATE, parameters=parameters, spec=spec, title="Annotate a CVAT task",
                    description="Runs a trained model over a CVAT task's images and uploads the shapes it finds "
                                "(cvat_sdk.auto_annotation), on the chosen node pool's GPU.",
                    labels={"used-by": "cvatflow-annotate", "app.kubernetes.io/part-of": "cvatflow"})
