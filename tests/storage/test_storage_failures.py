"""A store that stops answering: one clear error, quickly, and nothing queued keeps trying."""
from __future__ import annotations

import socket
import threading

import pytest

from cvatflow.errors import StorageError
from cvatflow.storage import open_store
from storage_fixtures import point_at, store_uri


def test_a_failed_object_stops_the_transfer_instead_of_trying_every_queued_one(s3_server, tmp_path, monkeypatch):
    point_at(monkeypatch, s3_server)
    for i in range(60):
        (tmp_path / "src").mkdir(exist_ok=True)
        (tmp_path / "src" / f"f{i:02d}").write_bytes(b"x" * (i + 1))
    bucket = store_uri("s3", tmp_path, s3_server, s3_server)
    store = open_store(bucket, workers=4)
    tried, lock = [], threading.Lock()

    def dead(local, key, callback=None):  # the server went away after the first objects
        with lock:
            tried.append(key)
        raise StorageError(f"upload {key}: server gone")

    store._put = dead
    with pytest.raises(StorageError, match="server gone"):
        store.upload_dir(tmp_path / "src", "ds/")
    assert len(tried) <= 8  # what was in flight, not all 60


def test_an_unreachable_s3_endpoint_is_one_clear_error(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for key, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                       "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
        monkeypatch.setenv(key, value)
    import boto3
    from botocore.config import Config

    from cvatflow.storage.s3 import S3Store

    # botocore's own retries are not under test: one attempt keeps the test quick.
    client = boto3.client("s3", region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
    store = S3Store("s3://bucket/prefix", client=client)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_bytes(b"a")
    with pytest.raises(StorageError, match=f"127.0.0.1:{port}.*check the endpoint"):
        store.upload_dir(tmp_path / "src", "ds/")
    with pytest.raises(StorageError, match="check the endpoint"):
        store.exists("ds/")


def test_an_unreachable_gcs_server_is_one_clear_error(tmp_path, monkeypatch):
    from google.cloud.storage.retry import DEFAULT_RETRY

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    store = open_store("gs://bucket/prefix")
    store._read_retry = DEFAULT_RETRY.with_timeout(1.0)  # the library's backoff is not under test
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_bytes(b"a")
    with pytest.raises(StorageError, match="list gs://bucket/prefix/ds/: .*check the bucket"):
        store.upload_dir(tmp_path / "src", "ds/")


def test_gcs_without_credentials_says_which_variable_to_set(monkeypatch, tmp_path):
    for key in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud login either
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:1")  # and no metadata server to ask
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    with pytest.raises(StorageError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        open_store("gs://bucket/prefix")
