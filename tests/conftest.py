"""Shared fixtures: the CLI run in-process, paths to the reference material."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

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
