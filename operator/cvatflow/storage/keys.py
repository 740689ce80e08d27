"""Object-store keys given by users (output and annotation paths): relative, inside the store, printable, short."""
from __future__ import annotations

MAX_KEY = 1024  # bytes; S3's and GCS's limit for an object name


def key_problem(value: str) -> str | None:
    """Why `value` cannot be a store key prefix (cvat-output-path, cvat-annotation-path), or None.

    Refused: control characters (a line break would split a shell line or a log record), more than
    MAX_KEY bytes in UTF-8, absolute paths, '..' components, backslashes, and URIs (a key is relative
    to the configured store).
    """
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character (a line break or tab?)"
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY:
        return f"is {size} bytes long; object-store keys are at most {MAX_KEY}"
    if "://" in value:
        return "is a URI; give a key relative to the configured store, like outputs/task-3"
    if value.startswith("/"):
        return "is an absolute path; give a key relative to the store, like outputs/task-3"
    if "\\" in value:
        return "contains a backslash; separate folders with /"
    if ".." in value.split("/"):
        return "goes up with '..'; give a key inside the store"
    return None


def key_in_store(uri: str, store_uri: str) -> str | None:
    """The key of `uri` inside the store at `store_uri` ('' for the store's root), or None when it lies outside.

    The one place a store URI is cut into a key: `s3://b/p` holds `s3://b/p/x` but not `s3://b/px`.
    """
    root = store_uri.rstrip("/") + "/"
    if uri.rstrip("/") + "/" == root:
        return ""
    if not uri.startswith(root):
        return None
    return uri[len(root):]
