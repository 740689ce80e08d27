"""`make bench`: every benchmark in bench/, one after another, then one table: figure, goal, met or not.

Each benchmark prints its own report and, through `bench/_goal.py`, one JSON line per figure into the file
`$CVATFLOW_BENCH_RESULTS`. A benchmark that fails or reports nothing is a row too, and the others still run;
this runner exits 0 (the table is the verdict; a benchmark run alone exits 1 below its goal).
`--quick` (`make bench QUICK=1`) gives each benchmark small settings: a check that it runs, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Small settings per benchmark for --quick (arguments; environment variables are in QUICK_ENV).
QUICK_ARGS = {
    "eval.py": ["--images", "200"],
    "time_to_map.py": ["--budget", "15", "--images", "24", "--size", "128"],
    "train.py": ["--steps", "5", "--images", "8", "--loader-size", "256"],
}
QUICK_ENV = {"BENCH_SECONDS": "2", "CVATFLOW_BENCH_RUNS": "40", "CVATFLOW_BENCH_SECONDS": "40",
             "BENCH_IMAGES": "200", "BENCH_ROUNDS": "1", "BENCH_LOCAL_IMAGES": "12", "BENCH_REPEATS": "5"}


def benchmarks(folder: Path = HERE) -> list[Path]:
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))


def run_one(path: Path, quick: bool, results: Path) -> tuple[int, float]:
    env = {**os.environ, "CVATFLOW_BENCH_RESULTS": str(results), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}  # _goal
    args = []
    if quick:
        env |= {"CVATFLOW_BENCH_QUICK": "1", **QUICK_ENV}
        args = QUICK_ARGS.get(path.name, [])
    print(f"\n== bench/{path.name} {' '.join(args)}".rstrip(), flush=True)
    start = time.monotonic()
    code = subprocess.call([sys.executable, str(path), *args], env=env)
    return code, time.monotonic() - start


def table(rows: list[dict], outcomes: dict[str, tuple[int, float]]) -> list[str]:
    """The summary: one line per figure, and one per benchmark that reported none."""
    lines = [("benchmark", "figure", "value", "goal", "met"), None]
    reported = set()
    for row in rows:
        reported.add(row["benchmark"])
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        lines.append((row["benchmark"], row["figure"], f"{row['value']:.4g}{row.get('unit', '')}",
                      row["goal"] or "(none set)", met))
    for name, (code, _) in outcomes.items():
        if name not in reported:
            lines.append((name, "(no figures reported)", "", "", f"exit {code}"))
        elif code not in (0, 1):
            lines.append((name, "(the benchmark failed)", "", "", f"exit {code}"))
    widths = [max(len(line[i]) for line in lines if line) for i in range(5)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() if line else
            "  ".join("-" * w for w in widths) for line in lines]


def main(argv: list[str] | None = None, folder: Path = HERE) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings: checks that each benchmark runs")
    parser.add_argument("only", nargs="*", help="benchmark file names (default: all)")
    args = parser.parse_args(argv)
    chosen = [p for p in benchmarks(folder) if not args.only or p.name in args.only or p.stem in args.only]
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.jsonl"
        results.touch()
        outcomes = {p.name: run_one(p, args.quick, results) for p in chosen}
        rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    print("\n== summary" + (" (quick settings: figures are noisy)" if args.quick else ""))
    for line in table(rows, outcomes):
        print(line)
    missed = sum(1 for r in rows if r["met"] is False)
    print(f"{sum(1 for r in rows if r['met'])} goals met, {missed} not met; "
          f"{sum(t for _, t in outcomes.values()) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
