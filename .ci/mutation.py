"""`make mutation`: cosmic-ray mutants of the code where a silent defect costs users most; kill rate per module.

Each target is a module (or some of its functions) and the test files that claim to cover it. The run works on a
copy of the checkout, so an interrupted run never leaves a mutant in the working tree. Usage:

    python .ci/mutation.py                          # every target, one mutant per core at a time
    python .ci/mutation.py archive evaluation       # only these (names below)
    python .ci/mutation.py --count                  # how many mutants each target has
    python .ci/mutation.py --without-mut-tests auth # what the tests other than tests/*/test_mut_*.py kill

It ends with a table: per target the mutants, killed, known equivalent, survived, the kill rate and whether it meets
GOAL; above it, each unexplained survivor's line and change. A survivor is killed by a new test in
tests/<package>/test_mut_<target>.py (through public functions, asserting behaviour) or, when no input can tell it
from the code, listed in EQUIVALENTS below (the reason in that test file's docstring). Known equivalents are counted
apart: the kill rate is of the other mutants, so only unexplained survivors can fail a target.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import os
import queue
import random
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.90  # issue 24: at least 90% of mutants killed in each target


# The test files (or test ids) that claim to cover each target, the fastest and most focused first: pytest stops at
# the first failure. The ONE place test paths are named (tests may move into per-package folders: update them here).
TESTS: dict[str, tuple[str, ...]] = {
    "archive": ("tests/datasets/test_mut_archive.py", "tests/datasets/test_archive_guards.py"),
    "webhooks": ("tests/api/test_mut_webhooks.py", "tests/api/test_api_webhooks.py"),
    "auth": ("tests/api/test_mut_auth.py", "tests/api/test_api_every_route.py", "tests/api/test_api_templates.py"),
    "restore": ("tests/training/test_mut_restore.py",),
    "evaluation": ("tests/training/test_mut_evaluation.py", "tests/training/test_evaluation_independent.py",
                   "tests/training/test_training_evaluation.py",
                   "tests/training/test_data_fit.py::test_evaluation_on_a_150_object_image_counts_all_of_them",
                   "tests/training/test_data_fit.py::test_the_coco100_numbers_equal_a_standard_evaluation"),
    "executor": ("tests/local/test_mut_executor.py", "tests/local/test_local_executor_retry.py", "tests/local/test_local_executor.py"),
    "submission": ("tests/controller/test_mut_submission.py", "tests/controller/test_controller_handlers.py",
                   "tests/controller/test_controller_conflict.py"),
    "cluster": ("tests/controller/test_controller_conflict.py", "tests/controller/test_controller_handlers.py"),
}


@dataclass
class Target:
    name: str
    module: str
    functions: tuple[str, ...]  # "Class.method" or "function"; empty: the whole module
    plugins: tuple[str, ...] = ()  # pytest plugins the tests need (no plugin is loaded unless named)

    @property
    def tests(self) -> tuple[str, ...]:
        return TESTS[self.name]


TARGETS = [
    Target("archive", "operator/cvatflow/datasets/archive.py", ()),
    Target("webhooks", "operator/cvatflow/api/webhooks.py", ()),
    Target("auth", "operator/cvatflow/api/auth.py", ()),
    # Trainer.payload/_restore (training/loop.py) hold no code cosmic-ray mutates (calls and dict lookups; it has no
    # statement deletion): tests/training/test_training_resume_state.py proves them by hand. Here: the checkpoint files.
    Target("restore", "operator/cvatflow/training/checkpoints.py", ()),
    Target("evaluation", "operator/cvatflow/training/evaluation.py", ("evaluate", "_stats", "_f1_optimal")),
    Target("executor", "operator/cvatflow/local/executor.py", ("LocalExecutor._spawn", "LocalExecutor.execute")),
    # The whole module: the checks before submission (invalid, versions, reserved parameters, the dump) are as much
    # the submission as submit() itself.
    Target("submission", "operator/cvatflow/controller/submit.py", ()),
    Target("cluster", "operator/cvatflow/controller/cluster.py", ("Cluster.create_workflow",)),
]


@dataclass(frozen=True)
class Equivalent:
    """Mutants no test can kill, named by what they change rather than by cosmic-ray's occurrence number or a line
    number (both shift when the module changes): the source line as it is and the same line in each mutant, both
    stripped of indentation (a mutant of a statement spanning lines: its changed lines, joined by newlines). One
    entry covers every place with that line (the same check written twice is one entry)."""

    line: str
    mutants: tuple[str, ...]
    why: str

    def covers(self, identity: tuple[str, str]) -> bool:
        return identity[0] == self.line and identity[1] in self.mutants


# Per target, the mutants known to be equivalent: no input can tell them from the code (the full reasons are in
# that target's test_mut_<target>.py docstring). `make mutation` prints a survivor's entry ("as an entry: ...").
_AP50 = '"AP50": float(p[0][p[0] > -1].mean()) if (p[0] > -1).any() else 0.0}'
_CURVE = '"precision": [float(v) for v in np.where(curve[:, valid] > -1, curve[:, valid], 0)'
_HITS = "hits[:, k] = np.where(count > 0, cum[np.maximum(count - 1, 0)] if len(cum) else 0, 0)"
_TP = 'tp_ids = {int(key.split("_", 1)[0]) for key, iou in matched.items() if iou >= 0.5}'
_PER_CLASS = 'result["per_class"][names[cat_id]] = {"AP": float(p[p > -1].mean()),'
_NEVER_BELOW = "pycocotools' precision in a class is all -1 or all >= 0, so no value lies in the changed range"
EQUIVALENTS: dict[str, tuple[Equivalent, ...]] = {
    "evaluation": (
        Equivalent("if max_dets > COCO_MAX_DETS:",
                   ("if max_dets != COCO_MAX_DETS:", "if max_dets >= COCO_MAX_DETS:"),
                   "max_dets was raised to at least 100 above; at exactly 100 both paths give the same stats"),
        Equivalent("stats = [max(0.0, float(v)) for v in ev.stats[:12]]",
                   ("stats = [max(0.0, float(v)) for v in ev.stats[: 13]]",),
                   "zip with the 12 STAT_NAMES stops at 12"),
        Equivalent("if (p > -1).any():", ("if (p != -1).any():",), _NEVER_BELOW),
        Equivalent(_PER_CLASS, (_PER_CLASS.replace("p > -1", "p != -1"), _PER_CLASS.replace("p > -1", "p > - 2"),
                                _PER_CLASS.replace("p > -1", "p > ~1"), _PER_CLASS.replace("p > -1", "p >= -1")),
                   _NEVER_BELOW + " (no -1 in a class that has values)"),
        Equivalent(_AP50, (
            '"AP50": float(p[0][p[ -1] > -1].mean()) if (p[0] > -1).any() else 0.0}',
            '"AP50": float(p[0][p[ 1] > -1].mean()) if (p[0] > -1).any() else 0.0}',
            '"AP50": float(p[0][p[0] != -1].mean()) if (p[0] > -1).any() else 0.0}',
            '"AP50": float(p[0][p[0] > - 2].mean()) if (p[0] > -1).any() else 0.0}',
            '"AP50": float(p[0][p[0] > -1].mean()) if (p[ -1] > -1).any() else 0.0}',
            '"AP50": float(p[0][p[0] > -1].mean()) if (p[ 1] > -1).any() else 0.0}',
            '"AP50": float(p[0][p[0] > -1].mean()) if (p[0] != -1).any() else 0.0}',
            '"AP50": float(p[0][p[0] > -1].mean()) if (p[0] > - 0).any() else 0.0}',
            '"AP50": float(p[0][p[0] > -1].mean()) if (p[0] > - 2).any() else 0.0}',
            '"AP50": float(p[0][p[0] > -1].mean()) if (p[0] > -1).any() else -1.0}',
            '"AP50": float(p[0][p[0] > -1].mean()) if (p[0] > -1).any() else 1.0}',
            '"AP50": float(p[0][p[0] > -1].mean()) if (p[0] > ~1).any() else 0.0}',
            '"AP50": float(p[0][p[0] > -1].mean()) if (p[0] >= -1).any() else 0.0}',
            '"AP50": float(p[0][p[0] > ~1].mean()) if (p[0] > -1).any() else 0.0}',
            '"AP50": float(p[0][p[0] >= -1].mean()) if (p[0] > -1).any() else 0.0}'),
            _NEVER_BELOW + "; a class with values has them in every row, so row 0, 1 or -1 decide alike and the "
            "`else` is never taken"),
        Equivalent("valid = (curve > -1).any(axis=0)", ("valid = (curve != -1).any(axis=0)",), _NEVER_BELOW),
        Equivalent(_CURVE, (_CURVE.replace("> -1", "!= -1"), _CURVE.replace("> -1", "> - 0"),
                            _CURVE.replace("> -1", "> - 2"), _CURVE.replace("> -1", "> ~1"),
                            _CURVE.replace("> -1", ">= -1"), _CURVE.replace("valid], 0)", "valid], -1)"),
                            _CURVE.replace("valid], 0)", "valid], 1)")),
                   _NEVER_BELOW + "; the valid columns hold no -1, so np.where's other value is never taken"),
        Equivalent("valid = values[values > -1]", ("valid = values[values != -1]",),
                   "the values are -1 or >= 0"),
        Equivalent("return max(0.0, float(valid.mean())) if valid.size else 0.0",
                   ("return max( -1.0, float(valid.mean())) if valid.size else 0.0",),
                   "a mean of values >= 0 is >= 0"),
        Equivalent('stats = {"mAP": mean(precision[:, :, :, 0, m]), "AP50": mean(precision[at(0.5), :, :, 0, m]),',
                   ('stats = {"mAP": mean(precision[:, :, :, 0, m]), "AP50": mean(precision[at( -0.5), :, :, 0, m]),',),
                   "the IoU threshold nearest to -0.5 is 0.5, the first"),
        Equivalent(_TP, (_TP.replace(">= 0.5", ">= -0.5"), _TP.replace('"_", 1', '"_", 2')),
                   "the IoU-0.5 evaluation matches nothing below 0.5; keys are '<detection>_<object>', the first "
                   "field is the same"),
        Equivalent("valid = n_gt > 0", ("valid = n_gt != 0",), "a count is never negative"),
        Equivalent("best = (-1.0, 0.0, 0.0, 0.0)", (
            "best = (+1.0, 0.0, 0.0, 0.0)", "best = (- 0.0, 0.0, 0.0, 0.0)", "best = (- 2.0, 0.0, 0.0, 0.0)",
            "best = (-1.0, -1.0, 0.0, 0.0)", "best = (-1.0, 0.0, -1.0, 0.0)", "best = (-1.0, 0.0, 0.0, -1.0)",
            "best = (-1.0, 0.0, 0.0, 1.0)", "best = (-1.0, 0.0, 1.0, 0.0)", "best = (-1.0, 1.0, 0.0, 0.0)",
            "best = (1.0, 0.0, 0.0, 0.0)", "best = (not 1.0, 0.0, 0.0, 0.0)"),
            "overwritten before it is read"),
        Equivalent(_HITS, (_HITS.replace("count > 0", "count != 0"), _HITS.replace("count - 1, 0", "count - 1, -1"),
                           _HITS.replace("else 0, 0)", "else -1, 0)"), _HITS.replace("else 0, 0)", "else 1, 0)")),
                   "a count is never negative, and `count > 0` masks the index and the `else` of a class without "
                   "detections (count 0 everywhere)"),
        Equivalent("prec = np.divide(hits, above, out=np.zeros_like(hits), where=above > 0)[:, valid]",
                   ("prec = np.divide(hits, above, out=np.zeros_like(hits), where=above != 0)[:, valid]",),
                   "a count is never negative"),
        Equivalent("rec = (hits / np.maximum(n_gt, 1))[:, valid]", ("rec = (hits / np.maximum(n_gt, 0))[:, valid]",),
                   "the classes without objects it guards are dropped by `[:, valid]`"),
        Equivalent("f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(prec), where=(prec + rec) > 0)",
                   ("f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(prec), where=(prec + rec) != 0)",),
                   "precision and recall are never negative"),
    ),
}


def identity(diff: str | None) -> tuple[str, str]:
    """(source line, mutant line) of a mutant from its unified diff: the removed and the added lines, stripped."""
    lines = (diff or "").splitlines()
    removed = [line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")]
    return "\n".join(removed), "\n".join(added)


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


def inert_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(line, column) start and end of code whose mutants change nothing a test can see: f-strings (error messages,
    whose arithmetic only words them) and annotations (`str | None` -> `str & None`: the modules postpone their
    evaluation, so they are never run; but FastAPI reads `Annotated[...]` ones, so those stay)."""
    source = path.read_text()
    tree = ast.parse(source)
    nodes = [node for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)]
    postponed = any(isinstance(node, ast.ImportFrom) and node.module == "__future__" and
                    any(a.name == "annotations" for a in node.names) for node in tree.body)
    for node in ast.walk(tree) if postponed else ():
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs + \
                [a for a in (node.args.vararg, node.args.kwarg) if a]
            nodes += [a.annotation for a in arguments if a.annotation] + ([node.returns] if node.returns else [])
        elif isinstance(node, ast.AnnAssign):
            nodes.append(node.annotation)
    return [((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)) for node in nodes
            if isinstance(node, ast.JoinedStr) or "Annotated[" not in ast.get_source_segment(source, node)]


