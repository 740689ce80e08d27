"""The one path from a request to a run: resolve the dataset, dump if needed, fill and validate, output prefix, Workflow.

Every entry point (the CLI and `Client`, the HTTP API through `Client`, the operator) calls this module and
only adapts its own input and output. The transaction rule lives here, once: every value is validated
with stand-ins for the dump before anything is exported or uploaded, and what a refused submission wrote
is removed again, so the store and the cluster are left as they were.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cvatflow import argo
from cvatflow.config import Settings
from cvatflow.errors import CvatflowError, DatasetError
from cvatflow.params import CvatTask, Filled, autofill
from cvatflow.storage.keys import key_in_store, key_problem
from cvatflow.templates.parameter import DUMP_FORMAT, OUTPUT_PATH
from cvatflow.templates.template import Template

log = logging.getLogger("cvatflow")

COCO_FILE = "annotations/instances_default.json"  # where a dataset in the store keeps its COCO file
# Stands in for the dump while the parameters are checked, so an invalid run never costs an export.
PENDING_DUMP = "annotations/pending/"
DEFAULT_DUMP_FORMAT = "cvat_coco"

# dump(cvat_url, task_id, dump_format, store_uri, token=..., repository=...) -> (annotation_path, label names)
DumpFn = Callable[..., tuple[str, list[str]]]


def dump_task(cvat_url: str, task_id: int, dump_format: str, store_uri: str, *, token: str | None = None,
              repository: Any = None, progress: Callable[[int, int], None] | None = None) -> tuple[str, list[str]]:
    """Export a CVAT task into the store (cvatflow.cvat, imported only when a run needs a dump).

    Returns (the annotation prefix, ending in /, the task's label names).
    """
    from cvatflow.cvat import dump_task as dump

    annotation_path, labels = dump(cvat_url, task_id, dump_format, store_uri, token=token, repository=repository,
                                   progress=progress)
    return annotation_path, [label if isinstance(label, str) else getattr(label, "name", str(label))
                             for label in labels]


@dataclass
class Request:
    """What to run, as every entry point receives it once its own input is parsed.

    `dataset` is a local export (zip or folder) or a URI in the configured store; `output_path` is the
    `cvat-output-path` chosen outside the parameters (the operator's spec.outputPrefix); `annotation_path`
    and `task_labels` are a dump made earlier (the operator records them, so a resumed run reuses them).
    """

    template: Template
    task: CvatTask | None = None
    dataset: str | Path | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    output_path: str | None = None
    annotation_path: str | None = None
    task_labels: list[str] | None = None
    cvat_url: str | None = None  # default: the CVAT_URL setting
    cvat_token: str | None = None  # default: the CVAT_ACCESS_TOKEN setting


@dataclass
class Data:
    """The data a run reads: its prefix in the store, the task's labels or the class count, and whether this
    submission wrote it (then a later failure removes it)."""

    annotation_path: str | None
    labels: list[str] | None = None
    num_classes: int | None = None
    written: bool = False


class Pipeline:
    """The submission steps against one configuration.

    `store` is opened on first use (a `cvatflow.storage` Store); `exists(prefix)` may replace its check
    (the operator asks through its own reader); `node_allocatable(label, value)` reads a pool's nodes
    where the backend can; `dump` exports a CVAT task (the operator's tests record it).
    """

    def __init__(self, settings: Settings, *, store: Any = None, exists: Callable[[str], bool] | None = None,
                 node_allocatable: Callable[[str, str], dict[str, str] | None] | None = None,
                 dump: DumpFn | None = None) -> None:
        self.settings = settings
        self._store = store
        self._exists = exists
        self.node_allocatable = node_allocatable
        self._dump = dump or dump_task

    @property
    def store(self):
        if self._store is None:
            from cvatflow.storage import open_store

            self._store = open_store(self.settings.store, self.settings.artifact_repository)
        return self._store

    def exists(self, prefix: str) -> bool:
        return self._exists(prefix) if self._exists is not None else self.store.exists(prefix)

    # -- 1. check, before anything is written --------------------------------------------------

    def check(self, request: Request, num_classes: int | None = None) -> Filled:
        """Auto-fill with stand-ins for what the dump or upload will produce, so that every bad value is refused
        (ProblemsError with all of them, NotFoundError for a missing checkpoint) before anything is written."""
        task = request.task
        has_data = task is not None or request.dataset is not None or request.annotation_path is not None
        probe = None
        if task is not None:
            probe = CvatTask(id=task.id, labels=list(request.task_labels or task.labels) or ["?"])
        if request.dataset is not None and num_classes is None:
            num_classes = 1
        return self._autofill(request, probe, request.annotation_path or (PENDING_DUMP if has_data else None),
                              num_classes)

    def dataset_key(self, dataset: str, check_exists: bool = True) -> str:
        """The key (ending in /) of a dataset given by its URI in the configured store, or by its key there.

        Raises DatasetError, naming `dataset` as given, for a URI outside the store, a key that cannot be
        one (storage/keys.py), or, with `check_exists`, nothing there.
        """
        shown = dataset[:200]
        key = key_in_store(dataset, self.settings.store) if "://" in dataset else dataset
        if key is None:
            raise DatasetError(f"dataset {shown} is not in the configured store {self.settings.store}; upload "
                               f"the export with `cvatflow dataset upload` or give a local export")
        problem = key_problem(key)
        if problem:
            raise DatasetError(f"dataset {shown}: the key {problem}")
        key = key.strip("/") + "/"
        if check_exists and not self.exists(key):
            raise DatasetError(f"dataset {shown}: nothing there; check the URI")
        return key

    # -- 2. the data: a dump, an upload, or a dataset already in the store -----------------------

    def dump_format(self, template: Template, parameters: dict[str, Any]) -> str:
        """The `dump-format` a task is exported in: the user's value, else the template's, else cvat_coco."""
        if not template.has_parameter(DUMP_FORMAT):
            return DEFAULT_DUMP_FORMAT
        parameter = template.parameter(DUMP_FORMAT)
        given = parameters.get(parameter.name, parameters.get(DUMP_FORMAT))
        return str(given or parameter.value or DEFAULT_DUMP_FORMAT)

    def dump(self, request: Request, progress: Callable[[int, int], None] | None = None) -> Data:
        """Export the request's CVAT task into the store (CvatflowError or OSError when CVAT or the store fail)."""
        assert request.task is not None
        url = request.cvat_url or self.settings.cvat_url
        if not url:
            raise CvatflowError("no CVAT server configured; set CVAT_URL (and CVAT_ACCESS_TOKEN)")
        token = request.cvat_token if request.cvat_token is not None else self.settings.cvat_token
        kwargs: dict[str, Any] = {"token": token or None, "repository": self.settings.artifact_repository}
        if progress is not None:
            kwargs["progress"] = progress
        path, labels = self._dump(url, int(request.task.id), self.dump_format(request.template, request.parameters),
                                  self.settings.store, **kwargs)
        return Data(path, labels=list(labels), written=True)

    def data(self, request: Request, progress: Callable[[int, int], None] | None = None) -> Data:
        """Resolve the request's data, dumping or uploading it when needed (after `check`)."""
        if request.annotation_path is not None:  # dumped by an earlier attempt
            return Data(request.annotation_path, labels=request.task_labels)
        if request.task is not None:
            return self.dump(request, progress)
        if request.dataset is None:
            return Data(None)
        if "://" in str(request.dataset):
            key = self.dataset_key(str(request.dataset))
            return Data(key, num_classes=self.count_classes(key))
        from cvatflow.datasets.upload import staged, upload_staged

        with staged(Path(request.dataset)) as info:  # ingested and validated in a temporary folder
            num_classes = len(info.categories) if info.coco else None
            self.check(request, num_classes)  # the class count is known now: check again before writing
            path = upload_staged(info, self.settings.store, task_id="local",
                                 repository=self.settings.artifact_repository, progress=progress)
        return Data(path, num_classes=num_classes, written=True)

    def count_classes(self, annotation_path: str) -> int | None:
        """The number of categories of a COCO dataset in the store; None when it is not COCO (e.g. TFRecord)."""
        try:
            data = json.loads(self.store.get_bytes(annotation_path.rstrip("/") + "/" + COCO_FILE))
        except CvatflowError:
            return None  # the template's default stands
        return len(data.get("categories") or [])

    def discard(self, data: Data | str | None) -> None:
        """Remove what this submission wrote, after a later step failed (best effort: logged)."""
        path = data.annotation_path if isinstance(data, Data) and data.written else data
        if not path or isinstance(path, Data):
            return
        try:
            self.store.delete_prefix(path)
        except Exception as exc:  # noqa: BLE001 (the first failure is the one to report)
            log.warning("could not remove %s from the store after a failed submission: %s", path, exc)

    # -- 3. fill and validate ------------------------------------------------------------------

    def fill(self, request: Request, data: Data) -> Filled:
        """The template's parameters filled from the data and checked (ProblemsError, NotFoundError)."""
        task = None
        if request.task is not None:
            task = replace(request.task, labels=list(data.labels or request.task.labels or []))
        return self._autofill(request, task, data.annotation_path, data.num_classes)

    def _autofill(self, request: Request, task: CvatTask | None, annotation_path: str | None,
                  num_classes: int | None) -> Filled:
        # Where the backend can read the cluster's nodes, a pool's allocatable comes from them (unless configured).
        pools = replace(self.settings.node_pools, lookup=self.node_allocatable)
        return autofill(request.template, request.parameters, task=task, annotation_path=annotation_path,
                        num_classes=num_classes, output_path=request.output_path, node_pools=pools,
                        checkpoint_exists=self.exists, labels=request.labels)

    def prepare(self, request: Request, progress: Callable[[int, int], None] | None = None
                ) -> tuple[Filled, Data]:
        """check → data → fill; a failure after the data was written removes it again."""
        self.check(request)
        data = self.data(request, progress)
        try:
            return self.fill(request, data), data
        except BaseException:
            self.discard(data)
            raise

    # -- 4. where the outputs land, 5. the Workflow ---------------------------------------------

    def output_prefix(self, filled: Filled, name: str) -> str | None:
        """Where the template's output artifact (`<store>/<cvat-output-path>/<run name>/`) lands, or None for
        a template without an output path."""
        if not filled.template.has_parameter(OUTPUT_PATH):
            return None
        base = filled.values[filled.template.parameter(OUTPUT_PATH).name].strip("/")
        return f"{self.settings.store.rstrip('/')}/{base}/{name}/"

    def manifest(self, filled: Filled, name: str, namespace: str | None = None,
                 owner: dict[str, Any] | None = None) -> dict[str, Any]:
        """The Workflow manifest of a prepared run, as every backend and the operator submit it."""
        return argo.workflow_manifest(filled, name, namespace or self.settings.namespace, owner=owner,
                                      output_prefix=self.output_prefix(filled, name),
                                      service_account=self.settings.workflow_service_account or None)
