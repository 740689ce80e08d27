"""Building blocks for training pipelines, built with hera: the dataset step, the GPU train step, the sidecar."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hera.workflows import (
    DAG,
    Artifact,
    Container,
    EmptyDirVolume,
    Env,
    NoneArchiveStrategy,
    RawArtifact,
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

from cvatflow.nodepool import (
    NODE_POOL_PATCH,
    NODE_POOL_RESOURCES,
    NODE_POOL_SELECTOR,
    NODE_POOL_TOLERATIONS,
    scaled,
)
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
# The parameters that spread training over devices: processes per pod (a number, or `auto` = the node pool's GPU
# count, resolved by params.autofill) and pods (nodes > 1 runs on a JobSet, cvatflow.templates.jobset).
GPUS = "gpus"
NODES = "nodes"
# A pod's /dev/shm is 64 MiB; DataLoader workers and NCCL need more (pytorch#16979, NVIDIA/nccl#525). The memory
# it uses counts against the container's memory limit, so the size limit is a cap, not a reservation.
SHM = "/dev/shm"
SHM_PER_GPU_GI = 4


def node_pool_patch_parameter() -> Parameter:
    """The hidden parameter that carries the node pool's podSpecPatch ("{}" when no pool is configured)."""
    return Parameter(NODE_POOL_PATCH, "{}", "Node pool placement",
                     "Filled from the node-pool config: nodeSelector and resources of the chosen pool.",
                     type="hidden", visibility="internal")


def jobset_placement_parameters(step: TrainStep) -> list[Parameter]:
    """The hidden parameters that place a JobSet's pods on the node pool (filled like the podSpecPatch); their
    defaults, without a pool, are no selector, no toleration and the step's own requests."""
    import json

    own = {"requests": {"cpu": scaled(step.cpu, step.factor), "memory": scaled(step.memory, step.factor)}}
    hint = "Filled from the node-pool config for the pods of a multi-node run."
    return [Parameter(NODE_POOL_SELECTOR, "{}", "Node pool selector", hint, type="hidden", visibility="internal"),
            Parameter(NODE_POOL_TOLERATIONS, "[]", "Node pool tolerations", hint, type="hidden",
                      visibility="internal"),
            Parameter(NODE_POOL_RESOURCES, json.dumps(own, separators=(",", ":")), "Node pool resources", hint,
                      type="hidden", visibility="internal")]


def param(name: str) -> str:
    """The Argo expression for a workflow parameter's value."""
    return "{{workflow.parameters.%s}}" % name


@dataclass
class TrainStep:
    """What differs between training pipelines: the entry point, image and defaults of the train step."""

    model: str  # the `cvatflow-train` model name (detr, maskrcnn)
    image: str = param("image")
    # Processes (one per device) torchrun starts: a number N (the step asks N GPUs and N times the CPU and memory),
    # or an Argo expression such as the `gpus` parameter, whose node-pool patch scales the resources at submission.
    # 0 = CPU-only defaults, one process; a pool with GPUs adds one (cvatflow.nodepool.pool_resources).
    gpus: int | str = 0
    # Per process, modest and GPU-free: they fit the smallest node pool Onepanel documented (2 vCPU, 8 GB). A node
    # pool's resources replace them.
    cpu: str = "1"
    memory: str = "4Gi"
    output_size: str = "50Gi"
    extra_args: list[str] = field(default_factory=list)

    @property
    def processes(self) -> str:
        """torchrun's --nproc-per-node: the fixed count (at least 1) or the expression that gives it."""
        return str(max(self.gpus, 1)) if isinstance(self.gpus, int) else self.gpus

    @property
    def factor(self) -> int:
        """How many times the per-process CPU and memory a fixed-size step requests (1 for an expression)."""
        return max(self.gpus, 1) if isinstance(self.gpus, int) else 1

    @property
    def shm_size(self) -> str:
        # With the count known at submission only, room for 4 processes: memory-backed, it is a cap, not a reservation.
        return f"{SHM_PER_GPU_GI * (self.factor if isinstance(self.gpus, int) else 4)}Gi"


