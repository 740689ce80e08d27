"""Upload a CVAT export to object storage as a normalised dataset; the prefix is the cvat-annotation-path."""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

from cvatflow.datasets.ingest import DatasetInfo, ingest
from cvatflow.datasets.report import require_usable
from cvatflow.errors import ProblemsError
from cvatflow.storage import Progress, open_store


def annotation_prefix(task_id: int | str, now: datetime | None = None) -> str:
    """`annotations/<task id>/<MMDDYYYYHHMMSS>/`, Onepanel's layout (its timestamp format too)."""
    return f"annotations/{task_id}/{(now or datetime.now()).strftime('%m%d%Y%H%M%S')}/"


@contextmanager
def staged(export: Path, fix: bool = True, crowd: str = "object") -> Iterator[DatasetInfo]:
    """Ingest and validate `export` into a temporary folder (removed on exit); nothing is written to a store.

    Raises the ingest's DatasetError, one ProblemsError naming `export` with every blocking problem, or
    DatasetError with the dataset report when no object is usable.
    """
    with tempfile.TemporaryDirectory(prefix="cvatflow-upload-") as tmp:
        info = ingest(Path(export), Path(tmp) / "dataset", fix=fix, crowd=crowd)
        errors = [p for p in (info.report.problems if info.report else []) if p.severity == "error"]
        if errors:
            raise ProblemsError(str(export), errors)
        if info.ingest is not None:
            require_usable(info.ingest, str(export))
        yield info


def upload_staged(info: DatasetInfo, store_uri: str, task_id: int | str = "local", repository=None,
                  progress: Progress | None = None, now: datetime | None = None) -> str:
    """Upload a staged dataset under a fresh annotation prefix and return the prefix; a failed upload
    removes what it wrote, so the store is as it was."""
    prefix = annotation_prefix(task_id, now)
    store = open_store(store_uri, repository)
    try:
        store.upload_dir(info.path, prefix, progress=progress)
    except BaseException:
        with suppress(Exception):
            store.delete_prefix(prefix)
        raise
    return prefix


def upload_export(export: Path, store_uri: str, task_id: int | str = "local", repository=None,
                  progress: Progress | None = None, now: datetime | None = None, fix: bool = True,
                  crowd: str = "object") -> str:
    """Ingest and validate `export`, upload it under a fresh annotation prefix, and return the prefix.

    By default boxes that leave their image are clipped and unusable records dropped (CVAT lets boxes
    hang over the edge); with `fix=False` any problem refuses the upload instead. The dataset report
    (dataset_report.json) travels with the dataset; a dataset with no usable object is refused.
    """
    return upload_dataset(export, store_uri, task_id, repository, progress, now, fix, crowd)[0]


def upload_dataset(export: Path, store_uri: str, task_id: int | str = "local", repository=None,
                   progress: Progress | None = None, now: datetime | None = None, fix: bool = True,
                   crowd: str = "object") -> tuple[str, DatasetInfo]:
    """`upload_export` that also returns what ingest produced (its `ingest` is the dataset report)."""
    with staged(export, fix, crowd) as info:
        return upload_staged(info, store_uri, task_id, repository, progress, now), info
