"""gs:// stores through google-cloud-storage (STORAGE_EMULATOR_HOST honoured), MD5-verified and resumable."""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from cvatflow.errors import StorageError
from cvatflow.storage.base import ObjectInfo, Store


class GCSStore(Store):
    """A bucket and key prefix; credentials from the environment (or anonymous against an emulator)."""

    def __init__(self, uri: str, repository=None, workers: int = 16, client=None) -> None:
        super().__init__(uri, workers)
        from google.api_core import exceptions as gexc
        from google.cloud import storage

        parsed = urlparse(uri)
        if not parsed.netloc:
            raise StorageError(f"{uri}: a GCS URI names a bucket, like gs://my-bucket/prefix")
        self.bucket_name, self.prefix = parsed.netloc, parsed.path.strip("/")
        if client is None:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "test"),
                                        credentials=AnonymousCredentials())
            else:
                client = storage.Client()
        self.client = client
        self.bucket = client.bucket(self.bucket_name)
        self.transient = (gexc.ServiceUnavailable, gexc.TooManyRequests, gexc.InternalServerError,
                          gexc.BadGateway, gexc.GatewayTimeout, ConnectionError, TimeoutError)
        self._not_found = gexc.NotFound

    def _key(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _put(self, local: Path, key: str, callback: Callable[[int], None] | None = None) -> ObjectInfo | None:
        blob = self.bucket.blob(self._key(key))
        # Large files go up in resumable chunks; the library sends an MD5 the server checks.
        blob.chunk_size = 8 * 1024 * 1024 if local.stat().st_size > 16 * 1024 * 1024 else None
        try:
            blob.upload_from_filename(str(local), checksum="md5")
        except self._not_found:
            raise StorageError(f"upload {self.uri_for(key)}: bucket {self.bucket_name!r} does not exist") from None
        # The upload's answer carries the object's size and MD5 (checked by the library): no HEAD needed.
        return ObjectInfo(key.strip("/"), int(blob.size), blob.md5_hash or "") if blob.size is not None else None

    def _get(self, key: str, local: Path) -> None:
        self.bucket.blob(self._key(key)).download_to_filename(str(local))

    def head(self, key: str) -> ObjectInfo | None:
        blob = self.bucket.get_blob(self._key(key))
        if blob is None:
            return None
        return ObjectInfo(key.strip("/"), int(blob.size or 0), blob.md5_hash or "")

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        full = self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        try:
            blobs = list(self.client.list_blobs(self.bucket_name, prefix=full))
        except self._not_found:
            raise StorageError(f"list {self.uri_for(prefix)}: bucket {self.bucket_name!r} does not exist") from None
        cut = len(self.prefix) + 1 if self.prefix else 0
        return [ObjectInfo(b.name[cut:], int(b.size or 0), b.md5_hash or "") for b in blobs]

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.bucket.blob(self._key(key)).delete()
            except self._not_found:
                pass

    def checksum_of(self, local: Path) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        with open(local, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return base64.b64encode(digest.digest()).decode()