# torchrun through cvatflow-train: its exit status is a killed worker's 128 + signal (137, 143), which PREEMPTION
# retries; torchrun itself exits 1 whatever ended a worker (cvatflow.training.launch).
LAUNCHER = ["cvatflow-train", "torchrun"]


def torchrun(processes: str, program: list[str]) -> list[str]:
    """`cvatflow-train torchrun --standalone --nproc-per-node=N --no-python <program...>`: one process per device on
    this pod, under torch's torchrun (torch.distributed.run) with the exit status of the first failed worker.

    --no-python runs the program (a console script such as cvatflow-train) itself instead of `python <program>`.
    """
    return [*LAUNCHER, "--standalone", f"--nproc-per-node={processes}", "--no-python", *program]


def launched_program(command: list[str]) -> list[str]:
    """The program a command runs, past a torchrun launcher (`[cvatflow-train] torchrun [flags] --no-python prog
    ...` or `python -m torch.distributed.run ...`); other commands unchanged."""
    words = list(command)
    if words[:2] == LAUNCHER:
        words = words[1:]
    if words[:1] == ["torchrun"] or words[:3] == ["python", "-m", "torch.distributed.run"]:
        return words[words.index("--no-python") + 1:] if "--no-python" in words else []
    return words


def shm_volume(size: str) -> EmptyDirVolume:
    """A memory-backed emptyDir at /dev/shm, capped at `size` (a Kubernetes quantity)."""
    return EmptyDirVolume(name="dshm", mount_path=SHM, medium="Memory", size_limit=size)


def train_args(step: TrainStep, finetune: bool, data: str = DATASETS,
               hyperparameters: str = param("hyperparameters")) -> list[str]:
    """The arguments of `cvatflow-train <model> train` in a pod: data, output and the form's parameters
    (`hyperparameters` is their YAML text, or a file the pod has)."""
    args = ["--data", data, "--output", OUTPUT,
            "--model", param("cvat-model"),
            "--num-classes", param("cvat-num-classes"),
            "--epochs", param("epochs"),
            "--batch-size", param("batch-size"),
            "--hyperparameters", hyperparameters,
            *step.extra_args]
    return args + ["--models", MODELS] if finetune else args


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
    """The train step (on GPUs where the pool has them): trains from the prepared dataset, optionally from a
    fine-tune checkpoint, under torchrun with one process per device. Parameters are separate args, no shell."""
    inputs = [Artifact(name="dataset", path=DATASETS)]
    if finetune:
        inputs.append(S3Artifact(name="models", path=MODELS, key=param("cvat-finetune-checkpoint")))
    return Container(
        name=name,
        image=step.image,
        command=torchrun(step.processes, ["cvatflow-train", step.model, "train"]),
        args=train_args(step, finetune),
        inputs=inputs,
        outputs=[S3Artifact(name="model", path=OUTPUT, archive=NoneArchiveStrategy(),
                            key=param("cvat-output-path") + "/{{workflow.name}}")],
        env=[Env(name="PYTHONUNBUFFERED", value="1")],
        resources=Resources(cpu_request=scaled(step.cpu, step.factor), memory_request=scaled(step.memory, step.factor),
                            gpus=step.gpus if isinstance(step.gpus, int) and step.gpus else None),
        # The GPU toleration comes with the patch, on GPU pools only: a CPU run must not land on a GPU node.
        pod_spec_patch=param(NODE_POOL_PATCH),
        volume_mounts=[VolumeMount(name="output", mount_path=OUTPUT)],
        volumes=[shm_volume(step.shm_size)],
        sidecars=[UserContainer(
            name="tensorboard", image=step.image, mirror_volume_mounts=True,
            command=["tensorboard", "--logdir", f"{OUTPUT}/tensorboard", "--bind_all", "--port", "6006"],
            ports=[ContainerPort(container_port=6006, name="tensorboard")])],
        retry_strategy=RetryStrategy(limit="3", retry_policy="Always", expression=PREEMPTION,
                                     backoff=Backoff(duration="30s", factor="2")),
    )


