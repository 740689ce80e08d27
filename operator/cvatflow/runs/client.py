"""`cvatflow.Client`: list templates and execute them on a CVAT task or a dataset, on any backend."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from cvatflow.config import Settings, load_settings
from cvatflow.errors import CvatflowError, ProblemsError, RunError
from cvatflow.names import run_problems
from cvatflow.params import CvatTask, Filled, autofill
from cvatflow.runs.kubernetes import run_name
from cvatflow.runs.run import Run
from cvatflow.storage.keys import key_problem
from cvatflow.templates.parameter import DUMP_FORMAT, OUTPUT_PATH
from cvatflow.templates.template import Template

COCO_FILE = "annotations/instances_default.json"
log = logging.getLogger("cvatflow")


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
        """Dump or upload the data, then auto-fill and validate the parameters (nothing is submitted).

        Everything that can be checked is checked before anything is written; if a later check fails,
        the dump or upload is removed again, so a refused prepare leaves the store as it was.
        """
        filled, _ = self._prepare(template, cvat_task, dataset, parameters, labels, progress)
        return filled

    def check(self, template: Template, task: CvatTask | None = None, dataset: bool = False,
              parameters: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
              num_classes: int | None = None) -> Filled:
        """Auto-fill with stand-ins for what the dump or upload will produce, so that every bad value is
        refused (ProblemsError, NotFoundError for a missing checkpoint) before anything is exported or written."""
        problems = run_problems(None, labels)
        if problems:
            raise ProblemsError("run labels", problems)
        placeholder = "annotations/pending/" if (task is not None or dataset) else None
        probe = CvatTask(id=task.id, labels=list(task.labels) or ["?"]) if task is not None else None
        if dataset and num_classes is None:
            num_classes = 1
        return autofill(template, parameters, task=probe, annotation_path=placeholder, num_classes=num_classes,
                        node_pools=self.settings.node_pools, checkpoint_exists=self.store.exists, labels=labels)

    def _prepare(self, template: str | Template, cvat_task, dataset, parameters, labels,
                 progress) -> tuple[Filled, str | None]:
        """(filled, the annotation prefix this call wrote to the store, or None)."""
        template = self.template(template)
        if cvat_task is not None and dataset is not None:
            raise CvatflowError("give either a CVAT task or a dataset, not both")
        task = None
        if cvat_task is not None:
            task = cvat_task if isinstance(cvat_task, CvatTask) else CvatTask(id=cvat_task)
        self.check(template, task, dataset is not None, parameters, labels)  # 1. values, before any work
        if task is not None:
            annotation_path, task.labels = self._dump(template, task, parameters or {}, progress)
            return self._fill(template, parameters, task, annotation_path, None, labels, written=True)
        if dataset is None:
            return self._fill(template, parameters, None, None, None, labels, written=False)
        if "://" in str(dataset):
            return self._fill(template, parameters, None, self.stored_key(str(dataset)), None, labels, written=False)
        from cvatflow.datasets.upload import staged, upload_staged

        with staged(Path(dataset)) as info:  # 2. the dataset, ingested and validated in a temporary folder
            num_classes = len(info.categories) if info.coco else None
            self.check(template, None, True, parameters, labels, num_classes)
            annotation_path = upload_staged(info, self.settings.store, task_id="local",  # 3. written
                                            repository=self.settings.artifact_repository, progress=progress)
        return self._fill(template, parameters, None, annotation_path, num_classes, labels, written=True)

    def _fill(self, template: Template, parameters, task, annotation_path, num_classes, labels,
              written: bool) -> tuple[Filled, str | None]:
        try:
            if annotation_path is not None and num_classes is None and not (task and task.labels):
                num_classes = self._count_classes(annotation_path)
            # Where the backend can read the cluster's nodes, a pool's allocatable comes from them (unless
            # configured).
            pools = replace(self.settings.node_pools, lookup=getattr(self.backend, "node_allocatable", None))
            filled = autofill(template, parameters, task=task, annotation_path=annotation_path,
                              num_classes=num_classes, node_pools=pools,
                              checkpoint_exists=self.store.exists, labels=labels)
        except BaseException:
            if written:
                self.discard(annotation_path)
            raise
        return filled, annotation_path if written else None

    def discard(self, annotation_path: str | None) -> None:
        """Remove a dump or upload this client wrote, after a later step failed (best effort: logged)."""
        if not annotation_path:
            return
        try:
            self.store.delete_prefix(annotation_path)
        except Exception as exc:  # noqa: BLE001 (the first failure is the one to report)
            log.warning("could not remove %s from the store after a failed submission: %s", annotation_path, exc)

    def execute(self, template: str | Template, cvat_task: int | str | CvatTask | None = None,
                dataset: str | Path | None = None, parameters: dict[str, Any] | None = None,
                labels: dict[str, str] | None = None, name: str | None = None, wait: bool = False,
                progress: Callable[[int, int], None] | None = None,
                stage: Callable[[str], None] | None = None) -> Run:
        """Start a run of `template` on a CVAT task or a dataset (export zip/folder, or a URI in the store).

        Validates every value, then dumps or uploads the data, then submits; a failure at any step leaves
        the store and the cluster as they were (what was uploaded is removed). `stage("submitting")` is
        called before the submission, for callers that show progress.
        """
        problems = run_problems(name, None)
        if problems:
            raise ProblemsError("run", problems)
        filled, written = self._prepare(template, cvat_task, dataset, parameters, labels, progress)
        if stage is not None:
            stage("submitting")
        try:
            run = self.submit(filled, name=name)
        except BaseException:
            self.discard(written)  # the cluster refused it: the data it would have read goes too
            raise
        if wait:
            run.wait()
        return run

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

    def stored_key(self, uri: str) -> str:
        """The key of a dataset already in the configured store, given by its URI; a CvatflowError for a URI
        outside the store, a key that is not one (see storage/keys.py), or nothing there."""
        root = self.settings.store.rstrip("/") + "/"
        if not uri.startswith(root):
            raise CvatflowError(f"dataset {uri}: not in the configured store {root}; upload the export "
                                f"with `cvatflow dataset upload` or give a local export")
        key = uri[len(root):].strip("/") + "/"
        problem = key_problem(key)
        if problem:
            raise CvatflowError(f"dataset {uri[:200]}: the key {problem}")
        if not self.store.exists(key):
            raise CvatflowError(f"dataset {uri}: nothing there; check the URI")
        return key

    def _count_classes(self, annotation_path: str) -> int | None:
        key = annotation_path.rstrip("/") + "/" + COCO_FILE
        try:
            data = json.loads(self.store.get_bytes(key))
        except CvatflowError:
            return None  # not COCO (e.g. TFRecord): the template's default stands
        return len(data.get("categories") or [])
