"""`cvatflow store sync` exits as a shell would: a command killed by a signal gives 128 + signal, not 247."""
from __future__ import annotations

import signal
import sys

import pytest


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A file:// store and a fresh CVATFLOW_HOME for `cvatflow store ...`; returns the store's folder."""
    monkeypatch.setenv("CVATFLOW_STORE", (tmp_path / "store").as_uri())
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    return tmp_path / "store"


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGKILL, 137), (signal.SIGTERM, 143)])
def test_a_killed_command_exits_128_plus_its_signal_and_still_uploads(cli, tmp_path, store, signum, status):
    killed = f"import os, pathlib; (pathlib.Path({str(tmp_path / 'out')!r}) / 'last.pt').write_text('w'); " \
             f"os.kill(os.getpid(), {int(signum)})"
    result = cli("store", "sync", tmp_path / "out", "outputs/run-1", "--", sys.executable, "-c", killed)
    assert result.code == status  # what the templates' retryStrategy (lastRetry.exitCode) looks for
    assert (store / "outputs" / "run-1" / "last.pt").read_text() == "w"


def test_a_clean_exit_stays_zero(cli, tmp_path, store):
    assert cli("store", "sync", tmp_path / "out", "outputs/run-1", "--", sys.executable, "-c", "pass").code == 0
