"""The Run handle every backend returns: status, wait, logs, events, metrics and outputs of one workflow run."""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from cvatflow import events as ev
from cvatflow.argo import ARGO_PHASES, FINISHED, Phase
from cvatflow.errors import ConflictError, RunError, RunFailed


def now() -> str:
    """The current time as Argo and Kubernetes write it (RFC 3339, UTC, seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


PHASES = ARGO_PHASES  # older name, kept for importers
DONE = FINISHED
OUTPUT_FOLDERS = ("model", "checkpoints", "report", "tensorboard", "export")
OUTPUT_FILES = {"dataset_report": "dataset_report.json"}  # what of the CVAT annotations reached the model


def output_uris(prefix: str) -> dict[str, str]:
    """URIs of a run's output folder, the folders inside it, and its dataset report."""
    prefix = prefix.rstrip("/") + "/"
    return {"output": prefix, **{name: f"{prefix}{name}/" for name in OUTPUT_FOLDERS},
            **{name: f"{prefix}{file}" for name, file in OUTPUT_FILES.items()}}


@dataclass
class StepStatus:
    """One step (pod) of a run, as Argo reports a node."""

    name: str
    phase: Phase | str  # a Phase; an unknown phase from a newer Argo stays a plain string
    started_at: str | None = None
    finished_at: str | None = None
    message: str = ""
    template: str = ""


@dataclass
class RunStatus:
    """Where a run stands, in Argo's words."""

    name: str
    template: str
    phase: Phase | str  # a Phase; an unknown phase from a newer Argo stays a plain string
    progress: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    message: str = ""
    steps: list[StepStatus] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.phase in DONE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Run(ABC):
    """A submitted workflow run; backends fill in how status and logs are read."""

    def __init__(self, name: str, template: str = "") -> None:
        self.name = name
        self.template = template

    def __repr__(self) -> str:
        return f"<Run {self.name} ({self.template})>"

    @abstractmethod
    def status(self) -> RunStatus: ...

    @abstractmethod
    def logs(self, step: str | None = None) -> str:
        """The run's log lines (of one step, or of all steps in order)."""

    @abstractmethod
    def output_prefix(self) -> str | None:
        """The URI the run's /mnt/output is uploaded to, once known."""

    # Lifecycle (Argo's stop, terminate, retry, delete): each backend's Run implements them in its own API.

    def stop(self) -> None:
        """End the run as Argo's `spec.shutdown: Stop` does: no new step starts, the running one gets SIGTERM and
        a grace period (the training harness writes its last.pt), exit handlers still run; the run ends Failed,
        "Stopped with strategy 'Stop'". ConflictError when it has already ended."""
        self._end("Stop")

    def terminate(self) -> None:
        """End the run now, as Argo's `spec.shutdown: Terminate` does (no exit handlers); like stop, every step
        ends in a final phase. ConflictError when it has already ended."""
        self._end("Terminate")

    def _end(self, strategy: str) -> None:
        status = self.status()
        if status.done:
            raise ConflictError(f"run {self.name} has already ended ({status.phase}); nothing to {strategy.lower()}")
        self._shutdown(strategy)

    def _shutdown(self, strategy: str) -> None:
        """Ask the backend to end the running run with Argo's shutdown `strategy` (Stop or Terminate)."""
        raise RunError(f"run {self.name}: this backend cannot {strategy.lower()} runs")

    def retry(self) -> None:
        """Run the failed steps again, keeping the succeeded ones (Argo's retry)."""
        raise RunError(f"run {self.name}: this backend cannot retry runs")

    def delete(self, outputs: bool = False, store=None) -> int:
        """Delete the run (and with `outputs` its output in `store`); how many store objects went."""
        raise RunError(f"run {self.name}: this backend cannot delete runs")

    def events(self) -> list[dict[str, Any]]:
        """The JSON events the training steps printed (DESIGN.md, Events), in order."""
        return list(ev.parse_lines(self.logs().splitlines()))

    def metrics(self) -> ev.Summary:
        """Latest progress, latest and best metrics, from the events."""
        return ev.summarize(self.events())

    def outputs(self) -> dict[str, str]:
        """URIs of the run's model/, checkpoints/, report/... (where /mnt/output was uploaded)."""
        prefix = self.output_prefix()
        return output_uris(prefix) if prefix else {}

    def wait(self, timeout: float | None = None, poll: float = 2.0,
             on_change: Callable[[RunStatus], None] | None = None, check: bool = True) -> RunStatus:
        """Block until the run ends and return its final status.

        Raises RunFailed (a RunError, with the final status as `.status`) when the run ends Failed or Error,
        unless `check=False`; RunError when `timeout` seconds pass first. `on_change` gets each new status.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            status = self.status()
            key = (status.phase, status.progress, tuple((s.name, s.phase) for s in status.steps))
            if on_change and key != last:
                on_change(status)
            last = key
            if status.done:
                if check and status.phase != "Succeeded":
                    raise RunFailed(status)
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise RunError(f"run {self.name}: still {status.phase} after {timeout:.0f} s; "
                               f"follow it with `cvatflow runs watch {self.name}`")
            time.sleep(poll)


