"""`make mutation`: cosmic-ray mutants of the code where a silent defect costs users most; kill rate per module.

Each target is a module (or some of its functions) and the test files that claim to cover it. The run works on a
copy of the checkout, so an interrupted run never leaves a mutant in the working tree. Usage:

    python .ci/mutation.py                 # every target
    python .ci/mutation.py archive evaluation   # only these (names below)
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.90  # issue 24: at least 90% of mutants killed in each target


@dataclass
class Target:
    name: str
    module: str
    functions: tuple[str, ...]  # "Class.method" or "function"; empty: the whole module
    tests: tuple[str, ...]


TARGETS = [
    Target("archive", "operator/cvatflow/datasets/archive.py", (),
           ("tests/test_archive_guards.py", "tests/test_datasets.py")),
    Target("webhooks", "operator/cvatflow/api/webhooks.py", (), ("tests/test_api_webhooks.py",)),
    Target("auth", "operator/cvatflow/api/auth.py", (),
           ("tests/test_api_every_route.py", "tests/test_api_templates.py")),
    Target("restore", "operator/cvatflow/training/loop.py", ("Trainer.payload", "Trainer._restore"),
           ("tests/test_training_resume_state.py",)),
    Target("evaluation", "operator/cvatflow/training/evaluation.py", ("evaluate", "_f1_optimal"),
           ("tests/test_evaluation_independent.py", "tests/test_training_evaluation.py")),
    Target("executor", "operator/cvatflow/local/executor.py", ("LocalExecutor._spawn", "LocalExecutor.execute"),
           ("tests/test_local_executor_retry.py", "tests/test_local_executor.py")),
    Target("submission", "operator/cvatflow/controller/submit.py", ("submit",),
           ("tests/test_controller_handlers.py", "tests/test_controller_conflict.py")),
    Target("cluster", "operator/cvatflow/controller/cluster.py", ("Cluster.create_workflow",),
           ("tests/test_controller_conflict.py", "tests/test_controller_handlers.py")),
]


def line_ranges(path: Path, functions: tuple[str, ...]) -> list[tuple[int, int]]:
    """First and last line of each named function (`Class.method` or `function`) in the module."""
    tree = ast.parse(path.read_text())
    found: dict[str, tuple[int, int]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = (node.lineno, node.end_lineno)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found[f"{node.name}.{item.name}"] = (item.lineno, item.end_lineno)
    missing = [f for f in functions if f not in found]
    if missing:
        sys.exit(f"mutation: {path} has no {', '.join(missing)}; update TARGETS in .ci/mutation.py")
    return [found[f] for f in functions]


def fstring_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(line, column) start and end of every f-string: error messages, whose arithmetic only words them."""
    return [((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset))
            for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.JoinedStr)]


def copy_checkout(into: Path) -> Path:
    """The tracked and untracked (not ignored) files, beside a link to ../shared as the tests expect."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    repo = into / "repo"
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    if (ROOT.parent / "shared").exists():
        (into / "shared").symlink_to(ROOT.parent / "shared")
    if (ROOT / ".tools").exists():
        (repo / ".tools").symlink_to(ROOT / ".tools")
    return repo


def run_target(target: Target, repo: Path, timeout: float) -> dict:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    work = repo.parent / target.name
    work.mkdir()
    tests = " ".join(target.tests)
    config = work / "config.toml"
    config.write_text(f'''[cosmic-ray]
module-path = "{target.module}"
timeout = {timeout}
excluded-modules = []
test-command = "{sys.executable} -m pytest -x -q -p no:cacheprovider -p no:randomly {tests}"

[cosmic-ray.distributor]
name = "local"
''')
    session = work / "session.sqlite"
    env = {**os.environ, "PYTHONPATH": str(repo / "operator"), "CI": "", "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-m", "cosmic_ray.cli", "init", str(config), str(session)], cwd=repo, env=env,
                   check=True)
    ranges = line_ranges(repo / target.module, target.functions) if target.functions else [(1, 10 ** 9)]
    messages = fstring_spans(repo / target.module)
    with use_db(str(session), WorkDB.Mode.open) as db:
        skipped, sites = [], set()
        for item in db.pending_work_items:
            m = item.mutations[0]
            site = (m.start_pos, m.operator_name.split("_")[0])
            if not any(a <= m.start_pos[0] <= b for a, b in ranges):
                skipped.append(item.job_id)  # outside the named functions: not this target's business
            elif any(start <= m.start_pos <= end for start, end in messages):
                skipped.append(item.job_id)  # inside an f-string: changes a message's wording only
            elif m.operator_name.startswith("core/ReplaceBinaryOperator") and site in sites:
                skipped.append(item.job_id)  # one of the ~13 operator swaps per site is enough to test it
            sites.add(site)
        db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
    baseline = subprocess.run([sys.executable, "-m", "cosmic_ray.cli", "baseline", str(config)], cwd=repo, env=env,
                              check=False,
                              capture_output=True, text=True)
    if baseline.returncode != 0:
        sys.exit(f"mutation: the tests of {target.name} fail without any mutant:\n{baseline.stdout[-2000:]}"
                 f"{baseline.stderr[-2000:]}")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "cosmic_ray.cli", "exec", str(config), str(session)], cwd=repo, env=env,
                   check=True)
    killed, survivors, total = 0, [], 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            total += 1
            if result.test_outcome == TestOutcome.SURVIVED:
                mutation = item.mutations[0]
                survivors.append(f"{target.module}:{mutation.start_pos[0]} {mutation.operator_name} "
                                 f"#{mutation.occurrence}\n{_changed_lines(result.diff)}")
            else:
                killed += 1
    return {"name": target.name, "killed": killed, "total": total, "survivors": survivors,
            "seconds": time.monotonic() - started}


def _changed_lines(diff: str | None) -> str:
    lines = [line for line in (diff or "").splitlines()
             if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return "\n".join(f"    {line}" for line in lines[:6])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"targets to run (default all): {', '.join(t.name for t in TARGETS)}")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a mutant's tests may take")
    args = parser.parse_args(argv)
    unknown = set(args.names) - {t.name for t in TARGETS}
    if unknown:
        parser.error(f"unknown targets {', '.join(sorted(unknown))}")
    chosen = [t for t in TARGETS if not args.names or t.name in args.names]
    with tempfile.TemporaryDirectory(prefix="cvatflow-mutation-") as tmp:
        repo = copy_checkout(Path(tmp))
        reports = []
        for target in chosen:
            report = run_target(target, repo, args.timeout)
            reports.append(report)
            rate = report["killed"] / report["total"] if report["total"] else 1.0
            print(f"{target.name:12} {target.module}: {report['killed']}/{report['total']} killed ({rate:.0%}) "
                  f"in {report['seconds'] / 60:.1f} min", flush=True)
            for survivor in report["survivors"]:
                print(f"  survived: {survivor}", flush=True)
    print("\nkill rate per target (goal 90%):")
    below = 0
    for report in reports:
        rate = report["killed"] / report["total"] if report["total"] else 1.0
        below += rate < GOAL
        print(f"  {report['name']:12} {rate:6.1%}  ({report['killed']}/{report['total']}, "
              f"{len(report['survivors'])} survived)")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