def publish_container(image: str) -> Container:
    """Multi-node runs only: put what the JobSet's pods need where they pull it (Argo's artifacts reach Argo's pods
    only): the prepared dataset and the hyperparameters YAML, under `<cvat-output-path>/<workflow name>/shared`.

    The hyperparameters travel as a file (a raw artifact) because the manifest is YAML text into which Argo pastes
    parameter values: multi-line YAML there would break it, or add fields to it.
    """
    from cvatflow.templates.jobset import SHARED, SHARED_DATASET, SHARED_HYPERPARAMETERS, run_key

    return Container(
        name="publish-dataset",
        image=image,
        command=["cvatflow", "store", "tree", SHARED],
        inputs=[Artifact(name="dataset", path=SHARED_DATASET),
                RawArtifact(name="hyperparameters", path=SHARED_HYPERPARAMETERS, data=param("hyperparameters"))],
        outputs=[S3Artifact(name="shared", path=SHARED, archive=NoneArchiveStrategy(), key=run_key("shared"))],
        resources=Resources(cpu_request="100m", memory_request="256Mi"),
    )


def training_template(name: str, title: str, description: str, parameters: list[Parameter],
                      step: TrainStep, dataset_step=prepare_container) -> Template:
    """A CVAT training pipeline: prepare the dumped dataset, then train (from scratch or a checkpoint) in one pod
    under torchrun, or, with the `nodes` parameter above 1, on a JobSet of that many pods. `dataset_step(image)`
    builds the first step's Container (its output artifact `dataset` is what training reads)."""
    from cvatflow.templates.jobset import jobset_resource

    if not isinstance(step.gpus, str):  # a fixed process count: a `gpus` parameter would change nothing
        parameters = [p for p in parameters if p.name != GPUS]
    checkpoint = param("cvat-finetune-checkpoint")
    one_node, many_nodes = f"{param(NODES)} <= 1", f"{param(NODES)} > 1"
    with WorkflowTemplate(name=name, entrypoint="main",
                          volume_claim_templates=[claim("output", step.output_size)]) as wt:
        prepare = dataset_step(step.image)
        train = train_container(step, "train", finetune=False)
        finetune = train_container(step, "train-from-checkpoint", finetune=True)
        publish = publish_container(step.image)
        train_nodes = jobset_resource(step, "train-jobset", finetune=False)
        finetune_nodes = jobset_resource(step, "train-jobset-from-checkpoint", finetune=True)
        with DAG(name="main"):
            p = prepare()
            dataset = [p.get_artifact("dataset").with_name("dataset")]
            # Argo cannot make an input artifact conditional, so a run with a checkpoint takes the
            # second task; params.autofill refuses checkpoint paths with quotes, which would break `when`.
            p >> train(name="train", arguments=dataset, when=f"'{checkpoint}' == '' && {one_node}")
            p >> finetune(name="train-from-checkpoint", arguments=dataset,
                          when=f"'{checkpoint}' != '' && {one_node}")
            shared = p >> publish(name="publish-dataset", arguments=dataset, when=many_nodes)
            shared >> train_nodes(name="train-nodes", when=f"'{checkpoint}' == '' && {many_nodes}")
            shared >> finetune_nodes(name="train-nodes-from-checkpoint", when=f"'{checkpoint}' != '' && {many_nodes}")
    spec = wt.to_dict()["spec"]
    spec["templates"] = [_name_first(t) for t in spec["templates"]]
    return Template(name=name, parameters=parameters, spec=spec, title=title, description=description,
                    labels={"used-by": "cvat", "app.kubernetes.io/part-of": "cvatflow"})


def _name_first(template: dict[str, Any]) -> dict[str, Any]:
    return {"name": template["name"], **{k: v for k, v in template.items() if k != "name"}}