def copy_checkout(into: Path, copies: int) -> list[Path]:
    """`copies` copies of the tracked and untracked (not ignored) files, beside a link to ../shared as the tests
    expect: one per worker, since a worker writes its mutant into its own copy's module."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    repos = []
    for index in range(copies):
        repo = into / f"repo-{index}"
        for name in filter(None, files):
            source = ROOT / name
            if source.is_symlink() or source.is_file():
                (repo / name).parent.mkdir(parents=True, exist_ok=True)
                if source.is_symlink():
                    (repo / name).symlink_to(os.readlink(source))
                else:
                    shutil.copy2(source, repo / name)
        if (ROOT / ".tools").exists() and not (repo / ".tools").is_symlink():
            (repo / ".tools").symlink_to((ROOT / ".tools").resolve())
        repos.append(repo)
    if (ROOT.parent / "shared").exists():
        (into / "shared").symlink_to(ROOT.parent / "shared")
    return repos


def test_command(target: Target, repo: Path, own: bool = True) -> list[str]:
    """pytest on the target's tests inside `repo`: stop at the first failure, no cache, and only the plugins named
    (PYTEST_DISABLE_PLUGIN_AUTOLOAD below): loading hypothesis, schemathesis & co. for every mutant costs seconds."""
    tests = [t for t in target.tests if own or not Path(t).name.startswith("test_mut_")]
    plugins = [arg for name in ("pytest_timeout", *target.plugins) for arg in ("-p", name)]
    return ["env", "-C", str(repo), f"PYTHONPATH={repo / 'operator'}", sys.executable, "-m", "pytest", "-x", "-q",
            "-p", "no:cacheprovider", "-o", "addopts=", *plugins, *tests]


def mutants(target: Target, repo: Path, work: Path) -> tuple[Path, list]:
    """cosmic-ray's mutants of the module, in a session database; the ones outside this target's scope are recorded
    as skipped there. Returns the database and the mutants to run."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    work.mkdir()
    config = work / "config.toml"
    config.write_text(f'[cosmic-ray]\nmodule-path = "{target.module}"\ntimeout = 1\nexcluded-modules = []\n'
                      f'test-command = "true"\n\n[cosmic-ray.distributor]\nname = "local"\n')
    session = work / "session.sqlite"
    subprocess.run([sys.executable, "-m", "cosmic_ray.cli", "init", str(config), str(session)], cwd=repo,
                   check=True, env={**os.environ, "PYTHONPATH": str(repo / "operator")})
    ranges = line_ranges(repo / target.module, target.functions) if target.functions else [(1, 10 ** 9)]
    inert = inert_spans(repo / target.module)
    with use_db(str(session), WorkDB.Mode.open) as db:
        skipped, chosen = [], []
        for item in sorted(db.pending_work_items, key=lambda i: (i.mutations[0].start_pos, i.mutations[0].operator_name,
                                                           i.mutations[0].occurrence)):
            m = item.mutations[0]
            if not any(a <= m.start_pos[0] <= b for a, b in ranges):
                skipped.append(item.job_id)  # outside the named functions: not this target's business
            elif any(start <= m.start_pos <= end for start, end in inert):
                skipped.append(item.job_id)  # in an f-string or an annotation
            elif m.operator_name.startswith(("core/ReplaceBinaryOperator", "core/ReplaceComparisonOperator")) \
                    and not _partner(m.operator_name):
                skipped.append(item.job_id)  # the swaps in PARTNERS test an operator; the other ones add nothing
            else:
                chosen.append(item)
        db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
    return session, chosen


