"""The one file-system check for user input trees and archive members: nothing may point or lead outside."""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from cvatflow.errors import DatasetError

MAX_BYTES = 50 * 1024 ** 3  # 50 GiB unpacked or in a folder
MAX_FILES = 2_000_000
MAX_NAME = 4096  # characters in one entry's relative path (Linux's PATH_MAX)


def name_problem(name: str) -> str | None:
    """Why an entry name (from a zip, a tar or a folder walk) could leave its folder, or None.

    Refuses absolute paths (POSIX or Windows drive), '..' components, NUL and other control
    characters, and names over MAX_NAME characters.
    """
    if len(name) > MAX_NAME:
        return f"has a name of {len(name)} characters (the limit is {MAX_NAME})"
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


def check_tree(root: str | Path, shown: str | Path | None = None, max_bytes: int = MAX_BYTES,
               max_files: int = MAX_FILES) -> None:
    """Refuse a folder export that holds anything but plain files and folders of its own.

    Symbolic links (even ones pointing inside), hard links to files outside the folder, device files,
    pipes and sockets raise a DatasetError naming `shown` (the user's name for the folder, default
    `root`) and the entry; so do more than `max_files` entries or `max_bytes` bytes. `root` itself may
    be a link (a user's own path), but nothing under it is followed.
    """
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
            problem = name_problem(relative) or mode_problem(info.st_mode)
            if problem:
                raise DatasetError(f"{label}: entry {relative!r} {problem}; refusing the folder (copy the real "
                                   f"files in, without links or special files)")
            count += 1
            if count > max_files:
                raise DatasetError(f"{label}: more than {max_files} entries; refusing the folder")
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))
                continue
            total += info.st_size
            if total > max_bytes:
                raise DatasetError(f"{label}: more than {max_bytes / 1024 ** 3:.0f} GiB of files; refusing")
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
