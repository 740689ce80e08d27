"""`cvatflow.Client`: list templates and execute them on a CVAT task or a dataset, on any backend."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from cvatflow.config import Settings, load_settings
from cvatflow.errors import CvatflowError, RunError
from cvatflow.params import CvatTask, Filled, autofill
from cvatflow.runs.kubernetes import run_name
from cvatflow.runs.run import Run
from cvatflow.templates.parameter import DUMP_FORMAT, OUTPUT_PATH
from cvatflow.templates.template import Template

COCO_FILE = "annotations/instances_default.json"


class Client:
    """The Python API: `Client().execute("detr-training", cvat_task=42, parameters={"epochs": 5})`.

    `backend` is "local" (this machine, the default with no cluster configured), "kubernetes"
    (Workflow objects through the Kubernetes API) or "argo-server"; settings come from
    `cvatflow.config.load_settings()` unless given.
    """

    def __init__(self, backend: str | None = None, *, settings: Settings | None = None, namespace: str | None = None,
                 argo_server_url: str | None = None, token: str | None = None, api=None) -> None:
        import os

        self.settings = settings or load_settings()
        self.kind = backend or ("argo-server" if argo_server_url else self.settings.backend)
        namespace = namespace or self.settings.namespace
        if self.kind == "local":
            from cvatflow.runs.local import LocalBackend

            self.backend = LocalBackend(self.settings.home, self.settings.store, self.settings.artifact_repository)
        elif self.kind == "kubernetes":
            from cvatflow.runs.kubernetes import KubernetesBackend

            self.backend = KubernetesBackend(namespace, api=api, kubeconfig=self.settings.kubeconfig)
        elif self.kind == "argo-server":
            from cvatflow.runs.argo_server import ArgoServerBackend

            url = argo_server_url or self.settings.argo_server_url
            if not url:
                raise RunError("no Argo Server URL; pass --argo-server URL or set ARGO_SERVER_URL")
            self.backend = ArgoServerBackend(url, namespace, token or os.environ.get("ARGO_TOKEN"))
        else:
            raise RunError(f"unknown backend {self.kind!r}; use local, kubernetes or argo-server")
        self._store = None

    @property
    def store(self):
        """The object store datasets are uploaded to and outputs land in."""
        if self._store is None:
            from cvatflow.storage import open_store

            self._store = open_store(self.settings.store, self.settings.artifact_repository)
        return self._store

    def templates(self, labels: dict[str, str] | None = None) -> list[Template]:
        return self.backend.templates(labels)

    def template(self, name: str | Template) -> Template:
        return name.copy() if isinstance(name, Template) else self.backend.get_template(name)

    def run(self, name: str) -> Run:
        return self.backend.run(name)

    def runs(self, labels: dict[str, str] | None = None) -> list[Run]:
        """Runs started by cvatflow, newest first."""
        return self.backend.runs(labels)

    def prepare(self, template: str | Template, cvat_task: int | str | CvatTask | None = None,
                dataset: str | Path | None = None, parameters: dict[str, Any] | None = None,
                labels: dict[str, str] | None = None,
                progress: Callable[[int, int], None] | None = None) -> Filled:
        """Dump or upload the data, then auto-fill and validate the parameters (nothing is submitted)."""
        template = self.template(template)
        if cvat_task is not None and dataset is not None:
            raise CvatflowError("give either a CVAT task or a dataset, not both")
        annotation_path, num_classes, task = None, None, None
        if cvat_task is not None:
            task = cvat_task if isinstance(cvat_task, CvatTask) else CvatTask(id=cvat_task)
            annotation_path, task.labels = self._dump(template, task, parameters or {}, progress)
        elif dataset is not None:
            annotation_path = self._upload(dataset, progress)
        if annotation_path is not None:
            num_classes = self._count_classes(annotation_path) if not (task and task.labels) else None
        # Where the backend can read the cluster's nodes, a pool's allocatable comes from them (unless configured).
        pools = replace(self.settings.node_pools, lookup=getattr(self.backend, "node_allocatable", None))
        return autofill(template, parameters, task=task, annotation_path=annotation_path, num_classes=num_classes,
                        node_pools=pools, checkpoint_exists=self.store.exists, labels=labels)

    def execute(self, template: str | Template, cvat_task: int | str | CvatTask | None = None,
                dataset: str | Path | None = None, parameters: dict[str, Any] | None = None,
                labels: dict[str, str] | None = None, name: str | None = None, wait: bool = False,
                progress: Callable[[int, int], None] | None = None) -> Run:
        """Start a run of `template` on a CVAT task or a dataset (export zip/folder, or a URI in the store)."""
        filled = self.prepare(template, cvat_task, dataset, parameters, labels, progress)
        return self.submit(filled, name=name, wait=wait)

    def submit(self, filled: Filled, name: str | None = None, wait: bool = False) -> Run:
        name = name or run_name(filled.template.name)
        run = self.backend.submit(filled, name=name, output_prefix=self.output_prefix(filled, name))
        if wait:
            run.wait()
        return run

    def output_prefix(self, filled: Filled, name: str) -> str | None:
        """Where the template's output artifact (`<cvat-output-path>/<run name>`) lands in the store."""
        if not filled.template.has_parameter(OUTPUT_PATH):
            return None
        base = filled.values[filled.template.parameter(OUTPUT_PATH).name].strip("/")
        return self.store.uri_for(f"{base}/{name}/")

    # -- data ----------------------------------------------------------------------------------

    def _dump(self, template: Template, task: CvatTask, parameters: dict[str, Any],
              progress) -> tuple[str, list[str]]:
        from cvatflow.cvat import dump_task

        if not self.settings.cvat_url:
            raise CvatflowError("no CVAT server configured; set CVAT_URL (and CVAT_ACCESS_TOKEN)")
        fmt = str(parameters.get(DUMP_FORMAT) or (template.parameter(DUMP_FORMAT).value
                                                  if template.has_parameter(DUMP_FORMAT) else "cvat_coco"))
        path, labels = dump_task(self.settings.cvat_url, task.id, fmt, self.settings.store,
                                 token=self.settings.cvat_token or None,
                                 repository=self.settings.artifact_repository, progress=progress)
        return path, list(labels)

    def _upload(self, dataset: str | Path, progress) -> str:
        text = str(dataset)
        if "://" in text:
            root = self.settings.store.rstrip("/") + "/"
            if not text.startswith(root):
                raise CvatflowError(f"dataset {text}: not in the configured store {root}; upload the export "
                                    f"with `cvatflow dataset upload` or give a local export")
            key = text[len(root):].strip("/") + "/"
            if not self.store.exists(key):
                raise CvatflowError(f"dataset {text}: nothing there; check the URI")
            return key
        from cvatflow.datasets.upload import upload_export

        return upload_export(Path(dataset), self.settings.store, task_id="local",
                             repository=self.settings.artifact_repository, progress=progress)

    def _count_classes(self, annotation_path: str) -> int | None:
        key = annotation_path.rstrip("/") + "/" + COCO_FILE
        try:
            data = json.loads(self.store.get_bytes(key))
        except CvatflowError:
            return None  # not COCO (e.g. TFRecord): the template's default stands
        return len(data.get("categories") or [])