# The swaps kept per operator. Arithmetic: its inverse, the slip of the hand (`a |= b` -> `a += b` on booleans,
# say, changes nothing any test could see; `a &= b` does). Comparisons: the off-by-one and the opposite, the
# "sufficient" set of Kaminski, Ammann & Offutt (ICSE 2011), whose tests kill the other swaps too.
PARTNERS = {"Add": ("Sub",), "Sub": ("Add",), "Mul": ("Div",), "Div": ("Mul",), "FloorDiv": ("Mul",),
            "Mod": ("FloorDiv",), "Pow": ("Mul",), "LShift": ("RShift",), "RShift": ("LShift",), "BitOr": ("BitAnd",),
            "BitAnd": ("BitOr",), "BitXor": ("BitOr",), "MatMult": ("Mul",),
            "Gt": ("GtE", "NotEq"), "Lt": ("LtE", "NotEq"), "GtE": ("Gt", "Eq"), "LtE": ("Lt", "Eq"),
            "Eq": ("NotEq",), "NotEq": ("Eq",), "Is": ("IsNot",), "IsNot": ("Is",)}


def _partner(operator: str) -> bool:
    """Whether `core/Replace...Operator_<from>_<to>` swaps an operator for one of its PARTNERS."""
    _, source, replacement = operator.rsplit("_", 2)
    return replacement in PARTNERS.get(source, ())


