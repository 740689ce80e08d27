"""cvatflow's public surface: the names in `__all__`, a light import for training pods, every exception in errors.py."""
from __future__ import annotations

import ast
import os
import re
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


def test_every_backend_implements_the_backend_protocol_with_its_signatures():
    import inspect

    from cvatflow.runs.argo_server import ArgoServerBackend
    from cvatflow.runs.backend import Backend
    from cvatflow.runs.kubernetes import KubernetesBackend
    from cvatflow.runs.local import LocalBackend

    methods = [name for name, value in vars(Backend).items() if inspect.isfunction(value) and not name.startswith("_")]
    assert sorted(methods) == ["get_template", "run", "runs", "submit", "templates"]
    for cls in (LocalBackend, KubernetesBackend, ArgoServerBackend):
        assert issubclass(cls, Backend), cls
        for name in methods:
            wanted = list(inspect.signature(getattr(Backend, name)).parameters)
            given = list(inspect.signature(getattr(cls, name)).parameters)
            assert given[:len(wanted)] == wanted, (cls.__name__, name, given)
            assert getattr(cls, name) is not getattr(Backend, name), (cls.__name__, name, "not implemented")


def test_the_readme_lists_every_setting_with_its_key_and_variable():
    from cvatflow.config import settings_table

    readme = (PACKAGE.parents[1] / "README.md").read_text()
    for name, key, env, doc in settings_table():
        cells = [f"`{key}`" if key else "—", ", ".join(f"`{v.strip()}`" for v in env.split(",")) if env else "—"]
        assert f"| {cells[0]} | {cells[1]} | {doc} |" in readme, f"README's settings table lacks {name or env}"


def test_no_module_but_config_reads_the_environment_for_a_cvatflow_setting():
    from cvatflow.config import settings_table

    names = {v.strip() for _, _, env, _ in settings_table() for v in env.split(",") if v.strip()}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "config.py":
            continue
        text = path.read_text()
        for name in names:
            constants = re.findall(rf"""^(\w+)\s*=\s*["']{name}["']""", text, re.MULTILINE)  # TOKEN_ENV = "CVAT_..."
            for key in [f'"{name}"', f"'{name}'", *constants]:
                if re.search(rf"""(environ\.get\(|getenv\(|environ\[)\s*{key}""", text):
                    offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == [], "read it from cvatflow.config.Settings"
