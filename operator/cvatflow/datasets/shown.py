"""Errors name the user's input, never a temporary folder: temporary paths in errors are mapped back."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from cvatflow.errors import CvatflowError, ProblemsError


def rename(error: CvatflowError, names: dict[str | Path, str | Path]) -> None:
    """Rewrite `error` in place (message, ProblemsError source and problems)."""
    pairs = sorted(((str(k), str(v)) for k, v in names.items()), key=lambda kv: -len(kv[0]))

    def fix(text: str) -> str:
        for temporary, user in pairs:
            text = text.replace(temporary, user)
        return text

    if isinstance(error, ProblemsError):
        error.source = fix(error.source)
        error.problems = [dataclasses.replace(p, path=fix(p.path), message=fix(p.message), fix=fix(p.fix))
                          for p in error.problems]
        error.args = (str(error),)
    else:
        error.args = tuple(fix(a) if isinstance(a, str) else a for a in error.args)
