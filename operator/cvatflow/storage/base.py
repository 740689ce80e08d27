"""The Store interface: objects under a URI prefix, with concurrent, verified, resumable folder transfers."""
from __future__ import annotations

import hashlib
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from cvatflow.atomic import atomic_path, temporary_name
from cvatflow.errors import NotFoundError, StorageError

# progress(done_bytes, total_bytes): called from worker threads as transfers advance.
Progress = Callable[[int, int], None]
RETRIES = 5


@dataclass(frozen=True)
class ObjectInfo:
    """An object in a store: key relative to the store's prefix, size, and the store's checksum of it."""

    key: str
    size: int
    checksum: str = ""


@dataclass
class TransferStats:
    """What a folder transfer did: sent (or fetched), skipped as already intact, bytes, seconds."""

    files: int = 0
    sent: int = 0
    skipped: int = 0
    bytes_sent: int = 0
    bytes_skipped: int = 0
    seconds: float = 0.0


class _Counter:
    """Thread-safe byte counter that feeds a progress callback."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self.progress = total, 0, progress
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.done += n
            done = self.done
        if self.progress:
            self.progress(done, self.total)


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def retry(what: str, fn, transient: tuple[type[BaseException], ...], attempts: int = RETRIES):
    """Call `fn`, retrying transient errors with jittered exponential backoff."""
    for attempt in range(attempts):
        try:
            return fn()
        except transient as exc:
            if attempt == attempts - 1:
                raise StorageError(f"{what}: failed after {attempts} attempts ({exc.__class__.__name__}: "
                                   f"{str(exc)[:200]}); check the store's address and try again") from None
            time.sleep(min(8.0, 0.2 * 2 ** attempt) * (0.5 + random.random()))


def join_key(prefix: str, name: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{name}" if prefix else name



def bucket_and_prefix(uri: str) -> tuple[str, str]:
    """(bucket, key prefix without leading or trailing /) of an object-store URI `scheme://bucket/prefix`;
    StorageError naming `uri` when it names no bucket."""
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise StorageError(f"{uri}: the URI names no bucket; write it like {parsed.scheme}://my-bucket/prefix")
    return parsed.netloc, parsed.path.strip("/")

class Store(ABC):
    """Objects addressed by keys under `uri` (s3://bucket/prefix, gs://bucket/prefix, file:///path)."""

    #: errors worth retrying (network hiccups, throttling); subclasses name their library's.
    transient: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

    def __init__(self, uri: str, workers: int = 16) -> None:
        self.uri = uri.rstrip("/")
        self.workers = workers

    def uri_for(self, key: str) -> str:
        return f"{self.uri}/{key.lstrip('/')}" if key else self.uri

    # -- what each store implements ------------------------------------------------------------

    @abstractmethod
    def _put(self, local: Path, key: str, callback: Callable[[int], None] | None = None) -> ObjectInfo | None:
        """Send one file; return the object as the store confirmed it (saves a HEAD), or None to have it read."""

    @abstractmethod
    def _get(self, key: str, local: Path) -> None: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose keys start with `prefix` (a folder-like prefix ends with '/')."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """The object at exactly `key`, or None."""

    @abstractmethod
    def _delete(self, keys: list[str]) -> None: ...

    @abstractmethod
    def checksum_of(self, local: Path) -> str:
        """The checksum this store would report for `local` once uploaded (to skip intact objects)."""

    # -- shared behaviour -------------------------------------------------------------------------

    def put_file(self, local: str | Path, key: str) -> ObjectInfo:
        """Upload one file, verified by size afterwards."""
        local = Path(local)
        if not local.is_file():
            raise StorageError(f"{local}: no such file to upload")
        confirmed = retry(f"upload {self.uri_for(key)}", lambda: self._put(local, key), self.transient)
        return self._verify(local, key, confirmed)

    def get_file(self, key: str, local: str | Path) -> Path:
        """Download one object to `local` (written to a temporary name, then renamed)."""
        local = Path(local)
        if self.head(key) is None:
            raise NotFoundError(f"{self.uri_for(key)}: no such object")
        local.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(local, ".part") as tmp:  # a failed download leaves nothing behind
            retry(f"download {self.uri_for(key)}", lambda: self._get(key, tmp), self.transient)
        return local

    def put_bytes(self, data: bytes, key: str) -> ObjectInfo:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "object"
            path.write_bytes(data)
            return self.put_file(path, key)

    def get_bytes(self, key: str) -> bytes:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return self.get_file(key, Path(tmp) / "object").read_bytes()

    def exists(self, prefix: str) -> bool:
        """True if an object is at `prefix` exactly or anywhere under it (as Onepanel's list_objects check)."""
        prefix = prefix.lstrip("/")
        if self.head(prefix.rstrip("/")) is not None:
            return True
        return bool(self.list(prefix.rstrip("/") + "/" if prefix else ""))

    def delete_prefix(self, prefix: str) -> int:
        keys = [o.key for o in self.list(prefix.rstrip("/") + "/" if prefix else "")]
        if self.head(prefix.rstrip("/")) is not None:
            keys.append(prefix.rstrip("/"))
        if keys:
            self._delete(keys)
        return len(keys)

    def upload_dir(self, local_dir: str | Path, prefix: str, progress: Progress | None = None) -> TransferStats:
        """Upload a folder under `prefix`: concurrent, verified, and resumable.

        Objects already present with the same size and checksum are skipped, so re-running an
        interrupted upload sends only what is missing or damaged.
        """
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise StorageError(f"{local_dir}: not a folder to upload")
        started = time.monotonic()
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())
        remote = {o.key: o for o in self.list(prefix.strip("/") + "/" if prefix.strip("/") else "")}
        sizes = {p: p.stat().st_size for p in files}
        stats = TransferStats(files=len(files))
        counter = _Counter(sum(sizes.values()), progress)
        todo = []
        for path in files:
            key = join_key(prefix, path.relative_to(local_dir).as_posix())
            there = remote.get(key)
            if there is not None and there.size == sizes[path] and there.checksum == self.checksum_of(path):
                stats.skipped += 1
                stats.bytes_skipped += sizes[path]
                counter.add(sizes[path])
            else:
                todo.append((path, key))

        def send(item: tuple[Path, str]) -> None:
            path, key = item
            confirmed = retry(f"upload {self.uri_for(key)}", lambda: self._put(path, key), self.transient)
            self._verify(path, key, confirmed)
            counter.add(sizes[path])

        self._run(send, todo)
        stats.sent = len(todo)
        stats.bytes_sent = sum(sizes[p] for p, _ in todo)
        stats.seconds = time.monotonic() - started
        return stats

    def download_prefix(self, prefix: str, local_dir: str | Path, progress: Progress | None = None) -> TransferStats:
        """Download every object under `prefix` into `local_dir` (or the one object at `prefix`)."""
        local_dir = Path(local_dir)
        started = time.monotonic()
        prefix = prefix.strip("/")
        objects = self.list(prefix + "/" if prefix else "")
        if not objects:
            single = self.head(prefix)
            if single is None:
                raise NotFoundError(f"{self.uri_for(prefix)}: nothing there to download")
            self.get_file(prefix, local_dir if local_dir.suffix else local_dir / Path(prefix).name)
            return TransferStats(files=1, sent=1, bytes_sent=single.size, seconds=time.monotonic() - started)
        counter = _Counter(sum(o.size for o in objects), progress)
        root = local_dir.resolve()

        def fetch(obj: ObjectInfo) -> None:
            relative = obj.key[len(prefix) + 1:] if prefix else obj.key
            target = (local_dir / relative).resolve()
            if not target.is_relative_to(root):  # a key with ../ must not write outside the folder
                raise StorageError(f"{self.uri_for(obj.key)}: key escapes the download folder; refusing")
            self.get_file(obj.key, target)
            counter.add(obj.size)

        local_dir.mkdir(parents=True, exist_ok=True)
        self._run(fetch, objects)
        return TransferStats(files=len(objects), sent=len(objects), bytes_sent=counter.total,
                             seconds=time.monotonic() - started)

    def _run(self, fn, items: Iterable) -> None:
        items = list(items)
        if not items:
            return
        if self.workers <= 1:  # no pool: for local copies of small files, threads cost more than they save
            for item in items:
                fn(item)
            return
        stop = threading.Event()

        def guarded(item) -> None:
            if stop.is_set():
                return
            try:
                fn(item)
            except BaseException:
                stop.set()
                raise

        pool = ThreadPoolExecutor(max_workers=min(self.workers, len(items)))
        futures = [pool.submit(guarded, item) for item in items]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # The first failure stops the transfer: what is in flight ends, nothing queued starts (else a dead
            # server costs every remaining object its full round of retries). A re-run resumes.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def _verify(self, local: Path, key: str, confirmed: ObjectInfo | None = None) -> ObjectInfo:
        info = confirmed if confirmed is not None else self.head(key)
        size = local.stat().st_size
        if info is None or info.size != size:
            raise StorageError(f"{self.uri_for(key)}: uploaded {size} bytes but the store has "
                               f"{'nothing' if info is None else info.size}; run the upload again")
        return info


def free_name(path: Path) -> Path:
    """A temporary sibling name for atomic writes (`.part`: listings skip it)."""
    return temporary_name(path, ".part")
