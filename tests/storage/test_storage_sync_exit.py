"""`cvatflow store sync` exits as a shell would: a command killed by a signal gives 128 + signal, not 247."""
from __future__ import annotations

import signal
import sys

import pytest


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGKILL, 137), (signal.SIGTERM, 143)])
def test_a_killed_command_exits_128_plus_its_signal_and_still_uploads(cli, tmp_path, monkeypatch, signum, status):
    store = tmp_path / "store"
    monkeypatch.setenv("CVATFLOW_STORE", store.as_uri())
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    killed = f"import os, pathlib; (pathlib.Path({str(out)!r}) / 'last.pt').write_text('w'); " \
             f"os.kill(os.getpid(), {int(signum)})"
    result = cli("store", "sync", out, "outputs/run-1", "--", sys.executable, "-c", killed)
    assert result.code == status  # what the templates' retryStrategy (lastRetry.exitCode) looks for
    assert (store / "outputs" / "run-1" / "last.pt").read_text() == "w"


def test_a_clean_exit_stays_zero(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CVATFLOW_STORE", (tmp_path / "store").as_uri())
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    assert cli("store", "sync", tmp_path / "out", "outputs/run-1", "--", sys.executable, "-c", "pass").code == 0
