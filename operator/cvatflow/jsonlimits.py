"""Limits on JSON read from outside (request bodies, webhook payloads, COCO files): size and nesting depth."""
from __future__ import annotations

import json
import re
from typing import Any

from cvatflow.errors import (
    CvatflowError,
    JsonTooLarge,
)

MAX_DEPTH = 64  # COCO nests 5 deep, API bodies 4; CPython's parser overflows its stack near 1,000
MAX_REQUEST_BYTES = 1024 * 1024  # an API request or webhook payload (CVAT's are a few kB)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")


def depth(data: bytes | str) -> int:
    """The deepest nesting of arrays/objects in a JSON text, found without parsing it (so no recursion).

    Brackets inside strings are skipped. Stops counting once past MAX_DEPTH * 4 to stay cheap.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return _deepest(_STRING.sub(b"", raw))


def too_deep(data: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """True if `data` nests arrays/objects more than `limit` deep.

    Counting every bracket first (strings included) gives an upper bound in one pass; only a text whose
    bound is over the limit pays for the exact count, which skips strings.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return _deepest(raw) > limit and depth(raw) > limit


def _deepest(raw: bytes) -> int:
    level = deepest = 0
    for byte in raw.translate(None, _NOT_BRACKET):
        if byte in (0x5B, 0x7B):  # [ {
            level += 1
            if level > deepest:
                deepest = level
                if deepest > MAX_DEPTH * 4:
                    break
        else:
            level -= 1
    return deepest


def loads(data: bytes | str, what: str, max_bytes: int | None = None, max_depth: int = MAX_DEPTH,
          error: type[CvatflowError] = CvatflowError) -> Any:
    """`json.loads` with limits: JsonTooLarge (413) over `max_bytes`; `error` (default CvatflowError, 400)
    when nested deeper than `max_depth` or not JSON at all. `what` names the input in the message."""
    if max_bytes is not None and len(data) > max_bytes:
        raise JsonTooLarge(f"{what}: {len(data)} bytes of JSON, over the limit of {max_bytes}")
    if too_deep(data, max_depth):
        raise error(f"{what}: JSON nested more than {max_depth} levels deep; refusing it")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise error(f"{what}: not valid JSON ({str(exc)[:200]})") from None
