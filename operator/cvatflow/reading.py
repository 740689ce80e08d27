"""Read a user's file whole under a size limit: each failure is one error that names the file and the fix."""
from __future__ import annotations

from pathlib import Path

from cvatflow.errors import CvatflowError


def read_limited(path: Path, limit: int, error: type[CvatflowError], what: str, fix: str, too_big: str) -> bytes:
    """The bytes of the file at `path`, at most `limit` bytes.

    Raises `error` naming `path`: when the file is larger (the message ends in `too_big`, what to do about
    the limit), missing or a folder (ending in `fix`, how to give the right file), or unreadable. `what`
    names the kind of file ("annotation file", "manifest").
    """
    try:
        size = path.stat().st_size
        if size > limit:
            raise error(f"{path}: the {what} is {size:,} bytes, over the limit of {limit:,} bytes; {too_big}")
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file; {fix}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not the {what}; {fix}") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror}); check the path and its permissions") from None
