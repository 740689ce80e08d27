"""The JSON event lines a training image prints on stdout (Supervisely-compatible), written and read here."""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

METRICS = "EventType.METRICS"
CHECKPOINT = "EventType.CHECKPOINT"
PROGRESS = "EventType.PROGRESS"
EVENT_TYPES = (METRICS, CHECKPOINT, PROGRESS)


def metrics(kind: str, epoch: float, values: dict[str, float]) -> dict[str, Any]:
    """A metrics event; `kind` is "train" or "val"."""
    return {"message": "metrics", "event_type": METRICS, "type": kind, "epoch": epoch,
            "metrics": {k: float(v) for k, v in values.items()}, "timestamp": time.time()}


def checkpoint(id: int, subdir: str, sizeb: int, best_now: bool, optional: Any = None) -> dict[str, Any]:
    """A checkpoint event: `subdir` is relative to the output folder."""
    return {"message": "checkpoint", "event_type": CHECKPOINT, "id": id, "subdir": subdir, "sizeb": sizeb,
            "best_now": best_now, "optional": optional, "timestamp": time.time()}


def progress(subtask: str, current: int, total: int) -> dict[str, Any]:
    """A progress event for one subtask (train, val, export...)."""
    return {"message": "progress", "event_type": PROGRESS, "subtask": subtask, "current": current,
            "total": total, "timestamp": time.time()}


def emit(event: dict[str, Any], stream: IO[str] | None = None) -> None:
    """Print one event as one line and flush, so watchers see it at once."""
    out = stream or sys.stdout
    out.write(json.dumps(event, separators=(",", ":")) + "\n")
    out.flush()


def parse_line(line: str) -> dict[str, Any] | None:
    """The event on a log line, or None when the line is ordinary output."""
    line = line.strip()
    if not line.startswith("{") or "event_type" not in line:
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event_type") not in EVENT_TYPES:
        return None
    return event


def parse_lines(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The events among log lines, in order."""
    for line in lines:
        event = parse_line(line)
        if event is not None:
            yield event


@dataclass
class Summary:
    """What watchers show of a run: the latest progress, the latest and best metrics, the checkpoints."""

    epoch: float | None = None
    step: int | None = None
    total_steps: int | None = None
    train: dict[str, float] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)
    best_map: float | None = None
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def add(self, event: dict[str, Any]) -> None:
        kind = event.get("event_type")
        if kind == METRICS:
            values = event.get("metrics") or {}
            self.epoch = event.get("epoch", self.epoch)
            if event.get("type") == "val":
                self.val = dict(values)
                value = values.get("mAP", values.get("map"))
                if value is not None and (self.best_map is None or value > self.best_map):
                    self.best_map = float(value)
            else:
                self.train = dict(values)
            self.history.append({"type": event.get("type"), "epoch": event.get("epoch"), "metrics": values})
        elif kind == PROGRESS and event.get("subtask") == "train":
            self.step, self.total_steps = event.get("current"), event.get("total")
        elif kind == CHECKPOINT:
            self.checkpoints.append(event)

    @property
    def progress(self) -> float | None:
        """Fraction of training steps done, when known."""
        if self.step is None or not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)


def summarize(events: Iterable[dict[str, Any]]) -> Summary:
    summary = Summary()
    for event in events:
        summary.add(event)
    return summary
