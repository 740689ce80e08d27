"""gs:// stores through google-cloud-storage (STORAGE_EMULATOR_HOST honoured), MD5-verified and resumable."""
from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cvatflow.errors import StorageError
from cvatflow.storage.base import ObjectInfo, Store, bucket_and_prefix


class GCSStore(Store):
    """A bucket and key prefix; credentials from the environment (or anonymous against an emulator)."""

    def __init__(self, uri: str, repository=None, workers: int = 16, client=None) -> None:
        super().__init__(uri, workers)
        from google.api_core import exceptions as gexc
        from google.cloud import storage

        self.bucket_name, self.prefix = bucket_and_prefix(uri)
        if client is None:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "test"),
                                        credentials=AnonymousCredentials())
            else:
                from google.auth.exceptions import DefaultCredentialsError

                try:
                    client = storage.Client()
                except DefaultCredentialsError:
                    raise StorageError(f"{uri}: no Google Cloud credentials; set GOOGLE_APPLICATION_CREDENTIALS to a "
                                       f"service-account key file (or STORAGE_EMULATOR_HOST for an emulator)") from None
        import requests
        from google.cloud.storage.retry import DEFAULT_RETRY

        self.client = client
        self.bucket = client.bucket(self.bucket_name)
        self.transient = (gexc.ServiceUnavailable, gexc.TooManyRequests, gexc.InternalServerError,
                          gexc.BadGateway, gexc.GatewayTimeout, ConnectionError, TimeoutError,
                          requests.ConnectionError, requests.Timeout)
        self._not_found = gexc.NotFound
        # The library's own retries: a shorter deadline for reads than its 120 s, so a wrong address fails soon.
        self._read_retry = DEFAULT_RETRY.with_timeout(30.0) if hasattr(DEFAULT_RETRY, "with_timeout") \
            else DEFAULT_RETRY.with_deadline(30.0)
        self._failures = (gexc.GoogleAPICallError, gexc.RetryError, requests.RequestException)

    def _key(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _put(self, local: Path, key: str, callback: Callable[[int], None] | None = None) -> ObjectInfo | None:
        blob = self.bucket.blob(self._key(key))
        # Large files go up in resumable chunks; the library sends an MD5 the server checks.
        blob.chunk_size = 8 * 1024 * 1024 if local.stat().st_size > 16 * 1024 * 1024 else None
        with self._errors(f"upload {self.uri_for(key)}", passthrough=True):
            blob.upload_from_filename(str(local), checksum="md5")
        # The upload's answer carries the object's size and MD5 (checked by the library): no HEAD needed.
        return ObjectInfo(key.strip("/"), int(blob.size), blob.md5_hash or "") if blob.size is not None else None

    def _get(self, key: str, local: Path) -> None:
        with self._errors(f"download {self.uri_for(key)}", passthrough=True):
            self.bucket.blob(self._key(key)).download_to_filename(str(local))

    def head(self, key: str) -> ObjectInfo | None:
        with self._errors(f"read {self.uri_for(key)}"):
            blob = self.bucket.get_blob(self._key(key), retry=self._read_retry)
        if blob is None:
            return None
        return ObjectInfo(key.strip("/"), int(blob.size or 0), blob.md5_hash or "")

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        full = self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        with self._errors(f"list {self.uri_for(prefix)}"):
            blobs = list(self.client.list_blobs(self.bucket_name, prefix=full, retry=self._read_retry))
        cut = len(self.prefix) + 1 if self.prefix else 0
        return [ObjectInfo(b.name[cut:], int(b.size or 0), b.md5_hash or "") for b in blobs]

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            try:
                with self._errors(f"delete {self.uri_for(key)}"):
                    self.bucket.blob(self._key(key)).delete()
            except StorageError:
                if self.head(key) is not None:
                    raise  # gone already is what deleting wanted

    @contextmanager
    def _errors(self, what: str, passthrough: bool = False) -> Iterator[None]:
        """The library's errors as one StorageError; with `passthrough`, transient ones go to the caller's retry."""
        try:
            yield
        except StorageError:
            raise
        except self._not_found as exc:
            if "bucket" in str(exc).lower() or not self._bucket_exists():
                raise StorageError(f"{what}: bucket {self.bucket_name!r} does not exist; create it or fix the "
                                   f"URI") from None
            raise StorageError(f"{what}: not found") from None
        except self.transient:
            if passthrough:
                raise
            raise StorageError(f"{what}: the server did not answer; check the address (STORAGE_EMULATOR_HOST or "
                               f"Google Cloud's) and try again") from None
        except self._failures as exc:
            raise StorageError(f"{what}: {exc.__class__.__name__} ({str(exc)[:200]}); check the bucket, its "
                               f"permissions and the server address") from None

    def _bucket_exists(self) -> bool:
        try:
            return self.client.lookup_bucket(self.bucket_name, retry=self._read_retry) is not None
        except self._failures:
            return True  # unknown: do not claim it is missing

    def checksum_of(self, local: Path) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        with open(local, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return base64.b64encode(digest.digest()).decode()
