"""Safe extraction of export archives (zip, tar): nothing escapes the target folder, and bombs are refused."""
from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from cvatflow.atomic import atomic_folder
from cvatflow.config import InputLimits, input_limits
from cvatflow.datasets.safety import mode_problem, name_problem
from cvatflow.errors import DatasetError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    if info.flag_bits & 0x1:
        return "is encrypted (cvatflow reads no passwords); export the task again without a password"
    # Many zips carry permission bits only (file type 0), which mode_problem accepts.
    return name_problem(info.filename) or mode_problem(info.external_attr >> 16)


def extract_archive(archive: Path, target: Path, max_bytes: int | None = None, max_files: int | None = None) -> Path:
    """Unpack a zip or tar export into `target`, refusing unsafe members before anything is written.

    `max_bytes` and `max_files` default to the `archive_bytes` and `archive_files` input limits (config.py).
    """
    archive = Path(archive)
    if archive.name.lower().endswith(TAR_SUFFIXES) or (archive.is_file() and not zipfile.is_zipfile(archive)
                                                       and _is_tar(archive)):
        return extract_tar(archive, target, max_bytes, max_files)
    return extract_zip(archive, target, max_bytes, max_files)


def _is_tar(archive: Path) -> bool:
    try:
        return tarfile.is_tarfile(archive)
    except OSError:
        return False


def _limits(max_bytes: int | None, max_files: int | None) -> tuple[InputLimits, int, int]:
    limits = input_limits()
    return (limits, limits.archive_bytes if max_bytes is None else max_bytes,
            limits.archive_files if max_files is None else max_files)


def extract_tar(archive: Path, target: Path, max_bytes: int | None = None, max_files: int | None = None) -> Path:
    """Unpack a (compressed) tar into `target`: links, devices and escaping names refuse the whole archive."""
    archive = Path(archive)
    limits, max_bytes, max_files = _limits(max_bytes, max_files)
    try:
        tf = tarfile.open(archive)  # noqa: SIM115 (closed by the `with tf` below; open errors differ)
    except FileNotFoundError:
        raise DatasetError(f"{archive}: no such file") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DatasetError(f"{archive}: not a readable tar archive ({exc.__class__.__name__}); "
                           f"export the task again") from None
    with tf:
        try:
            members = []
            total = 0
            for member in tf:
                members.append(member)
                if len(members) > max_files:
                    raise DatasetError(f"{archive}: more than {max_files} entries; refusing (the limit is "
                                       f"CVATFLOW_MAX_ARCHIVE_FILES)")
                problem = name_problem(member.name, limits.entry_name)
                if problem is None and member.issym():
                    problem = "is a symbolic link"
                elif problem is None and member.islnk():
                    problem = "is a hard link"
                elif problem is None and (member.isdev() or not (member.isfile() or member.isdir())):
                    problem = "is a device, pipe or other special file"
                if problem:
                    raise DatasetError(f"{archive}: entry {member.name!r} {problem}; refusing to extract anything")
                total += member.size
                if total > max_bytes:
                    raise DatasetError(f"{archive}: unpacks to more than {max_bytes / 1024 ** 3:.0f} GiB; refusing "
                                       f"(the limit is CVATFLOW_MAX_ARCHIVE_BYTES)")
            target = Path(target)
            with atomic_folder(target, prefix=".extract-") as staging:
                # The "data" filter re-checks what we checked above, as a second line.
                tf.extractall(staging, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise DatasetError(f"{archive}: unsafe entry ({exc}); refusing") from None
        except (tarfile.TarError, EOFError, OSError, zlib_error()) as exc:
            raise DatasetError(f"{archive}: truncated or damaged archive ({exc.__class__.__name__}); "
                               f"export the task again") from None
    return target


def extract_zip(archive: Path, target: Path, max_bytes: int | None = None, max_files: int | None = None,
                max_ratio: float | None = None) -> Path:
    """Unpack `archive` into `target` (created), refusing unsafe members before anything is written.

    The limits default to the `archive_bytes`, `archive_files` and `archive_ratio` input limits (config.py).
    """
    archive = Path(archive)
    limits, max_bytes, max_files = _limits(max_bytes, max_files)
    max_ratio = limits.archive_ratio if max_ratio is None else max_ratio
    try:
        zf = zipfile.ZipFile(archive)
    except FileNotFoundError:
        raise DatasetError(f"{archive}: no such file") from None
    except zipfile.BadZipFile:
        raise DatasetError(f"{archive}: not a zip archive, or a truncated one; export the task again") from None
    with zf:
        members = zf.infolist()
        if len(members) > max_files:
            raise DatasetError(f"{archive}: {len(members)} entries, more than the limit of {max_files} "
                               f"(CVATFLOW_MAX_ARCHIVE_FILES)")
        total = packed = 0
        for info in members:
            problem = _member_problem(info)
            if problem:
                raise DatasetError(f"{archive}: entry {info.filename!r} {problem}; refusing to extract anything")
            total += info.file_size
            packed += info.compress_size
            if info.compress_size and info.file_size / info.compress_size > max_ratio and info.file_size > 1 << 20:
                raise DatasetError(f"{archive}: entry {info.filename!r} unpacks {info.file_size / info.compress_size:.0f}"
                                   f" times larger than it is packed (a compression bomb?); refusing (the limit "
                                   f"is CVATFLOW_MAX_ARCHIVE_RATIO)")
        if total > max_bytes:
            raise DatasetError(f"{archive}: unpacks to {total / 1024 ** 3:.1f} GiB, over the "
                               f"{max_bytes / 1024 ** 3:.0f} GiB limit (CVATFLOW_MAX_ARCHIVE_BYTES)")
        if packed and total / packed > max_ratio and total > 1 << 20:
            raise DatasetError(f"{archive}: unpacks {total / packed:.0f} times larger than it is packed "
                               f"(a compression bomb?); refusing (the limit is CVATFLOW_MAX_ARCHIVE_RATIO)")
        target = Path(target)
        try:
            with atomic_folder(target, prefix=".extract-") as staging:
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
        except zipfile.BadZipFile as exc:
            raise DatasetError(f"{archive}: damaged archive ({exc}); export the task again") from None
        except (EOFError, RuntimeError, NotImplementedError, zlib_error()) as exc:
            raise DatasetError(f"{archive}: truncated or damaged archive ({exc.__class__.__name__}); "
                               f"export the task again") from None
    return target


def zlib_error():
    import zlib

    return zlib.error
