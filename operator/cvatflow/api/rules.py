"""Webhook rules (the config's `webhooks:` list): which CVAT event starts which training, and delivery dedup.

A rule, in the config file:

    webhooks:
      - event: update:task            # CVAT's event name: update:task, update:job, create:task...
        when: {status: completed}     # fields of the task/job after the change; for update events
                                      # one of them must be among the changed ones (before_update)
        project: 3                    # optional: only tasks/jobs of this CVAT project
        template: maskrcnn-training   # the template to run on the task
        parameters: {epochs: 10}      # optional: parameter values
        labels: {team: vision}        # optional: labels of the run
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from cvatflow.config import ConfigError

RESOURCES = ("task", "job")  # what a training can start from: the task itself, or one of its jobs
KEYS = {"event", "when", "project", "template", "parameters", "labels", "name"}


@dataclass(frozen=True)
class Rule:
    event: str
    template: str
    when: dict[str, str] = field(default_factory=dict)
    project: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    name: str = ""

    @property
    def resource(self) -> str:
        return self.event.partition(":")[2]

    def matches(self, payload: dict[str, Any]) -> bool:
        if payload.get("event") != self.event:
            return False
        obj = payload.get(self.resource)
        if not isinstance(obj, dict):
            return False
        if self.project is not None and str(obj.get("project_id")) != str(self.project):
            return False
        if any(str(obj.get(key)) != value for key, value in self.when.items()):
            return False
        if self.event.startswith("update:") and self.when:
            # "moved to completed", not "edited while completed": a watched field must have changed.
            before = payload.get("before_update") or {}
            return isinstance(before, dict) and any(key in before for key in self.when)
        return True

    def task_and_job(self, payload: dict[str, Any]) -> tuple[int, int | None]:
        """The CVAT task to train on, and the job the event was about (if it was a job)."""
        obj = payload[self.resource]
        if self.resource == "job":
            return int(obj["task_id"]), int(obj["id"])
        return int(obj["id"]), None


def parse_rules(items: list[dict[str, Any]] | None, source: str = "webhooks") -> list[Rule]:
    """Read and check the config's rules; every mistake is reported at start-up, not at the first delivery."""
    rules, problems = [], []
    for i, item in enumerate(items or []):
        where = f"{source}[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping with event and template")
            continue
        unknown = set(item) - KEYS
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}; use {', '.join(sorted(KEYS))}")
        event, template = str(item.get("event") or ""), str(item.get("template") or "")
        action, _, resource = event.partition(":")
        if action not in ("create", "update") or resource not in RESOURCES:
            problems.append(f"{where}.event: {event!r} cannot start a training; use create:task, update:task, "
                            f"create:job or update:job")
        if not template:
            problems.append(f"{where}.template: name the template to run")
        for key in ("when", "parameters", "labels"):
            if not isinstance(item.get(key) or {}, dict):
                problems.append(f"{where}.{key}: expected a mapping")
        project = item.get("project")
        if project is not None and not str(project).isdigit():
            problems.append(f"{where}.project: expected a CVAT project id (a number), not {project!r}")
        if problems:
            continue
        rules.append(Rule(
            event=event, template=template,
            when={str(k): _text(v) for k, v in (item.get("when") or {}).items()},
            project=int(project) if project is not None else None,
            parameters={str(k): _text(v) for k, v in (item.get("parameters") or {}).items()},
            labels={str(k): str(v) for k, v in (item.get("labels") or {}).items()},
            name=str(item.get("name") or f"rule-{i}")))
    if problems:
        raise ConfigError("; ".join(problems))
    return rules


def _text(value: Any) -> str:
    # YAML reads `completed` as a string but `true`/`3` as bool/int; CVAT sends strings and numbers.
    return str(value).lower() if isinstance(value, bool) else str(value)


class Deliveries:
    """Delivery keys already handled, with the executions they started (CVAT redelivers on errors and on demand)."""

    def __init__(self, keep: int = 10_000, ttl: float = 7 * 24 * 3600) -> None:
        self.keep, self.ttl = keep, ttl
        self._seen: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()
        self.lock = threading.Lock()  # held by the caller across check-and-start, so twins start one run

    def get(self, key: str) -> list[str] | None:
        entry = self._seen.get(key)
        if entry is None or entry[0] < time.monotonic() - self.ttl:
            return None
        return entry[1]

    def add(self, key: str, executions: list[str]) -> None:
        self._seen[key] = (time.monotonic(), list(executions))
        self._seen.move_to_end(key)
        while len(self._seen) > self.keep:
            self._seen.popitem(last=False)
