"""Safe extraction of export archives: nothing escapes the target folder, and bombs are refused."""
from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from cvatflow.errors import DatasetError

MAX_BYTES = 50 * 1024 ** 3  # 50 GiB unpacked
MAX_FILES = 2_000_000
MAX_RATIO = 200  # unpacked:packed; images and JSON compress far less than this


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or path.is_absolute():
        return "is an absolute path"
    if ".." in path.parts:
        return "goes up with '..' (zip slip)"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # many zips carry permission bits only
        return "is not a regular file"
    return None


def extract_zip(archive: Path, target: Path, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES,
                max_ratio: float = MAX_RATIO) -> Path:
    """Unpack `archive` into `target` (created), refusing unsafe members before anything is written."""
    archive = Path(archive)
    try:
        zf = zipfile.ZipFile(archive)
    except FileNotFoundError:
        raise DatasetError(f"{archive}: no such file") from None
    except zipfile.BadZipFile:
        raise DatasetError(f"{archive}: not a zip archive, or a truncated one; export the task again") from None
    with zf:
        members = zf.infolist()
        if len(members) > max_files:
            raise DatasetError(f"{archive}: {len(members)} entries, more than the limit of {max_files}")
        total = packed = 0
        for info in members:
            problem = _member_problem(info)
            if problem:
                raise DatasetError(f"{archive}: entry {info.filename!r} {problem}; refusing to extract anything")
            total += info.file_size
            packed += info.compress_size
            if info.compress_size and info.file_size / info.compress_size > max_ratio and info.file_size > 1 << 20:
                raise DatasetError(f"{archive}: entry {info.filename!r} unpacks {info.file_size / info.compress_size:.0f}"
                                   f" times larger than it is packed (a compression bomb?); refusing")
        if total > max_bytes:
            raise DatasetError(f"{archive}: unpacks to {total / 1024 ** 3:.1f} GiB, over the "
                               f"{max_bytes / 1024 ** 3:.0f} GiB limit")
        if packed and total / packed > max_ratio and total > 1 << 20:
            raise DatasetError(f"{archive}: unpacks {total / packed:.0f} times larger than it is packed "
                               f"(a compression bomb?); refusing")
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
        try:
            root = staging.resolve()
            written = 0
            for info in members:
                destination = (staging / info.filename).resolve()
                if not destination.is_relative_to(root):
                    raise DatasetError(f"{archive}: entry {info.filename!r} escapes the folder; refusing")
                if info.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as source, open(destination, "wb") as out:
                    # Count what really comes out: the sizes in the header can lie.
                    while block := source.read(1 << 20):
                        written += len(block)
                        if written > max_bytes or written > max(total, 1) * 1.01 + (1 << 20):
                            raise DatasetError(f"{archive}: entry {info.filename!r} unpacks to more than its "
                                               f"header says; refusing")
                        out.write(block)
            if target.exists():
                shutil.rmtree(target)
            staging.replace(target)
        except zipfile.BadZipFile as exc:
            raise DatasetError(f"{archive}: damaged archive ({exc}); export the task again") from None
        except (EOFError, zlib_error()) as exc:
            raise DatasetError(f"{archive}: truncated or damaged archive ({exc.__class__.__name__}); "
                               f"export the task again") from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return target


def zlib_error():
    import zlib

    return zlib.error
