"""`make mutation` counts known equivalent mutants apart: they never fail a target, unexplained survivors do, and
each listed one is named by its line and change, which stay true while the module changes elsewhere."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from paths import ROOT


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("ci_mutation", ROOT / ".ci" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ci_mutation"] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("ci_mutation", None)


# A diff as cosmic-ray writes it for a mutant (difflib's unified diff of the module).
DIFF = """--- mutation diff ---
--- aoperator/cvatflow/training/evaluation.py
+++ boperator/cvatflow/training/evaluation.py
@@ -101,7 +101,7 @@
     stats = ev.stats
-    if max_dets > COCO_MAX_DETS:
+    if max_dets != COCO_MAX_DETS:
         more = 1
"""


def report(killed, equivalent=0, survived=0, untested=0):
    return {"name": "t", "total": killed + equivalent + survived, "killed": killed, "equivalent": ["x"] * equivalent,
            "survivors": ["y"] * survived, "errors": [], "untested": untested, "seconds": 60, "cpu": 60}


def test_a_mutant_is_named_by_its_line_and_its_change(mutation):
    named = mutation.identity(DIFF)
    assert named == ("if max_dets > COCO_MAX_DETS:", "if max_dets != COCO_MAX_DETS:")
    entry = mutation.Equivalent("if max_dets > COCO_MAX_DETS:", ("if max_dets != COCO_MAX_DETS:",), "raised above")
    assert entry.covers(named)
    assert not entry.covers(("if max_dets > COCO_MAX_DETS:", "if max_dets >= COCO_MAX_DETS:"))
    assert not entry.covers(("if n > COCO_MAX_DETS:", "if max_dets != COCO_MAX_DETS:"))


def test_known_equivalents_never_fail_a_target_unexplained_survivors_do(mutation):
    # 56 equivalents and every other mutant killed: this was "77% NOT met" before the list
    assert mutation.rate(report(killed=190, equivalent=56)) == 1.0
    assert not mutation.failed(report(killed=190, equivalent=56))
    assert mutation.failed(report(killed=80, equivalent=56, survived=20))  # 80% of the mutants a test can kill
    assert mutation.failed(report(killed=190, untested=5))
    text = mutation.table([report(killed=190, equivalent=56)])
    header, row = text.splitlines()
    assert header.split()[:5] == ["target", "mutants", "killed", "equivalent", "survived"]
    assert row.split()[:8] == ["t", "246", "190", "56", "0", "0", "0", "100.0%"] and row.split()[8] == "met"


def test_every_listed_equivalent_names_a_line_its_module_has(mutation):
    # Cheap staleness check: an entry whose line was edited away would match no mutant in `make mutation`.
    modules = {t.name: (ROOT / t.module).read_text() for t in mutation.TARGETS}
    assert set(mutation.EQUIVALENTS) <= set(modules)
    for name, entries in mutation.EQUIVALENTS.items():
        lines = {line.strip() for line in modules[name].splitlines()}
        for entry in entries:
            assert all(part in lines for part in entry.line.split("\n")), (name, entry.line)
            assert entry.mutants and entry.why and entry.line not in entry.mutants, entry
