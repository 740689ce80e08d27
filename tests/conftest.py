"""Shared fixtures: the CLI run in-process, paths to the reference material."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Under CI=true a skip fails unless it is for a GPU or a real cluster (tests/ci_skips.py).
from ci_skips import (  # noqa: F401  (pytest finds hooks by name in conftest)
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_make_collect_report,
    pytest_runtest_makereport,
)


def _import_anyio_now() -> None:
    """Import all of anyio here, in the main thread, before any server thread starts.

    anyio is a pytest plugin, so pytest rewrites its modules as they are imported, which builds ASTs; and
    anyio imports most of itself lazily, on first use: Starlette's first FileResponse imports its file module
    inside a server thread. CPython 3.11's AST builder keeps one counter for all threads (gh-106905), so that
    rewrite, colliding with another thread's, raised SystemError and broke the response now and then.
    """
    import warnings

    import anyio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated aliases warn when touched
        for name in dir(anyio):
            getattr(anyio, name, None)


_import_anyio_now()

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `cvatflow ARGS...` in this process; returns exit code, stdout and stderr."""
    from cvatflow.cli import main

    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def onepanel_manifests() -> list[Path]:
    """Every real Onepanel template: the shared reference set and the seed's DETR template."""
    files = sorted((SHARED / "reference" / "onepanel-templates").glob("*.yaml"))
    files += sorted((DATA / "onepanel").glob("*.yaml"))
    return files


@pytest.fixture(autouse=True)
def _no_traceback_hook():
    yield
    sys.excepthook = sys.__excepthook__
