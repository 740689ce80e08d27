"""Fixtures and hooks of every folder: the CLI run in-process, the CI skip rules, thread-safe imports.

Helper modules (fake_cvat.py, api_fixtures.py, paths.py, ...) stay in tests/, which pytest puts on sys.path
(`pythonpath` in pyproject.toml); each folder's conftest.py holds what only its tests use.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

# Under CI=true a skip fails unless it is for a GPU or a real cluster (tests/ci_skips.py).
from ci_skips import (  # noqa: F401  (pytest finds hooks by name in conftest)
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_make_collect_report,
    pytest_runtest_makereport,
)
from storage_fixtures import any_store, gcs_server, s3_server  # noqa: F401  (fixtures: storage and cvat tests)


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



@pytest.fixture
def fake_cvat():
    """The fake CVAT server (responses checked against CVAT's OpenAPI schema) with one task of shapes.

    `fake_cvat_extra.cvat_with_task()` yields an object with `url`, `task_id`, `labels` (the task's label
    names) and `shapes(task_id)` (the task's annotation shapes, to see uploads arrive).
    """
    # Imported here, not skipped on ImportError: a broken import must fail the tests that need it (issue 24).
    from fake_cvat_extra import cvat_with_task

    with cvat_with_task() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_traceback_hook():
    yield
    sys.excepthook = sys.__excepthook__
