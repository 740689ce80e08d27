"""Object stores addressed by URI: s3://bucket/prefix, gs://bucket/prefix and file:///path."""
from __future__ import annotations

from cvatflow.errors import StorageError
from cvatflow.storage.base import ObjectInfo, Progress, Store, TransferStats

SCHEMES = ("s3", "gs", "file")


def open_store(uri: str, repository=None, workers: int = 16) -> Store:
    """The store for `uri`; S3 endpoint and region come from `repository` (an ArtifactRepository) if given."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme == "file":
        from cvatflow.storage.local import LOCAL_WORKERS, LocalStore

        return LocalStore(uri, workers=min(workers, LOCAL_WORKERS))
    if scheme == "s3":
        from cvatflow.storage.s3 import S3Store

        return S3Store(uri, repository, workers=workers)
    if scheme in ("gs", "gcs"):
        from cvatflow.storage.gcs import GCSStore

        return GCSStore(uri.replace("gcs://", "gs://", 1), repository, workers=workers)
    raise StorageError(f"{uri!r} is not a store URI; use s3://bucket/prefix, gs://bucket/prefix or "
                       f"file:///absolute/path")


__all__ = ["ObjectInfo", "Progress", "Store", "TransferStats", "open_store"]
