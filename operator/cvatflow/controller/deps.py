"""What the handlers need from outside (cluster, settings, CVAT dump, object store), bundled to be replaceable."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cvatflow.config import Settings, load_settings

# dump(cvat_url, task_id, dump_format, store_uri, token=..., repository=...) -> (annotation_path, label names);
# the submission pipeline's, so the operator and the Client export a task the same way.
from cvatflow.submission import DumpFn, dump_task


def kopf_event(obj: Any, type: str, reason: str, message: str) -> None:
    """Post a Kubernetes Event on `obj` through kopf's poster (works from handler threads)."""
    import kopf

    kopf.event(obj, type=type, reason=reason, message=message)


def store_checker(settings: Settings) -> Callable[[str], bool]:
    """`exists(prefix)` on the configured store, opened on first use."""
    store = None

    def exists(prefix: str) -> bool:
        nonlocal store
        if store is None:
            from cvatflow.storage import open_store

            store = open_store(settings.store, repository=settings.artifact_repository)
        return store.exists(prefix)

    return exists


@dataclass
class Deps:
    """The operator's collaborators; kopf hands them to every handler through its `memo`."""

    cluster: Any
    settings: Settings
    dump: DumpFn = dump_task
    checkpoint_exists: Callable[[str], bool] | None = None
    # count_classes(annotation_path) -> categories of the COCO dataset there, None when unreadable;
    # None here: the submission pipeline reads the configured store.
    count_classes: Callable[[str], int | None] | None = None
    post_event: Callable[[Any, str, str, str], None] = kopf_event
    # Finished steps' logs do not change: parsed events are kept per pod (bounded by the runs in flight).
    log_cache: dict[str, list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.checkpoint_exists is None:
            self.checkpoint_exists = store_checker(self.settings)

    @classmethod
    def from_environment(cls) -> Deps:
        """Settings from $CVATFLOW_CONFIG (the chart mounts its ConfigMap there) and the real cluster."""
        from cvatflow.controller.cluster import Cluster

        return cls(cluster=Cluster(), settings=load_settings())
