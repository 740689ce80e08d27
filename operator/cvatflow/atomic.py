"""Write files and folders atomically: a temporary name in the same folder, then a rename (no half reads)."""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_name(path: Path, suffix: str = ".tmp") -> Path:
    """A hidden name next to `path` that no other process or thread picks: `.<name>.<pid>-<random><suffix>`."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}")


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write `path`'s new content to; on success it replaces `path` in one rename
    (readers see the old file or the whole new one), on any failure it is removed and `path` is untouched.

    The temporary file is in the same folder, so the rename never crosses file systems; `suffix` lets a
    reader that lists the folder skip it (the local store skips `.part`).
    """
    path = Path(path)
    tmp = temporary_name(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write `data` (text in `encoding`, or bytes) to `path` atomically; returns `path`.

    Raises OSError as `open` does (a missing folder, no permission, a full disk), leaving `path` as it was.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
    return path


@contextmanager
def atomic_folder(path: str | Path, prefix: str = ".tmp-") -> Iterator[Path]:
    """Yield a new empty folder to fill in `path`'s place; on success it replaces `path` (a folder there is
    removed first, so a reader may briefly see none, never a half-filled one), on any failure it is removed
    and `path` is untouched.

    The folder is made next to `path` (same file system, so the rename is one step), named `<prefix>...`
    so that a check for leftovers can find it; the parent folders of `path` are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    try:
        yield staging
        if path.exists():
            shutil.rmtree(path)
        staging.replace(path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def check_replaceable(path: str | Path, ours: Callable[[Path], bool], what: str,
                      error: type[Exception] = ValueError) -> None:
    """Refuse to let a command replace `path` whole unless it is absent, an empty folder, or a folder `ours(path)`
    says an earlier run of the same command wrote: `--out .` once deleted the user's folder and all in it.

    Raises `error` (a message naming `what`, e.g. "--out data", and the fix); writes nothing.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise error(f"{what}: exists and is not a folder; give a new folder")
    if any(path.iterdir()) and not ours(path):
        raise error(f"{what}: a folder with other files in it, which this would replace; give a new or empty "
                    f"folder (or one this command wrote before)")
