"""`cvatflow.Client`: list templates and execute them on a CVAT task or a dataset, on any backend."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cvatflow.argo import run_name, status_from_workflow
from cvatflow.config import Settings, load_settings
from cvatflow.errors import CvatflowError, ProblemsError, RunError
from cvatflow.names import run_problems
from cvatflow.params import CvatTask, Filled
from cvatflow.runs.backend import Backend
from cvatflow.runs.run import Run, RunStatus
from cvatflow.submission import COCO_FILE, Pipeline, Request  # noqa: F401 (COCO_FILE: older imports)
from cvatflow.templates.template import Template


class Client:
    """The Python API: `Client().execute("detr-training", cvat_task=42, parameters={"epochs": 5})`.

    `backend` is "local" (this machine, the default with no cluster configured), "kubernetes"
    (Workflow objects through the Kubernetes API) or "argo-server"; settings come from
    `cvatflow.config.load_settings()` unless given.
    """

    def __init__(self, backend: str | None = None, *, settings: Settings | None = None, namespace: str | None = None,
                 argo_server_url: str | None = None, token: str | None = None, api=None) -> None:
        self.settings = settings or load_settings()
        self.kind = backend or ("argo-server" if argo_server_url else self.settings.backend)
        namespace = namespace or self.settings.namespace
        if self.kind == "local":
            from cvatflow.runs.local import LocalBackend

            self.backend = LocalBackend(self.settings.home, self.settings.store, self.settings.artifact_repository)
        elif self.kind == "kubernetes":
            from cvatflow.runs.kubernetes import KubernetesBackend

            self.backend = KubernetesBackend(namespace, api=api, kubeconfig=self.settings.kubeconfig,
                                             url=self.settings.kube_url or None,
                                             service_account=self.settings.workflow_service_account or None)
        elif self.kind == "argo-server":
            from cvatflow.runs.argo_server import ArgoServerBackend

            url = argo_server_url or self.settings.argo_server_url
            if not url:
                raise RunError("no Argo Server URL; pass --argo-server URL or set ARGO_SERVER_URL")
            self.backend = ArgoServerBackend(url, namespace, token or self.settings.argo_token or None,
                                             service_account=self.settings.workflow_service_account or None)
        else:
            raise RunError(f"unknown backend {self.kind!r}; use local, kubernetes or argo-server")
        self.backend: Backend  # (set above: local, kubernetes or argo-server)
        self._pipeline: Pipeline | None = None

    @property
    def pipeline(self) -> Pipeline:
        """The submission pipeline (cvatflow.submission) against this client's settings and backend."""
        if self._pipeline is None:
            self._pipeline = Pipeline(self.settings, node_allocatable=getattr(self.backend, "node_allocatable", None))
        return self._pipeline

    @property
    def store(self):
        """The object store datasets are uploaded to and outputs land in."""
        return self.pipeline.store

    def templates(self, labels: dict[str, str] | None = None) -> list[Template]:
        return self.backend.templates(labels)

    def template(self, name: str | Template) -> Template:
        return name.copy() if isinstance(name, Template) else self.backend.get_template(name)

    def run(self, name: str) -> Run:
        return self.backend.run(name)

    def runs(self, labels: dict[str, str] | None = None) -> list[Run]:
        """Runs started by cvatflow, newest first."""
        return self.backend.runs(labels)

    def statuses(self, labels: dict[str, str] | None = None) -> list[RunStatus]:
        """The runs' statuses, newest first, as a listing shows them (the local backend reads its index)."""
        statuses = getattr(self.backend, "statuses", None)
        if statuses:
            return statuses(labels)
        # A listed Workflow already carries its status: reading it again would cost a request per run.
        return [status_from_workflow(r._workflow) if isinstance(getattr(r, "_workflow", None), dict) else r.status()
                for r in self.backend.runs(labels)]

    def resubmit(self, run: Run | str, name: str | None = None) -> Run:
        """A new run of `run`'s workflow with the same parameters (Argo's resubmit); a new name unless given."""
        resubmit = getattr(self.backend, "resubmit", None)
        if resubmit is None:
            raise RunError(f"the {self.kind} backend cannot resubmit runs")
        return resubmit(run if isinstance(run, Run) else self.run(run), name)

    def delete(self, run: Run | str, outputs: bool = False) -> int:
        """Delete a run (terminated first if still going); its outputs in the store too only with `outputs`.
        Returns how many store objects were removed."""
        run = run if isinstance(run, Run) else self.run(run)
        return run.delete(outputs=outputs, store=self.store if outputs else None)

    def request(self, template: str | Template, cvat_task: int | str | CvatTask | None = None,
                dataset: str | Path | None = None, parameters: dict[str, Any] | None = None,
                labels: dict[str, str] | None = None) -> Request:
        """This client's arguments as the pipeline's Request (CvatflowError for a task and a dataset both)."""
        if cvat_task is not None and dataset is not None:
            raise CvatflowError("give either a CVAT task or a dataset, not both")
        problems = run_problems(None, labels)
        if problems:
            raise ProblemsError("run labels", problems)
        task = None
        if cvat_task is not None:
            task = cvat_task if isinstance(cvat_task, CvatTask) else CvatTask(id=cvat_task)
        return Request(self.template(template), task=task, dataset=dataset, parameters=dict(parameters or {}),
                       labels=dict(labels or {}))

    def prepare(self, template: str | Template, cvat_task: int | str | CvatTask | None = None,
                dataset: str | Path | None = None, parameters: dict[str, Any] | None = None,
                labels: dict[str, str] | None = None,
                progress: Callable[[int, int], None] | None = None) -> Filled:
        """Dump or upload the data, then auto-fill and validate the parameters (nothing is submitted).

        Everything that can be checked is checked before anything is written; if a later check fails,
        the dump or upload is removed again, so a refused prepare leaves the store as it was.
        """
        filled, _ = self.pipeline.prepare(self.request(template, cvat_task, dataset, parameters, labels), progress)
        return filled

    def check(self, template: Template, task: CvatTask | None = None, dataset: bool = False,
              parameters: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
              num_classes: int | None = None) -> Filled:
        """Auto-fill with stand-ins for what the dump or upload will produce, so that every bad value is
        refused (ProblemsError, NotFoundError for a missing checkpoint) before anything is exported or written."""
        problems = run_problems(None, labels)
        if problems:
            raise ProblemsError("run labels", problems)
        request = Request(template, task=task, dataset="pending" if dataset else None,
                          parameters=dict(parameters or {}), labels=dict(labels or {}))
        return self.pipeline.check(request, num_classes)

    def discard(self, annotation_path: str | None) -> None:
        """Remove a dump or upload this client wrote, after a later step failed (best effort: logged)."""
        self.pipeline.discard(annotation_path)

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
        filled, data = self.pipeline.prepare(self.request(template, cvat_task, dataset, parameters, labels),
                                             progress)
        if stage is not None:
            stage("submitting")
        try:
            run = self.submit(filled, name=name)
        except BaseException:
            self.pipeline.discard(data)  # the cluster refused it: the data it would have read goes too
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
        return self.pipeline.output_prefix(filled, name)

    def stored_key(self, uri: str) -> str:
        """The key of a dataset already in the configured store, given by its URI; a CvatflowError for a URI
        outside the store, a key that is not one (see storage/keys.py), or nothing there."""
        return self.pipeline.dataset_key(uri)
