"""Object-store servers on loopback, started and stopped by the tests: moto (S3) and gcp-storage-emulator (GCS).

The fixtures s3_server, gcs_server and any_store reach every test through tests/conftest.py;
`any_store` runs a test once per scheme (file, s3, gs) on a fresh bucket, with the environment pointing at
the servers only for that test.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

SCHEMES = ("file", "s3", "gs")


@dataclass
class Server:
    """A running protocol server: its URL and how to make a bucket on it."""

    url: str
    make_bucket: Callable[[str], None]


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 in server mode on 127.0.0.1, a free port."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"

    def make_bucket(name: str) -> None:
        import boto3

        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test").create_bucket(Bucket=name)

    try:
        yield Server(url, make_bucket)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs_server():
    """gcp-storage-emulator, in memory, on 127.0.0.1, a free port."""
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True)
    server._api.daemon = True  # a failing session must not hang on the emulator's thread
    server.start()
    url = f"http://127.0.0.1:{server._api._httpd.server_address[1]}"

    def make_bucket(name: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        storage.Client(project="test", credentials=AnonymousCredentials(),
                       client_options={"api_endpoint": url}).create_bucket(name)

    try:
        yield Server(url, make_bucket)
    finally:
        server.stop()


def point_at(monkeypatch, s3: Server | None = None, gcs: Server | None = None) -> None:
    """Environment for boto3 and google-cloud-storage to use the loopback servers (this test only)."""
    if s3 is not None:
        for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3.url}.items():
            monkeypatch.setenv(key, value)
        for key in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(key, raising=False)
    if gcs is not None:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test")


def store_uri(scheme: str, tmp_path: Path, s3: Server, gcs: Server) -> str:
    """A fresh, empty store of `scheme`: a new bucket (with a key prefix) or a new folder."""
    if scheme == "file":
        return (tmp_path / "store").as_uri()
    bucket = f"cvatflow-{uuid.uuid4().hex[:12]}"
    (s3 if scheme == "s3" else gcs).make_bucket(bucket)
    return f"{scheme}://{bucket}/team-a"


@pytest.fixture(params=SCHEMES)
def any_store(request, tmp_path, monkeypatch, s3_server, gcs_server):
    """An empty Store of each scheme in turn (file://, s3:// on moto, gs:// on the emulator)."""
    from cvatflow.storage import open_store

    point_at(monkeypatch, s3_server, gcs_server)
    return open_store(store_uri(request.param, tmp_path, s3_server, gcs_server), workers=8)


def count_puts(store) -> list[str]:
    """Record every object the store sends (its `_put`), in a list that the caller reads."""
    sent: list[str] = []
    original = store._put

    def put(local, key, callback=None):
        confirmed = original(local, key, callback)
        sent.append(key)
        return confirmed

    store._put = put
    return sent
