"""Object stores against real protocol servers on loopback: round trips, resumable uploads, multipart, errors."""
from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from cvatflow.errors import NotFoundError, StorageError
from cvatflow.storage import open_store
from storage_fixtures import count_puts, point_at, store_uri

MiB = 1024 * 1024


def make_tree(root: Path, files: int = 12, seed: int = 0) -> dict[str, bytes]:
    """A folder of files of assorted sizes (nested, one empty); returns {relative path: bytes}."""
    rng = random.Random(seed)
    contents = {}
    for i in range(files):
        name = f"images/{'sub/' if i % 3 == 0 else ''}frame_{i:03d}.jpg" if i else "annotations/empty.json"
        data = rng.randbytes(0 if i == 0 else rng.randint(1, 40_000))
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        contents[name] = data
    return contents


def read_back(store, prefix: str, target: Path) -> dict[str, bytes]:
    store.download_prefix(prefix, target)
    return {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()}


class Interrupted(Exception):
    """Stands for the process dying mid-upload (not an error the store retries)."""


def fail_after(store, n: int) -> None:
    """Let the first `n` objects through, then every later send fails."""
    original, lock, count = store._put, threading.Lock(), [0]

    def put(local, key, callback=None):
        with lock:
            count[0] += 1
            allowed = count[0] <= n
        if not allowed:
            raise Interrupted(key)
        return original(local, key, callback)

    store._put = put


def test_a_folder_uploads_and_downloads_byte_for_byte(any_store, tmp_path):
    contents = make_tree(tmp_path / "src")
    stats = any_store.upload_dir(tmp_path / "src", "annotations/42/01022026101500/")
    assert (stats.files, stats.sent, stats.skipped) == (len(contents), len(contents), 0)
    assert read_back(any_store, "annotations/42/01022026101500/", tmp_path / "back") == contents


def test_an_interrupted_upload_resumes_sending_only_what_is_missing(any_store, tmp_path):
    contents = make_tree(tmp_path / "src", files=15)
    fail_after(any_store, 6)
    with pytest.raises(Interrupted):
        any_store.upload_dir(tmp_path / "src", "ds/")
    present = {o.key for o in any_store.list("ds/")}
    assert len(present) == 6

    store = open_store(any_store.uri, workers=8)  # the re-run: a fresh process, no failures
    sent = count_puts(store)
    stats = store.upload_dir(tmp_path / "src", "ds/")
    assert sorted(sent) == sorted(f"ds/{name}" for name in contents if f"ds/{name}" not in present)
    assert (stats.sent, stats.skipped) == (len(contents) - 6, 6)
    assert read_back(store, "ds/", tmp_path / "back") == contents


def test_a_complete_upload_run_again_sends_nothing(any_store, tmp_path):
    make_tree(tmp_path / "src")
    any_store.upload_dir(tmp_path / "src", "ds")
    sent = count_puts(any_store)
    stats = any_store.upload_dir(tmp_path / "src", "ds")
    assert sent == [] and stats.sent == 0 and stats.skipped == stats.files


def test_a_damaged_object_of_the_same_size_is_sent_again(any_store, tmp_path):
    contents = make_tree(tmp_path / "src", files=4)
    any_store.upload_dir(tmp_path / "src", "ds")
    victim = "images/frame_001.jpg"
    any_store.put_bytes(bytes(len(contents[victim])), f"ds/{victim}")  # same size, other bytes
    sent = count_puts(any_store)
    any_store.upload_dir(tmp_path / "src", "ds")
    assert sent == [f"ds/{victim}"]
    assert any_store.get_bytes(f"ds/{victim}") == contents[victim]


def test_transient_errors_are_retried_until_the_object_is_there(any_store, tmp_path):
    contents = make_tree(tmp_path / "src", files=4)
    original, failed = any_store._put, set()

    def flaky(local, key, callback=None):
        if key not in failed:  # every object fails once, as on a dropped connection
            failed.add(key)
            raise ConnectionError("connection reset by peer")
        return original(local, key, callback)

    any_store._put = flaky
    any_store.transient = (*any_store.transient, ConnectionError)
    any_store.upload_dir(tmp_path / "src", "ds")
    assert read_back(any_store, "ds", tmp_path / "back") == contents


def test_progress_reports_every_byte_once(any_store, tmp_path):
    contents = make_tree(tmp_path / "src", files=6)
    seen = []
    any_store.upload_dir(tmp_path / "src", "ds", progress=lambda done, total: seen.append((done, total)))
    total = sum(len(d) for d in contents.values())
    assert seen and all(t == total for _, t in seen) and max(d for d, _ in seen) == total


def test_exists_list_and_delete_prefix(any_store, tmp_path):
    make_tree(tmp_path / "src", files=5)
    any_store.upload_dir(tmp_path / "src", "models/run-1")
    any_store.put_bytes(b"x", "models/run-10/model.pt")
    assert any_store.exists("models/run-1") and any_store.exists("models/run-1/")
    assert any_store.exists("models/run-1/images/frame_001.jpg")
    assert not any_store.exists("models/run-2")
    assert len(any_store.list("models/run-1/")) == 5
    assert any_store.delete_prefix("models/run-1") == 5
    assert not any_store.exists("models/run-1") and any_store.exists("models/run-10")  # a sibling survives


def test_single_objects_round_trip_and_a_missing_one_is_not_found(any_store, tmp_path):
    info = any_store.put_bytes(b"hello", "a/b.txt")
    assert info.size == 5 and any_store.head("a/b.txt").size == 5
    assert any_store.get_bytes("a/b.txt") == b"hello"
    with pytest.raises(NotFoundError, match="no such object"):
        any_store.get_file("a/missing.txt", tmp_path / "x")
    with pytest.raises(NotFoundError, match="nothing there"):
        any_store.download_prefix("nothing/here", tmp_path / "y")


def test_a_large_file_goes_multipart_and_is_skipped_by_its_etag(s3_server, gcs_server, tmp_path, monkeypatch):
    point_at(monkeypatch, s3_server)
    store = open_store(store_uri("s3", tmp_path, s3_server, gcs_server))
    big = tmp_path / "src" / "model" / "weights.bin"
    big.parent.mkdir(parents=True)
    big.write_bytes(os.urandom(8 * MiB + 12345))  # two parts of the fixed 8 MiB
    store.upload_dir(tmp_path / "src", "out")
    head = store.head("out/model/weights.bin")
    assert head.checksum.endswith("-2") and head.checksum == store.checksum_of(big)
    sent = count_puts(store)
    assert store.upload_dir(tmp_path / "src", "out").skipped == 1 and sent == []
    store.download_prefix("out", tmp_path / "back")
    assert (tmp_path / "back" / "model" / "weights.bin").read_bytes() == big.read_bytes()


def test_a_missing_bucket_is_one_clear_error(s3_server, tmp_path, monkeypatch):
    point_at(monkeypatch, s3_server)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_bytes(b"a")
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        open_store("s3://no-such-bucket/x").upload_dir(tmp_path / "src", "ds")


@pytest.mark.parametrize("uri", ["ftp://host/x", "bucket/prefix", "s3:///no-bucket", "file://remote-host/x"])
def test_an_unusable_store_uri_is_one_clear_error(uri):
    with pytest.raises(StorageError):
        open_store(uri)


def test_a_key_cannot_escape_a_file_store(tmp_path):
    store = open_store((tmp_path / "store").as_uri())
    with pytest.raises(StorageError, match="escapes the store"):
        store.put_bytes(b"x", "../outside.txt")
    assert not (tmp_path / "outside.txt").exists()
