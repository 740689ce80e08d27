"""Object stores addressed by URI: s3://bucket/prefix, gs://bucket/prefix and file:///path."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from cvatflow.errors import StorageError
from cvatflow.storage.base import ObjectInfo, Progress, Store, TransferStats

SCHEMES = ("s3", "gs", "file")  # and gcs://, read as gs://
USAGE = "s3://bucket/prefix, gs://bucket/prefix or file:///absolute/path"


def uri_problem(uri: str) -> str | None:
    """Why `uri` is no store URI open_store can open, as a phrase after the URI ("uses the scheme 'ftp', ..."),
    or None when it is one: a scheme of SCHEMES (or gcs), a bucket for s3/gs, no host for file."""
    scheme, sep, _ = uri.partition("://")
    if not sep:
        return "is not a URI" + (f" (for a folder write {Path(uri).expanduser().absolute().as_uri()})" if uri else "")
    if scheme not in (*SCHEMES, "gcs"):
        return f"uses the scheme {scheme!r}, which cvatflow cannot store to (it supports s3, gs and file)"
    netloc = urlparse(uri).netloc
    if scheme == "file" and netloc not in ("", "localhost"):
        return f"names the host {netloc!r}; a file URI names a folder on this machine, like file:///data/store"
    if scheme != "file" and not netloc:
        return "names no bucket"
    return None


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
    raise StorageError(f"{uri!r} {uri_problem(uri) or 'is not a store URI'}; use {USAGE}")


__all__ = ["ObjectInfo", "Progress", "Store", "TransferStats", "open_store", "uri_problem"]
