"""file:// stores: a folder on this machine (the embedded default), written atomically."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from cvatflow.errors import StorageError
from cvatflow.storage.base import ObjectInfo, Store, free_name

# Copies on one disk are bound by file creation in the kernel, not by waiting: measured on 2,000 small
# files (bench/dump.py), one worker is as fast as eight and steadier, so a local store copies in turn.
LOCAL_WORKERS = 1


class LocalStore(Store):
    """Objects are files under a root folder; a key is the file's path relative to the root."""

    transient = (BlockingIOError, InterruptedError)

    def __init__(self, uri: str, workers: int = LOCAL_WORKERS) -> None:
        super().__init__(uri, workers)
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"{uri}: file URIs name a local folder, like file:///data/store")
        self.root = Path(unquote(parsed.path)).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._folders: set[Path] = set()  # folders made by this store, so each costs one mkdir

    def _path(self, key: str) -> Path:
        # normpath, not resolve(): resolving stats every component of every key, which a copy of thousands
        # of small files notices; '..' is what could leave the root, and normpath removes it textually.
        path = os.path.normpath(os.path.join(self.root, key.lstrip("/")))
        if path != str(self.root) and not path.startswith(str(self.root) + os.sep):
            raise StorageError(f"key {key!r} escapes the store {self.uri}; use a path inside it")
        return Path(path)

    def _put(self, local: Path, key: str, callback: Callable[[int], None] | None = None) -> ObjectInfo:
        target = self._path(key)
        folder = target.parent
        if folder not in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        tmp = free_name(target)
        try:
            try:
                shutil.copyfile(local, tmp)
            except FileNotFoundError:
                if not local.is_file():
                    raise
                folder.mkdir(parents=True, exist_ok=True)  # removed behind our back since we made it
                shutil.copyfile(local, tmp)
            source = local.stat()
            os.utime(tmp, ns=(source.st_atime_ns, source.st_mtime_ns))  # the object's "checksum", see below
            os.replace(tmp, target)  # readers see the old object or the whole new one, never half
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return ObjectInfo(key.strip("/"), source.st_size, str(source.st_mtime_ns))

    def _get(self, key: str, local: Path) -> None:
        shutil.copyfile(self._path(key), local)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        stat = path.stat()
        return ObjectInfo(key.strip("/"), stat.st_size, str(stat.st_mtime_ns))

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        base = self._path(prefix.rsplit("/", 1)[0] if "/" in prefix else "")
        if not base.is_dir():
            return []
        out = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.endswith(".part"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    stat = path.stat()
                    out.append(ObjectInfo(key, stat.st_size, str(stat.st_mtime_ns)))
        return sorted(out, key=lambda o: o.key)

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def checksum_of(self, local: Path) -> str:
        # Writes are atomic, so an object is never half a file; an object carries its source's modification
        # time, so a source edited since (or an object rewritten by something else) is sent again. Hashing
        # both sides would read every byte twice, which is what a local copy cannot afford.
        return str(local.stat().st_mtime_ns)
