"""cvatflow's public surface: the names in `__all__`, a light import for training pods, every exception in errors.py."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import cvatflow
from cvatflow import errors

PACKAGE = Path(cvatflow.__file__).resolve().parent
PUBLIC = ["Client", "CvatTask", "CvatflowError", "Parameter", "Phase", "Run", "RunStatus", "Template",
          "__version__", "get_template"]
# What a training pod must not pay for: the cluster, operator, server and validation stacks.
HEAVY = ("hera", "kopf", "fastapi", "jsonschema", "kubernetes", "uvicorn")


def imported_by(statement: str) -> set[str]:
    """Top-level modules `statement` imports in a fresh interpreter, read from `python -X importtime`."""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True,
                            env=env, check=True, timeout=300)
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "cvatflow" in names, result.stderr[-2000:]  # the probe itself works
    return names


def test_all_lists_exactly_the_public_names_and_each_resolves():
    assert sorted(cvatflow.__all__) == sorted(PUBLIC)
    for name in cvatflow.__all__:
        assert getattr(cvatflow, name) is not None, name
    assert set(cvatflow.__all__) <= set(dir(cvatflow))


def test_an_unknown_name_is_an_attribute_error():
    try:
        cvatflow.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("cvatflow.NoSuchThing resolved")


def test_import_cvatflow_training_does_not_import_the_cluster_or_server_stack():
    found = imported_by("import cvatflow.training")
    assert not found & set(HEAVY), sorted(found & set(HEAVY))


def test_import_cvatflow_alone_imports_no_submodule():
    found = imported_by("import cvatflow, sys; assert [m for m in sys.modules if m.startswith('cvatflow.')] == []")
    assert not found & {"yaml", "pydantic", *HEAVY}


def _exception_classes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
            if any(b.endswith(("Error", "Exception")) or b in {"Retry", "CvatflowError"} for b in bases):
                out.append(node.name)
    return out


def test_every_exception_class_lives_in_errors_py():
    elsewhere = {str(p.relative_to(PACKAGE)): found for p in PACKAGE.rglob("*.py")
                 if p.name != "errors.py" and (found := _exception_classes(p))}
    assert elsewhere == {}, "define exceptions in cvatflow/errors.py and re-export them"


def test_the_errors_docstring_draws_every_class():
    doc = errors.__doc__ or ""
    for name in _exception_classes(PACKAGE / "errors.py"):
        assert f" {name} " in doc, f"{name} is missing from the hierarchy in errors.py's docstring"
    assert errors.codes()["NotFoundError"] == 404 and errors.codes()["ConflictError"] == 409
