"""Webhook rules (the config's `webhooks:` list): which CVAT event starts which training, and delivery dedup.

A rule, in the config file:

    webhooks:
      - event: update:task            # update:task, update:job, create:job, or completed:request[create:task]
        when: {status: completed}     # the task/job as the payload shows it now; a training starts when it
                                      # enters this state, once (see Rules)
        project: 3                    # optional: only tasks/jobs of this CVAT project
        template: maskrcnn-training   # the template to run on the task
        parameters: {epochs: 10}      # optional: parameter values
        labels: {team: vision}        # optional: labels of the run

CVAT 2.x sends `update:<resource>` with the resource as it is now; since cvat-ai/cvat#11104 (2026) without
`before_update`. So a state is recognised as entered from the payload alone, with our own record of what we
already started for that task or job: a rename of a completed task does not train again, completing it again
after reopening does. Where an older CVAT still sends `before_update`, a watched field must be in it.
"""
from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cvatflow.config import ConfigError

RESOURCES = ("task", "job")  # what a training can start from: the task itself, or one of its jobs
# CVAT sends this when a task's data creation request finishes (cvat-ai/cvat#10897): the task has its images.
DATA_READY = "completed:request[create:task]"
EVENTS = ("update:task", "update:job", "create:job", DATA_READY)
KEYS = {"event", "when", "project", "template", "parameters", "labels", "name"}
RULE_LABEL = "cvatflow.io/webhook-rule"  # on the runs a rule starts: our record survives a restart
REMEMBERED = 10_000  # tasks/jobs whose state the rules remember


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
        """The payload key of the object the event is about: task, job, or request."""
        return "request" if self.event == DATA_READY else self.event.partition(":")[2]

    @property
    def on_entry(self) -> bool:
        """True for rules that start a training when a task or job enters a state (update events with `when`)."""
        return self.event.startswith("update:") and bool(self.when)

    def _fields(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The fields rules look at: the task/job object, or a request's operation (task_id, project_id...)."""
        obj = payload.get(self.resource)
        if not isinstance(obj, dict):
            return None
        if self.event == DATA_READY:
            operation = obj.get("operation")
            if not isinstance(operation, dict) or obj.get("status") != "finished" or not operation.get("task_id"):
                return None  # a failed data upload, or not a task's
            return {**operation, "status": obj.get("status")}
        return obj

    def about(self, payload: dict[str, Any]) -> bool:
        """The payload is this rule's event, on an object of its project (whatever the object's state)."""
        if payload.get("event") != self.event:
            return False
        fields = self._fields(payload)
        if fields is None:
            return False
        return self.project is None or str(fields.get("project_id")) == str(self.project)

    def in_state(self, payload: dict[str, Any]) -> bool:
        """The object is, now, in the state `when` names."""
        fields = self._fields(payload) or {}
        return all(str(fields.get(key)) == value for key, value in self.when.items())

    def changed(self, payload: dict[str, Any]) -> bool | None:
        """What an older CVAT's `before_update` says: a watched field changed (True) or not (False); None
        when the payload has no `before_update` (CVAT 2.x today) or the rule watches nothing."""
        before = payload.get("before_update")
        if not self.on_entry or not isinstance(before, dict):
            return None
        return any(key in before for key in self.when)

    def matches(self, payload: dict[str, Any]) -> bool:
        """This rule's event, project and state, and (where `before_update` says) a watched field changed.
        Without `before_update` whether the state was just entered is `Rules.matching`'s to tell."""
        return self.about(payload) and self.in_state(payload) and self.changed(payload) is not False

    def task_and_job(self, payload: dict[str, Any]) -> tuple[int, int | None]:
        """The CVAT task to train on, and the job the event was about (if it was a job)."""
        fields = self._fields(payload) or {}
        if self.resource == "job":
            return cvat_id(fields["task_id"]), cvat_id(fields["id"])
        if self.resource == "request":
            return cvat_id(fields["task_id"]), None
        return cvat_id(fields["id"]), None

    def subject(self, payload: dict[str, Any]) -> tuple[str, str, str]:
        """(rule, resource, id): what the record of started trainings is kept by."""
        task, job = self.task_and_job(payload)
        return self.name, self.resource, str(job if job is not None else task)

    def run_labels(self, payload: dict[str, Any]) -> dict[str, str]:
        """Labels that mark a run as this rule's, on this task (and job): what is looked for after a restart."""
        task, job = self.task_and_job(payload)
        labels = {RULE_LABEL: label_value(self.name), "cvatflow.io/cvat-task-id": str(task)}
        if job is not None:
            labels["cvat-job-id"] = str(job)
        return labels


class Rules(list):
    """The config's rules, with the record that turns "the task is completed" into "the task became completed".

    For each (rule, task or job) it remembers whether a training was started while the object was in the rule's
    state; a payload showing the object out of that state forgets it, so entering it again starts a new one.
    """

    def __init__(self, rules: list[Rule] | tuple[Rule, ...] = ()) -> None:
        super().__init__(rules)
        self._started: OrderedDict[tuple[str, str, str], bool] = OrderedDict()
        self._lock = threading.Lock()

    def matching(self, payload: dict[str, Any]) -> list[Rule]:
        """The rules whose event, project and state the delivery shows (and, where an older CVAT sends
        `before_update`, a watched field changed). Records the objects seen outside their rule's state; whether
        the state was entered now is `unstarted`'s to tell, after the duplicate check (so a redelivery still
        answers what it started). Raises nothing for payloads of other shapes (they match no rule)."""
        fired = []
        with self._lock:
            for rule in self:
                try:
                    if not rule.about(payload):
                        continue
                    key = rule.subject(payload)
                except (KeyError, TypeError, ValueError):
                    continue  # no usable id: not a delivery this rule can act on
                if not rule.in_state(payload):
                    if rule.on_entry:
                        self._remember(key, False)
                    continue
                if rule.changed(payload) is not False:
                    fired.append(rule)
        return fired

    def unstarted(self, rules: list[Rule], payload: dict[str, Any],
                  runs_exist: Callable[[dict[str, str]], bool]) -> list[Rule]:
        """Of `rules` (from `matching`), those that enter their state now: `before_update` says so (older CVAT), or
        (CVAT 2.x) no training was started for the object since it was last seen outside the state. For an object
        not seen since this server started, runs labelled with the rule and the task/job (`runs_exist(labels)`)
        stand in for the record, so a restart does not train a completed task again."""
        out = []
        for rule in rules:
            if rule.on_entry and rule.changed(payload) is None:
                key = rule.subject(payload)
                with self._lock:
                    started = self._started.get(key)
                if started or (started is None and runs_exist(rule.run_labels(payload))):
                    self.started(rule, payload)
                    continue
            out.append(rule)
        return out

    def started(self, rule: Rule, payload: dict[str, Any]) -> None:
        """Record that `rule` started a training for the payload's task or job in its current state."""
        if rule.on_entry:
            with self._lock:
                self._remember(rule.subject(payload), True)

    def _remember(self, key: tuple[str, str, str], started: bool) -> None:
        self._started[key] = started
        self._started.move_to_end(key)
        while len(self._started) > REMEMBERED:
            self._started.popitem(last=False)


def cvat_id(value: Any) -> int:
    """A CVAT object id from a payload: a JSON integer from 1 to 2**31 - 1 (CVAT's ids), else ValueError. int()
    alone took 1.7, true and "7", and 1e999 (infinity) ended in an OverflowError, a 500."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise ValueError(f"not a CVAT id: {str(value)[:40]}")
    return value


def label_value(text: str) -> str:
    """`text` as a Kubernetes label value: letters, digits, - _ . ; at most 63; alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63].strip("-_.") or "rule"


def parse_rules(items: list[dict[str, Any]] | None, source: str = "webhooks") -> Rules:
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
        if event == "create:task":
            problems.append(f"{where}.event: CVAT sends create:task before the task has any images, so a training "
                            f"would start on an empty dataset; use {DATA_READY} (sent when the task's data is "
                            f"ready) or update:task with when: {{status: completed}}")
        elif event not in EVENTS:
            problems.append(f"{where}.event: {event!r} cannot start a training; use one of {', '.join(EVENTS)}")
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
    names = [r.name for r in rules]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{source}: the name {name!r} is given to {names.count(name)} rules; names must differ "
                        f"(runs are labelled with them)")
    if problems:
        raise ConfigError("; ".join(problems))
    return Rules(rules)


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
