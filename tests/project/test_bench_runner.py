"""`make bench` (bench/_run.py): every benchmark runs even when one misses its goal or crashes, one summary
table says figure, goal and met or not, and the runner exits 0; a goal is judged on the unrounded number."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

from paths import ROOT

BENCH = ROOT / "bench"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_goal_is_judged_unrounded(capsys, monkeypatch):
    monkeypatch.delenv("CVATFLOW_BENCH_RESULTS", raising=False)
    goals = load("_goal").Goals("bench/dump.py")
    assert goals.check("s3 speed-up", 7.96, ">=", 8, "x") is False  # prints as 7.96, never as a rounded "8.0"
    out = capsys.readouterr().out
    assert out == "s3 speed-up: 7.96x (goal >= 8x): BELOW GOAL\n"
    assert goals.check("file:// time ratio", 1.5, "<=", 1.5) is True
    assert goals.exit_code() == 1  # run alone, a benchmark below its goal fails


def test_every_benchmark_runs_and_one_table_sums_them_up(tmp_path, capsys):
    (tmp_path / "a_fast.py").write_text(
        "import sys\nfrom _goal import Goals\ng = Goals(__file__)\ng.check('speed-up', 7.96, '>=', 8, 'x')\n"
        "g.note('rate', 120.0, ' req/s')\nsys.exit(g.exit_code())\n")
    (tmp_path / "b_crash.py").write_text("raise SystemExit(2)\n")
    (tmp_path / "c_ok.py").write_text(
        "import sys\nfrom _goal import Goals\ng = Goals(__file__)\ng.check('overhead', 1.01, '<', 1.05, 'x')\n"
        "sys.exit(g.exit_code())\n")
    (tmp_path / "_helper.py").write_text("raise SystemExit('a helper is not a benchmark')\n")
    code = load("_run").main([], folder=tmp_path)
    out = capsys.readouterr().out
    assert code == 0
    summary = out.split("== summary", 1)[1].splitlines()
    cells = [re.split(r"\s{2,}", line.strip()) for line in summary[3:] if "  " in line]
    rows = {f"{c[0]}|{c[1]}": c for c in cells}
    assert rows["a_fast.py|speed-up"][2:] == ["7.96x", ">= 8x", "NO"]
    assert rows["a_fast.py|rate"][2:] == ["120 req/s", "(none set)", "-"]
    assert rows["b_crash.py|(no figures reported)"][2:] == ["exit 2"]
    assert rows["c_ok.py|overhead"][2:] == ["1.01x", "< 1.05x", "yes"]
    assert "1 goals met, 1 not met" in out
    assert "_helper" not in out


def test_make_bench_calls_the_runner():
    make = subprocess.run(["make", "-n", "bench"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert "bench/_run.py" in make.stdout, make.stdout + make.stderr
    assert sys.executable
