"""The one file-system check for user input trees and archive members: nothing may point or lead outside."""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from cvatflow.config import input_limits
from cvatflow.errors import DatasetError


def name_problem(name: str, max_length: int | None = None) -> str | None:
    """Why an entry name (from a zip, a tar or a folder walk) could leave its folder, or None.

    Refuses absolute paths (POSIX or Windows drive), '..' components, NUL and other control
    characters, and names over `max_length` characters (default: the `entry_name` input limit).
    """
    max_length = input_limits().entry_name if max_length is None else max_length
    if len(name) > max_length:
        return f"has a name of {len(name)} characters (the limit is {max_length}, CVATFLOW_MAX_ENTRY_NAME)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "has a control character in its name"
    path = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or path.is_absolute():
        return "is an absolute path"
    if ".." in path.parts:
        return "goes up with '..' (path traversal, 'zip slip')"
    return None


def mode_problem(mode: int) -> str | None:
    """Why an entry of file mode `mode` may not be read: links and special files; None for files and folders."""
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        return "is a device file"
    if kind == stat.S_IFIFO:
        return "is a named pipe"
    if kind == stat.S_IFSOCK:
        return "is a socket"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is not a regular file"
    return None


def check_tree(root: str | Path, shown: str | Path | None = None, max_bytes: int | None = None,
               max_files: int | None = None) -> None:
    """Refuse a folder export that holds anything but plain files and folders of its own.

    Symbolic links (even ones pointing inside), hard links to files outside the folder, device files,
    pipes and sockets raise a DatasetError naming `shown` (the user's name for the folder, default
    `root`) and the entry; so do more than `max_files` entries or `max_bytes` bytes (default: the
    `archive_files` and `archive_bytes` input limits). `root` itself may be a link (a user's own path), but
    nothing under it is followed.
    """
    limits = input_limits()
    max_bytes = limits.archive_bytes if max_bytes is None else max_bytes
    max_files = limits.archive_files if max_files is None else max_files
    root = Path(root)
    label = str(shown if shown is not None else root)
    inodes: dict[tuple[int, int], list] = {}  # (device, inode) -> [names seen here, st_nlink, first name]
    count = total = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise DatasetError(f"{label}: cannot read {_rel(folder, root)} ({exc.strerror}); "
                               f"check the folder's permissions") from None
        for entry in entries:
            relative = _rel(entry.path, root)
            info = entry.stat(follow_symlinks=False)
            problem = name_problem(relative, limits.entry_name) or mode_problem(info.st_mode)
            if problem:
                raise DatasetError(f"{label}: entry {relative!r} {problem}; refusing the folder (copy the real "
                                   f"files in, without links or special files)")
            count += 1
            if count > max_files:
                raise DatasetError(f"{label}: more than {max_files} entries; refusing the folder (the limit is "
                                   f"CVATFLOW_MAX_ARCHIVE_FILES)")
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))
                continue
            total += info.st_size
            if total > max_bytes:
                raise DatasetError(f"{label}: more than {max_bytes / 1024 ** 3:.0f} GiB of files; refusing (the "
                                   f"limit is CVATFLOW_MAX_ARCHIVE_BYTES)")
            if info.st_nlink > 1:
                seen = inodes.setdefault((info.st_dev, info.st_ino), [0, info.st_nlink, relative])
                seen[0] += 1
    for names, links, relative in inodes.values():
        if names < links:
            # Another name for the same file lives outside the folder: reading it would read that file.
            raise DatasetError(f"{label}: entry {relative!r} is a hard link to a file outside the folder; "
                               f"refusing the folder (copy the files in with `cp` rather than `ln`)")


def _rel(path: str | Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)
