"""Building blocks for training pipelines, built with hera: the dataset step, the GPU train step, the sidecar."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hera.workflows import (
    DAG,
    Artifact,
    Container,
    Env,
    NoneArchiveStrategy,
    Resources,
    RetryStrategy,
    S3Artifact,
    UserContainer,
    WorkflowTemplate,
)
from hera.workflows.models import (
    Backoff,
    ContainerPort,
    ObjectMeta,
    PersistentVolumeClaim,
    PersistentVolumeClaimSpec,
    VolumeMount,
    VolumeResourceRequirements,
)

from cvatflow.nodepool import NODE_POOL_PATCH
from cvatflow.templates.parameter import Parameter
from cvatflow.templates.template import Template

# Where a training container finds its inputs and writes its outputs (DESIGN.md, "Paths").
DATA = "/mnt/data"
DATASETS = "/mnt/data/datasets"
MODELS = "/mnt/data/models"
OUTPUT = "/mnt/output"
# The chosen node pool reaches the pod through a strategic-merge podSpecPatch (nodeSelector, GPU toleration and
# the main container's resources) that params.autofill writes from the node-pool config (cvatflow.nodepool). Argo
# forbids changing a referenced WorkflowTemplate's templates at submission, so this parameter is the one place a
# run can do it.
# A pod lost to preemption or eviction ends in Error or is killed (137/143); those are retried and the
# train step resumes from the checkpoints on the output volume. Code errors are not retried.
PREEMPTION = "lastRetry.status == 'Error' || lastRetry.exitCode == '137' || lastRetry.exitCode == '143'"


def node_pool_patch_parameter() -> Parameter:
    """The hidden parameter that carries the node pool's podSpecPatch ("{}" when no pool is configured)."""
    return Parameter(NODE_POOL_PATCH, "{}", "Node pool placement",
                     "Filled from the node-pool config: nodeSelector and resources of the chosen pool.",
                     type="hidden", visibility="internal")


def param(name: str) -> str:
    """The Argo expression for a workflow parameter's value."""
    return "{{workflow.parameters.%s}}" % name


@dataclass
class TrainStep:
    """What differs between training pipelines: the entry point, image and defaults of the train step."""

    model: str  # the `cvatflow-train` model name (detr, maskrcnn)
    image: str = param("image")
    # Modest and GPU-free: they fit the smallest node pool Onepanel documented (2 vCPU, 8 GB). A node pool's
    # resources replace them, and a pool with GPUs adds one (cvatflow.nodepool.pool_resources).
    gpus: int = 0
    cpu: str = "1"
    memory: str = "4Gi"
    output_size: str = "50Gi"
    extra_args: list[str] = field(default_factory=list)


def claim(name: str, size: str) -> PersistentVolumeClaim:
    return PersistentVolumeClaim(
        metadata=ObjectMeta(name=name),
        spec=PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"],
                                       resources=VolumeResourceRequirements(requests={"storage": size})))


def prepare_container(image: str) -> Container:
    """Normalise the dumped task and split train/val; parameters go in as separate args, never via a shell."""
    return Container(
        name="prepare-dataset",
        image=image,
        command=["cvatflow", "dataset", "prepare", f"{DATA}/export", "--out", f"{DATA}/prepared",
                 "--val-split", param("val-split")],
        inputs=[S3Artifact(name="export", path=f"{DATA}/export", key=param("cvat-annotation-path"))],
        outputs=[Artifact(name="dataset", path=f"{DATA}/prepared")],
        resources=Resources(cpu_request="1", memory_request="2Gi"),
        env=[Env(name="PYTHONUNBUFFERED", value="1")],
    )


def train_container(step: TrainStep, name: str, finetune: bool) -> Container:
    """The train step (on a GPU where the pool has one): trains from the prepared dataset, optionally from a fine-tune checkpoint."""
    args = ["--data", DATASETS, "--output", OUTPUT,
            "--model", param("cvat-model"),
            "--num-classes", param("cvat-num-classes"),
            "--epochs", param("epochs"),
            "--batch-size", param("batch-size"),
            "--hyperparameters", param("hyperparameters"),
            *step.extra_args]
    inputs = [Artifact(name="dataset", path=DATASETS)]
    if finetune:
        args += ["--models", MODELS]
        inputs.append(S3Artifact(name="models", path=MODELS, key=param("cvat-finetune-checkpoint")))
    return Container(
        name=name,
        image=step.image,
        command=["cvatflow-train", step.model, "train"],
        args=args,
        inputs=inputs,
        outputs=[S3Artifact(name="model", path=OUTPUT, archive=NoneArchiveStrategy(),
                            key=param("cvat-output-path") + "/{{workflow.name}}")],
        env=[Env(name="PYTHONUNBUFFERED", value="1")],
        resources=Resources(cpu_request=step.cpu, memory_request=step.memory, gpus=step.gpus or None),
        # The GPU toleration comes with the patch, on GPU pools only: a CPU run must not land on a GPU node.
        pod_spec_patch=param(NODE_POOL_PATCH),
        volume_mounts=[VolumeMount(name="output", mount_path=OUTPUT)],
        sidecars=[UserContainer(
            name="tensorboard", image=step.image, mirror_volume_mounts=True,
            command=["tensorboard", "--logdir", f"{OUTPUT}/tensorboard", "--bind_all", "--port", "6006"],
            ports=[ContainerPort(container_port=6006, name="tensorboard")])],
        retry_strategy=RetryStrategy(limit="3", retry_policy="Always", expression=PREEMPTION,
                                     backoff=Backoff(duration="30s", factor="2")),
    )


def training_template(name: str, title: str, description: str, parameters: list[Parameter],
                      step: TrainStep) -> Template:
    """A CVAT training pipeline: prepare the dumped dataset, then train (from scratch or a checkpoint)."""
    checkpoint = param("cvat-finetune-checkpoint")
    with WorkflowTemplate(name=name, entrypoint="main",
                          volume_claim_templates=[claim("output", step.output_size)]) as wt:
        prepare = prepare_container(step.image)
        train = train_container(step, "train", finetune=False)
        finetune = train_container(step, "train-from-checkpoint", finetune=True)
        with DAG(name="main"):
            p = prepare()
            dataset = [p.get_artifact("dataset").with_name("dataset")]
            # Argo cannot make an input artifact conditional, so a run with a checkpoint takes the
            # second task; params.autofill refuses checkpoint paths with quotes, which would break `when`.
            p >> train(name="train", arguments=dataset, when=f"'{checkpoint}' == ''")
            p >> finetune(name="train-from-checkpoint", arguments=dataset, when=f"'{checkpoint}' != ''")
    spec = wt.to_dict()["spec"]
    spec["templates"] = [_name_first(t) for t in spec["templates"]]
    return Template(name=name, parameters=parameters, spec=spec, title=title, description=description,
                    labels={"used-by": "cvat", "app.kubernetes.io/part-of": "cvatflow"})


def _name_first(template: dict[str, Any]) -> dict[str, Any]:
    return {"name": template["name"], **{k: v for k, v in template.items() if k != "name"}}
