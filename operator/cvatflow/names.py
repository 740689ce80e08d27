"""Kubernetes syntax for what a run is called and labelled with, checked before anything is written."""
from __future__ import annotations

import re

from cvatflow.errors import Problem

# Runs are Argo Workflows: their names and labels must be valid there, whatever backend runs them.
LABEL_KEY = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"  # a namespace, a Service, ...
RUN_NAME = DNS1123_LABEL


def run_problems(name: str | None, labels: dict[str, str] | None) -> list[Problem]:
    """Problems with a run's name (a DNS label, at most 63 characters) and labels (Kubernetes label syntax)."""
    problems = []
    if name is not None and not re.fullmatch(RUN_NAME, str(name)):
        problems.append(Problem("name", f"{str(name)[:100]!r} is not a valid run name",
                                "use at most 63 lower-case letters, digits and '-', starting and ending "
                                "with a letter or digit"))
    for key, value in (labels or {}).items():
        prefix = str(key).partition("/")[0] if "/" in str(key) else ""
        if not re.fullmatch(LABEL_KEY, str(key)) or len(prefix) > 253:
            problems.append(Problem(f"label {str(key)[:100]!r}", "is not a valid Kubernetes label key",
                                    "use letters, digits, '-', '_' and '.', at most 63 characters"))
        elif not isinstance(value, str) or not re.fullmatch(LABEL_VALUE, value):
            problems.append(Problem(f"label {key}", f"value {str(value)[:100]!r} is not a valid label value",
                                    "use at most 63 letters, digits, '-', '_' and '.'"))
    return problems
