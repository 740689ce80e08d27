"""The `smarttool-training` pipeline's pieces: the transform step and the template's parameters."""
from __future__ import annotations

import yaml
from hera.workflows import Artifact, Container, Env, RawArtifact, Resources, S3Artifact

from cvatflow.templates.steps import DATA, param

PIPELINE_PARAMETER = "transform-pipeline"
PIPELINE_FILE = f"{DATA}/pipeline.yaml"


def default_pipeline() -> str:
    """The seed's Smart Tool pipeline as the YAML the form shows (every class becomes `obj`)."""
    from cvatflow.datasets.transform import SMARTTOOL_PIPELINE

    head = ("# Layers run in order over the CVAT task's masks and polygons (README, \"Smart Tool\").\n"
            "# To keep the task's classes, delete the class_mapping layer's `__other__: obj` line.\n")
    return head + yaml.safe_dump(SMARTTOOL_PIPELINE, sort_keys=False, default_flow_style=None)


def transform_container(image: str) -> Container:
    """Ingest the dumped task and run the transform pipeline; the pipeline YAML reaches the step as a file (a raw
    artifact), and every value is a separate argument: nothing goes through a shell."""
    return Container(
        name="transform-dataset",
        image=image,
        command=["cvatflow", "dataset", "transform", f"{DATA}/export", "--out", f"{DATA}/prepared",
                 "--pipeline", PIPELINE_FILE],
        inputs=[S3Artifact(name="export", path=f"{DATA}/export", key=param("cvat-annotation-path")),
                RawArtifact(name="pipeline", path=PIPELINE_FILE, data=param(PIPELINE_PARAMETER))],
        outputs=[Artifact(name="dataset", path=f"{DATA}/prepared")],
        resources=Resources(cpu_request="1", memory_request="4Gi"),
        env=[Env(name="PYTHONUNBUFFERED", value="1")],
    )
