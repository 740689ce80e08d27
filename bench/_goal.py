"""A benchmark figure against its goal: compared unrounded, said plainly, and collected by `make bench`."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

RESULTS = "CVATFLOW_BENCH_RESULTS"  # `make bench` (bench/_run.py) sets it: one JSON line per figure
QUICK = "CVATFLOW_BENCH_QUICK"  # set by `make bench QUICK=1`: small settings, noisy figures


def quick() -> bool:
    """True when the benchmark should use its small settings (a smoke run of the benchmark, not a measurement)."""
    return os.environ.get(QUICK, "") not in ("", "0")


class Goals:
    """The figures one benchmark checks. `check` compares the exact value (never the printed, rounded one)."""

    def __init__(self, benchmark: str) -> None:
        self.benchmark = Path(benchmark).name
        self.met: list[bool] = []

    def check(self, figure: str, value: float, op: str, target: float, unit: str = "") -> bool:
        """`value op target` with op one of >=, >, <=, <; prints the figure with enough digits to show why."""
        met = {">=": value >= target, ">": value > target, "<=": value <= target, "<": value < target}[op]
        self.met.append(met)
        verdict = "met" if met else "BELOW GOAL"
        print(f"{figure}: {value:.4g}{unit} (goal {op} {target:g}{unit}): {verdict}", flush=True)
        self._record({"figure": figure, "value": value, "goal": f"{op} {target:g}{unit}", "unit": unit,
                      "met": met})
        return met

    def note(self, figure: str, value: float, unit: str = "") -> None:
        """A figure with no goal (measured and shown only)."""
        self._record({"figure": figure, "value": value, "goal": "", "unit": unit, "met": None})

    def exit_code(self) -> int:
        """1 when any goal was missed: run alone, a benchmark below its goal fails."""
        if not all(self.met):
            print(f"{self.benchmark}: {self.met.count(False)} of {len(self.met)} goals not met", file=sys.stderr)
            return 1
        return 0

    def _record(self, row: dict) -> None:
        path = os.environ.get(RESULTS)
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"benchmark": self.benchmark, **row}) + "\n")
