"""Under CI=true nothing skips silently: missing tooling or a broken fixture import fails; GPU and cluster skip."""
from __future__ import annotations

import os
import re

from paths import ROOT

pytest_plugins = ["pytester"]

SUITE = '''
import pytest

@pytest.fixture
def fake_server():
    try:
        import no_such_module_here  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the fake server is not there yet ({exc})")

def test_needs_the_fake_server(fake_server):
    pass

def test_needs_helm():
    pytest.skip("helm is not obtainable here")

@pytest.mark.gpu
def test_on_a_gpu():
    pytest.skip("no CUDA GPU here")

@pytest.mark.cluster
def test_on_a_cluster():
    pass

@pytest.mark.xfail(strict=True)
def test_known_to_fail():
    assert False

def test_passes():
    pass
'''


def run(pytester, monkeypatch, ci: str | None, source: str = SUITE):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    # a subprocess: the hook imports torch, which cannot be imported twice in one process
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(test_suite=source)
    return pytester.runpytest_subprocess("-p", "ci_skips", "-rs", "-p", "no:cacheprovider")


def test_under_ci_only_gpu_and_cluster_skips_remain(pytester, monkeypatch):
    result = run(pytester, monkeypatch, "true")
    # the fixture's skip fails its set-up (an error), the test's own skip fails the test
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=2, xfailed=1)
    result.stdout.fnmatch_lines(["*test_needs_the_fake_server*skipped under CI=true*no_such_module_here*",
                                 "*test_needs_helm*skipped under CI=true*helm is not obtainable*"])
    assert result.ret != 0


def test_outside_ci_a_skip_is_still_a_skip(pytester, monkeypatch):
    result = run(pytester, monkeypatch, None)
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)
    assert result.ret == 0


def test_under_ci_a_module_that_skips_at_import_fails(pytester, monkeypatch):
    result = run(pytester, monkeypatch, "true", 'import pytest\npytest.importorskip("no_such_module_here")\n'
                                                'def test_x():\n    pass\n')
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*skipped under CI=true*no_such_module_here*"])


def test_ci_runs_the_suite_with_ci_true_and_the_skip_summary():
    script = (ROOT / ".ci" / "run").read_text()
    assert "export CI=true" in script and re.search(r"-r[a-zA-Z]*s", script) and "make test" in script
    makefile = (ROOT / "Makefile").read_text()
    test_target = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert "helm" in test_target.split() and "browser" in test_target.split()
