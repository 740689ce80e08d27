"""Time to render and validate each built-in template and an imported Onepanel one (goal: under 20 ms each)."""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from _goal import Goals, quick

from cvatflow.templates import builtin_templates, load_file, render, validate
from cvatflow.templates.validate import schema_validator

ROOT = Path(__file__).resolve().parents[1]
ONEPANEL = ROOT / "docs" / "examples" / "onepanel-style-training.yaml"  # written in Onepanel's style (spec body, sh -c steps)
REPEATS = 10 if quick() else 50


def timed(fn) -> float:
    """Median milliseconds of `fn` over REPEATS calls."""
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    start = time.perf_counter()
    schema_validator(True)
    print(f"schema load (once per process): {(time.perf_counter() - start) * 1000:.1f} ms")
    cases = {name: (lambda t=t: validate(render(t))) for name, t in builtin_templates().items()}
    cases[f"onepanel:{ONEPANEL.name}"] = lambda: validate(render(load_file(ONEPANEL)))
    # Baseline in the same run: rendering alone, so the ratio shows what validation costs on top.
    baseline = timed(lambda: render(builtin_templates()["maskrcnn-training"]))
    worst = 0.0
    print(f"{'template':45} {'render+validate ms':>20} {'ratio to render-only':>22}")
    for name, fn in cases.items():
        ms = timed(fn)
        worst = max(worst, ms)
        print(f"{name:45} {ms:20.2f} {ms / baseline:22.1f}x")
    print(f"render-only baseline: {baseline:.2f} ms")
    goals = Goals(__file__)
    goals.check("slowest render+validate of a template", worst, "<", 20, " ms")
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