def run_target(target: Target, repos: list[Path], timeout: float | None, own: bool = True,
               deadline: float = float("inf")) -> dict:
    """Every mutant of the target, tested in parallel, one worker per repository copy; past `deadline` (a
    time.monotonic() value) no new mutant starts, and the report covers the ones tested (a random sample)."""
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import MutationSpec, TestOutcome

    session, items = mutants(target, repos[0], repos[0].parent / target.name)
    random.Random(0).shuffle(items)  # the same order every run, and a run cut short is a fair sample
    started, cpu = time.monotonic(), _children_cpu()
    baseline = subprocess.run(test_command(target, repos[0], own), capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if baseline.returncode != 0:
        sys.exit(f"mutation: the tests of {target.name} fail without any mutant:\n{baseline.stdout[-3000:]}"
                 f"{baseline.stderr[-2000:]}")
    # A mutant that makes the tests hang (a loop that never ends) is killed by the timeout, as cosmic-ray counts it.
    limit = timeout or max(60.0, 10 * seconds)
    free: queue.Queue[Path] = queue.Queue()
    for repo in repos:
        free.put(repo)

    def one(item):
        if time.monotonic() > deadline:
            return item, None
        repo = free.get()
        try:
            mutation = [MutationSpec(repo / m.module_path, m.operator_name, m.occurrence, m.start_pos, m.end_pos,
                                     m.operator_args) for m in item.mutations]
            return item, mutate_and_test(mutation, shlex.join(test_command(target, repo, own)), limit)
        finally:
            free.put(repo)

    known = EQUIVALENTS.get(target.name, ())
    killed, survivors, equivalent, errors, untested = 0, [], [], [], 0
    seen: dict[tuple[str, str], str] = {}  # a listed mutant: "survived", or "killed" when a test now tells it apart
    pool = concurrent.futures.ThreadPoolExecutor(len(repos))
    try:
        with use_db(str(session), WorkDB.Mode.open) as db:
            results = pool.map(one, items)
            for item, result in results:
                if result is None:  # past the deadline: not tested
                    untested += 1
                    continue
                db.set_result(item.job_id, result)
                m = item.mutations[0]
                where = f"{target.module}:{m.start_pos[0]} {m.operator_name} #{m.occurrence}"
                named = identity(result.diff)
                listed = next((e for e in known if e.covers(named)), None)
                if listed is not None and result.test_outcome in (TestOutcome.KILLED, TestOutcome.SURVIVED):
                    survived = result.test_outcome == TestOutcome.SURVIVED  # in one place at least
                    seen[named] = "survived" if survived or seen.get(named) == "survived" else "killed"
                if result.test_outcome == TestOutcome.KILLED:
                    killed += 1
                elif result.test_outcome == TestOutcome.SURVIVED and listed is not None:
                    equivalent.append(where)
                elif result.test_outcome == TestOutcome.SURVIVED:
                    survivors.append(f"{where}\n{_changed_lines(result.diff)}\n    as an entry: {identity(result.diff)!r}")
                else:  # cosmic-ray could not make this mutant (it fails on `except (module.Error, ...)`)
                    errors.append(f"{where}: {''.join((result.output or '').strip().splitlines()[-1:])}")
    finally:  # stopped (SIGTERM, ^C): only the mutants under test finish
        pool.shutdown(wait=True, cancel_futures=True)
    # A listed entry no surviving mutant matched: a test now kills it, or its line changed. Only a full run can say.
    stale = [] if untested else [(e.line, m, seen.get((e.line, m), "not found")) for e in known for m in e.mutants
                                 if seen.get((e.line, m)) != "survived"]
    return {"name": target.name, "module": target.module, "killed": killed,
            "total": len(items) - len(errors) - untested, "untested": untested, "equivalent": equivalent,
            "stale": stale, "survivors": survivors, "errors": errors, "seconds": time.monotonic() - started,
            "baseline": seconds, "session": session, "cpu": _children_cpu() - cpu}


def rate(report: dict) -> float:
    """Killed / mutants, the known equivalents left out of both (no test could kill them)."""
    judged = report["total"] - len(report.get("equivalent", ()))
    return report["killed"] / judged if judged else 1.0


def failed(report: dict) -> bool:
    """A target fails on its unexplained survivors (a rate under GOAL) or on mutants left untested."""
    return rate(report) < GOAL or bool(report.get("untested"))


def _children_cpu() -> float:
    """CPU seconds of the finished test runs so far: on a loaded machine the wall clock says little, but a machine
    with N idle cores takes about this / N."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _changed_lines(diff: str | None) -> str:
    lines = [line for line in (diff or "").splitlines()
             if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return "\n".join(f"    {line}" for line in lines[:6])


def table(reports: list[dict]) -> str:
    """The per-target summary that `make mutation` ends with."""
    rows = [("target", "mutants", "killed", "equivalent", "survived", "not made", "not run", "rate",
             f"goal {GOAL:.0%}", "minutes", "CPU min")]
    for r in reports:
        if not r["total"] and r.get("untested"):
            rows.append((r["name"], "0", "-", "-", "-", str(len(r["errors"])), str(r["untested"]), "-", "not run", "-",
                         "-"))
            continue
        rows.append((r["name"], str(r["total"]), str(r["killed"]), str(len(r.get("equivalent", ()))),
                     str(len(r["survivors"])), str(len(r["errors"])), str(r.get("untested", 0)), f"{rate(r):.1%}",
                     "NOT met" if failed(r) else "met", f"{r['seconds'] / 60:.1f}", f"{r['cpu'] / 60:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"targets to run (default all): {', '.join(t.name for t in TARGETS)}")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds a mutant's tests may take (default: 10 times the unmutated run, at least 60)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants tested at once (default: "
                        "one per core)")
    parser.add_argument("--without-mut-tests", action="store_true",
                        help="leave out tests/*/test_mut_*.py: what the other tests alone kill")
    parser.add_argument("--count", action="store_true", help="only count each target's mutants")
    parser.add_argument("--minutes", type=float, default=None,
                        help="start no mutant after this many minutes; the rest are reported as not tested")
    args = parser.parse_args(argv)
    unknown = set(args.names) - {t.name for t in TARGETS}
    if unknown:
        parser.error(f"unknown targets {', '.join(sorted(unknown))}")
    chosen = [t for t in TARGETS if not args.names or t.name in args.names]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the temporary copies are removed
    os.environ.update(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", CI="", PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    deadline = started + args.minutes * 60 if args.minutes else float("inf")
    with tempfile.TemporaryDirectory(prefix="cvatflow-mutation-") as tmp:
        if args.count:
            repo = copy_checkout(Path(tmp), 1)[0]
            for target in chosen:
                print(f"{target.name:12} {len(mutants(target, repo, repo.parent / target.name)[1]):4} mutants")
            return 0
        repos = copy_checkout(Path(tmp), max(1, args.jobs))
        reports = []
        for target in chosen:
            report = run_target(target, repos, args.timeout, not args.without_mut_tests, deadline)
            reports.append(report)
            judged = report["total"] - len(report["equivalent"])
            print(f"{target.name:12} {target.module}: {report['killed']}/{judged} killed ({rate(report):.0%}), "
                  f"{len(report['equivalent'])} known equivalent (EQUIVALENTS) "
                  f"in {report['seconds'] / 60:.1f} min (tests alone {report['baseline']:.0f} s)"
                  + (f"; {report['untested']} more not tested (--minutes)" if report["untested"] else ""), flush=True)
            for survivor in report["survivors"]:
                print(f"  survived: {survivor}", flush=True)
            for line, mutant, outcome in report["stale"]:
                print(f"  listed as equivalent, but {'killed now' if outcome == 'killed' else 'no such mutant'}: "
                      f"{line!r} -> {mutant!r}; update EQUIVALENTS[{target.name!r}]", flush=True)
            for error in report["errors"]:
                print(f"  not made (a cosmic-ray failure, not counted): {error}", flush=True)
    cpu = sum(r["cpu"] for r in reports)
    print(f"\nkill rate per target, {args.jobs} mutants at once, {(time.monotonic() - started) / 60:.1f} min in all "
          f"({cpu / 60:.0f} CPU minutes: about {cpu / 60 / args.jobs:.0f} min on {args.jobs} idle cores):")
    print(table(reports))
    return 1 if any(failed(r) for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
