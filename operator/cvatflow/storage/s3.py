"""s3:// stores through boto3: multipart transfers for large files, ETag-verified and resumable."""
from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from cvatflow.errors import StorageError
from cvatflow.storage.base import ObjectInfo, Store, bucket_and_prefix, md5_file

PART_SIZE = 8 * 1024 * 1024  # fixed, so a multipart object's ETag can be computed locally


class S3Store(Store):
    """A bucket and key prefix; endpoint and region from the artifact repository or the environment."""

    def __init__(self, uri: str, repository=None, workers: int = 16, client=None) -> None:
        super().__init__(uri, workers)
        import boto3
        import botocore.exceptions
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket, self.prefix = bucket_and_prefix(uri)
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if repository is not None and repository.kind == "s3" and repository.bucket == self.bucket:
            if repository.endpoint:
                scheme = "http" if repository.insecure else "https"
                endpoint = repository.endpoint if "://" in repository.endpoint else f"{scheme}://{repository.endpoint}"
            region = repository.region or region
        # The repository's addressingStyle (path for most MinIO setups) holds for cvatflow's own requests too.
        style = {"path": "path", "virtual-hosted": "virtual"}.get(
            repository.addressing_style if repository is not None and repository.kind == "s3" else "", "auto")
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint, region_name=region or "us-east-1",
            config=Config(retries={"max_attempts": 8, "mode": "adaptive"},
                          max_pool_connections=max(workers * 2, 10), s3={"addressing_style": style}))
        # One file per worker thread: each transfer itself stays single-threaded except large ones.
        self.config = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                                     max_concurrency=4, use_threads=True)
        self.transient = (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError,
                          botocore.exceptions.ReadTimeoutError, ConnectionError, TimeoutError)
        self._client_error = botocore.exceptions.ClientError
        self._botocore_error = botocore.exceptions.BotoCoreError

    def _key(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def _put(self, local: Path, key: str, callback: Callable[[int], None] | None = None) -> ObjectInfo | None:
        size = local.stat().st_size
        if size >= PART_SIZE:
            self._call(f"upload {self.uri_for(key)}", self.client.upload_file, str(local), self.bucket,
                       self._key(key), Config=self.config, Callback=callback)
            return None  # read back with HEAD
        # One request per small file: S3 checks the body against Content-MD5 and answers the ETag, so the
        # object is verified without the HEAD that would double the round trips of a dataset of images.
        data = local.read_bytes()
        digest = hashlib.md5(data, usedforsecurity=False)
        answer = self._call(f"upload {self.uri_for(key)}", self.client.put_object, Bucket=self.bucket,
                            Key=self._key(key), Body=data, ContentMD5=base64.b64encode(digest.digest()).decode())
        if callback:
            callback(size)
        return ObjectInfo(key.strip("/"), len(data), answer.get("ETag", "").strip('"'))

    def _get(self, key: str, local: Path) -> None:
        self._call(f"download {self.uri_for(key)}", self.client.download_file, self.bucket, self._key(key),
                   str(local), Config=self.config)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self._client_error as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(f"read {self.uri_for(key)}", exc) from None
        except self._botocore_error as exc:
            raise self._unreachable(f"read {self.uri_for(key)}", exc) from None
        return ObjectInfo(key.strip("/"), answer["ContentLength"], answer.get("ETag", "").strip('"'))

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix) if prefix else
                                           (self.prefix + "/" if self.prefix else "")):
                for item in page.get("Contents", []):
                    out.append(ObjectInfo(self._relative(item["Key"]), item["Size"], item["ETag"].strip('"')))
        except self._client_error as exc:
            raise self._error(f"list {self.uri_for(prefix)}", exc) from None
        except self._botocore_error as exc:
            raise self._unreachable(f"list {self.uri_for(prefix)}", exc) from None
        return out

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start:start + 1000]]
            self._call("delete", self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": batch})

    def checksum_of(self, local: Path) -> str:
        """S3's ETag: the MD5 for single-part uploads, MD5 of the part MD5s and `-N` for multipart ones."""
        size = local.stat().st_size
        if size < PART_SIZE:
            return md5_file(local)
        digests = []
        with open(local, "rb") as f:
            for block in iter(lambda: f.read(PART_SIZE), b""):
                digests.append(hashlib.md5(block, usedforsecurity=False).digest())
        return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self._client_error as exc:
            raise self._error(what, exc) from None
        except self.transient:
            raise  # the caller's retry decides
        except self._botocore_error as exc:
            raise self._unreachable(what, exc) from None

    def _unreachable(self, what: str, exc) -> StorageError:
        """botocore's own errors (no endpoint, no credentials...), after its retries: one line, no traceback."""
        import botocore.exceptions

        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return StorageError(f"{what}: no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                f"(or the artifact-repository Secret)")
        endpoint = self.client.meta.endpoint_url
        return StorageError(f"{what}: {exc.__class__.__name__} talking to {endpoint} ({str(exc)[:160]}); check "
                            f"the endpoint (AWS_ENDPOINT_URL or the artifact repository) and that it is up")

    def _error(self, what: str, exc) -> StorageError:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket",):
            return StorageError(f"{what}: bucket {self.bucket!r} does not exist; create it or fix the URI")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(f"{what}: access denied ({code}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                                f"or the artifact-repository Secret")
        return StorageError(f"{what}: {code or exc}")
