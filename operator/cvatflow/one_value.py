"""One value per setting: reconcile a form field (epochs) with the hyperparameters YAML key that sets the same thing."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cvatflow.errors import Problem
from cvatflow.templates.parameter import wire_string
from cvatflow.templates.template import Template

HYPERPARAMETERS = "hyperparameters"
# Form fields of the cvatflow-train templates that set a hyperparameter too: field -> YAML key. The field
# reaches the training image as a flag (--epochs, --batch-size) or the dataset step (--val-split), which
# is what the image uses, so the effective value is always written into the field.
FIELD_KEYS = {"epochs": "epochs", "batch-size": "batch_size", "val-split": "val_percent"}
# Where a run records the effective values and their sources (a Workflow annotation; JSON).
ANNOTATION = "cvatflow.io/hyperparameters"


@dataclass
class Setting:
    """The effective value of one hyperparameter and where it came from."""

    value: str
    source: str

    def to_dict(self) -> dict[str, str]:
        return {"value": self.value, "source": self.source}


def same(a: str, b: str) -> bool:
    """Whether two wire values mean the same thing ("20" and "20.0" do, as numbers)."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError, OverflowError):
        return a.strip() == b.strip()


def _mapping(text: str) -> dict[str, Any] | None:
    """The YAML's `key: value` mapping, or None when it does not parse (autofill reports that itself)."""
    from pathlib import PurePath

    from cvatflow.errors import TrainingError
    from cvatflow.training.hyperparameters import parse, read_mapping

    if "\n" not in text and PurePath(text.strip()).suffix in (".yaml", ".yml", ".json"):
        return None  # a file name, read in the training image; never read it here (the API runs this too)
    try:
        parse(text)  # types and bounds too: a bad value is reported once, as a hyperparameters problem
        return read_mapping(text)
    except TrainingError:
        return None


def reconcile(template: Template, given: dict[str, str], final: dict[str, str],
              problems: list[Problem]) -> dict[str, Setting]:
    """Decide each paired setting, write the effective value into `final`, and return the settings by YAML key.

    `given` holds what the caller supplied, `final` what will run (template defaults filled in). A value
    equal to the template's default counts as not set, because the CVAT dialog sends every field as shown.
    The rule: a value the user set wins over a default in the other place; two different user-set values
    are a Problem naming both. Keys set only in the YAML are reported too ("you, in hyperparameters").
    """
    if not template.has_parameter(HYPERPARAMETERS):
        return {}
    yaml_param = template.parameter(HYPERPARAMETERS)
    mine = _mapping(final[yaml_param.name])
    theirs = _mapping(yaml_param.value) or {}
    if mine is None:
        return {}
    yaml_given = yaml_param.name in given

    def yaml_set(key: str) -> bool:
        return yaml_given and key in mine and (key not in theirs or mine[key] != theirs[key])

    settings: dict[str, Setting] = {}
    for name, key in FIELD_KEYS.items():
        if not template.has_parameter(name):
            continue
        field = template.parameter(name)
        value = final[field.name]
        field_set = field.name in given and not same(given[field.name], field.value)
        if key in mine and yaml_set(key):
            wanted = wire_string(mine[key])
            if field_set and not same(value, wanted):
                problems.append(Problem(field.name, f"{field.name} is {value} but {yaml_param.name} sets "
                                        f"{key}: {wanted}; one setting cannot have two values",
                                        f"set {key} in one place only, or the same value in both"))
                continue
            final[field.name] = value if field_set else wanted
            source = f"you, in {field.name} and {yaml_param.name}" if field_set else f"you, in {yaml_param.name}"
            settings[key] = Setting(final[field.name], source)
        elif field_set:
            settings[key] = Setting(value, f"you, in {field.name}")
        else:
            settings[key] = Setting(value, f"template default of {field.name}")
    paired = set(settings)
    for key, value in mine.items():
        if key not in paired:
            source = f"you, in {yaml_param.name}" if yaml_set(key) else f"template default of {yaml_param.name}"
            settings[str(key)] = Setting(wire_string(value), source)
    return settings


def annotation(settings: dict[str, Setting]) -> dict[str, str]:
    """The Workflow annotation that records `settings` (empty when there are none)."""
    if not settings:
        return {}
    return {ANNOTATION: json.dumps({k: s.to_dict() for k, s in settings.items()}, separators=(",", ":"))}


def from_annotations(annotations: dict[str, str]) -> dict[str, dict[str, str]]:
    """The settings a run recorded (`annotation`), or {} for runs from before or from other tools."""
    try:
        data = json.loads(annotations.get(ANNOTATION) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
