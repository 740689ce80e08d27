"""Whole numbers read from text a user, a header or a label gave: ASCII digits only, and few of them."""
from __future__ import annotations

import re


def whole_number(text: str | None, digits: int = 9) -> int | None:
    """`text` (surrounding spaces allowed) as a non-negative int when it is 1 to `digits` ASCII digits, else None.

    Not `str.isdigit()`: it takes "²" and other Unicode digits that int() then refuses with a ValueError, and a few
    thousand digits exceed int()'s conversion limit (sys.get_int_max_str_digits) with another ValueError.
    """
    if text is None:
        return None
    text = text.strip()
    return int(text) if re.fullmatch(rf"[0-9]{{1,{digits}}}", text) else None
