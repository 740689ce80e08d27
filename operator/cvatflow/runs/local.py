"""Runs on this machine: the local executor behind a backend, with runs kept under CVATFLOW_HOME."""
from __future__ import annotations

import os
import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path

from cvatflow.argo import TEMPLATE_LABEL, Phase, run_name
from cvatflow.errors import ConflictError, NotFoundError
from cvatflow.local.executor import GRACE_SECONDS, LocalExecutor, read_json
from cvatflow.params import Filled
from cvatflow.runs.backend import Backend
from cvatflow.runs.index import RunIndex
from cvatflow.runs.run import DONE, Run, RunStatus, StepStatus
from cvatflow.templates.render import render
from cvatflow.templates.template import Template

# Parsed events per run folder, keyed by the sizes and times of its logs; the 64 most recent runs are kept.
_EVENTS: OrderedDict[Path, tuple[tuple, list[dict]]] = OrderedDict()
_EVENTS_LOCK = threading.Lock()


class LocalRun(Run):
    """A run folder: workflow.json (what was asked), status.json (where it stands), logs/."""

    def __init__(self, run_dir: Path, executor: LocalExecutor | None = None) -> None:
        self.dir = Path(run_dir)
        if not (self.dir / "workflow.json").exists():
            raise NotFoundError(f"no local run {self.dir.name!r} in {self.dir.parent}; "
                                f"list runs with `cvatflow runs list`")
        self.workflow = read_json(self.dir / "workflow.json")
        super().__init__(self.workflow["name"], self.workflow["template"])
        self.executor = executor or LocalExecutor(self.dir.parent, self.workflow.get("storeUri", ""))

    # -- lifecycle: Argo's stop, terminate, retry and delete, on this machine --------------------------

    def _shutdown(self, strategy: str) -> None:
        self.executor.request_shutdown(self.dir, strategy)

    def retry(self, detach: bool = True) -> None:
        """Argo's retry: run the failed, errored and omitted steps again, keep the succeeded ones. A train step
        ended by terminate resumes from its checkpoints/last.pt. RunError unless the run ended unsucceeded."""
        status = self.status()
        if not status.done:
            raise ConflictError(f"run {self.name} is still {status.phase}; stop or terminate it before a retry")
        self.executor.reset_for_retry(self.dir)
        if detach:
            self.executor.start(self.dir)
        else:
            self.executor.execute(self.dir)

    def delete(self, outputs: bool = False, store=None) -> int:
        """Remove the run folder (terminating the run first if it is still going); with `outputs`, also its
        output in the store (`store`: the run's store unless given). Returns how many store objects went."""
        if not self.status().done:
            self.terminate()
            deadline = time.monotonic() + GRACE_SECONDS + 10
            while not self.status().done and time.monotonic() < deadline:
                time.sleep(0.2)
        removed = 0
        prefix = self.output_prefix()
        if outputs and prefix:
            from cvatflow.storage.keys import key_in_store

            store = store or self.executor.store
            key = key_in_store(prefix, self.workflow.get("storeUri", ""))
            if key:  # never the store's root, never outside it
                removed = store.delete_prefix(key.rstrip("/"))
        # Renamed first, so a listing never sees half a folder.
        trash = self.dir.parent / f".deleting-{self.name}-{os.getpid()}"
        os.replace(self.dir, trash)
        RunIndex(self.dir.parent).remove(self.name)
        shutil.rmtree(trash, ignore_errors=True)
        return removed

    def status(self) -> RunStatus:
        status = read_json(self.dir / "status.json")
        phase = Phase.of(status.get("phase"))
        message = status.get("message", "")
        if phase not in DONE and not self._alive(status):
            phase, message = Phase.ERROR, f"the executor process stopped; see {self.dir / 'executor.log'}"
        steps = [StepStatus(name=name, phase=Phase.of(node.get("phase")), started_at=node.get("startedAt"),
                            finished_at=node.get("finishedAt"), message=node.get("message", ""),
                            template=node.get("template", ""))
                 for name, node in status.get("nodes", {}).items()]
        return RunStatus(name=self.name, template=self.template, phase=phase, progress=status.get("progress", ""),
                         started_at=status.get("startedAt") or self.workflow.get("createdAt"),
                         finished_at=status.get("finishedAt"), message=message, steps=steps,
                         labels=self.workflow.get("labels", {}), parameters=self.workflow.get("parameters", {}),
                         annotations=self.workflow.get("annotations", {}))

    def _alive(self, status: dict) -> bool:
        pid = status.get("pid")
        if pid is None and (self.dir / "pid").exists():
            pid = int((self.dir / "pid").read_text())
        if pid is None:
            return True  # created, not started yet
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # A finished child that nobody reaped is a zombie: gone as far as the run is concerned.
        stat = Path(f"/proc/{pid}/stat")
        return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))

    def logs(self, step: str | None = None) -> str:
        folder = self.dir / "logs"
        if step and (Path(step).name != step or step == ".." or "\0" in step):
            # A step is a file name in logs/; "../x" would read any *.log on the machine (the API passes it on).
            raise NotFoundError(f"run {self.name} has no step {step!r}; see its steps with `cvatflow runs get`")
        names = [step] if step else [n for n in read_json(self.dir / "status.json").get("nodes", {})]
        return "".join((folder / f"{n}.log").read_text() for n in names if (folder / f"{n}.log").exists())

    def log_files(self) -> list[Path]:
        return sorted((self.dir / "logs").glob("*.log"))

    def events(self) -> list[dict]:
        """The run's events, parsed again only when a log has grown (watchers ask every second)."""
        key = tuple((p.name, st.st_size, st.st_mtime_ns) for p in self.log_files() for st in [p.stat()])
        with _EVENTS_LOCK:
            cached = _EVENTS.get(self.dir)
        if cached is None or cached[0] != key:
            cached = (key, super().events())
            with _EVENTS_LOCK:
                _EVENTS[self.dir] = cached
                _EVENTS.move_to_end(self.dir)
                while len(_EVENTS) > 64:
                    _EVENTS.popitem(last=False)
        return list(cached[1])

    def output_prefix(self) -> str | None:
        status = read_json(self.dir / "status.json")
        for node in status.get("nodes", {}).values():
            for uri in (node.get("outputs") or {}).values():
                return uri
        return self.workflow.get("outputPrefix")


class LocalBackend(Backend):
    """Templates from the catalog (and <home>/templates/*.yaml); runs executed by the local executor."""

    def __init__(self, home: Path, store_uri: str, repository=None) -> None:
        self.home = Path(home)
        self.runs_dir = self.home / "runs"
        self.store_uri = store_uri
        self.executor = LocalExecutor(self.runs_dir, store_uri, repository)

    def templates(self, labels: dict[str, str] | None = None) -> list[Template]:
        from cvatflow.templates.catalog import builtin_templates
        from cvatflow.templates.manifest import load_file

        found = dict(builtin_templates())
        for path in sorted((self.home / "templates").glob("*.yaml")):
            template = load_file(path)
            found[template.name] = template
        return [t for t in found.values() if t.matches(labels)]

    def get_template(self, name: str) -> Template:
        for template in self.templates():
            if template.name == name:
                return template
        from cvatflow.templates.catalog import get_template

        return get_template(name)  # a file path, or a NotFoundError listing the names

    def submit(self, filled: Filled, name: str | None = None, output_prefix: str | None = None,
               detach: bool = True) -> LocalRun:
        name = name or run_name(filled.template.name)
        labels = {**filled.labels, TEMPLATE_LABEL: filled.template.name}  # as Argo labels its Workflows
        run_dir = self.executor.create(render(filled.template), dict(filled.values), name, labels, output_prefix,
                                       annotations=filled.annotations)
        if detach:
            self.executor.start(run_dir)
        else:
            self.executor.execute(run_dir)
        return LocalRun(run_dir)

    def run(self, name: str) -> LocalRun:
        if not name or "/" in name or name.startswith("."):
            raise NotFoundError(f"no local run {name!r}; list runs with `cvatflow runs list`")
        return LocalRun(self.runs_dir / name, self.executor)

    def runs(self, labels: dict[str, str] | None = None) -> list[LocalRun]:
        """Runs carrying every label, newest first (the index picks them; each handle reads its folder)."""
        return [LocalRun(self.runs_dir / row["name"], self.executor) for row in self._rows(labels)]

    def _rows(self, labels: dict[str, str] | None) -> list[dict]:
        rows = RunIndex(self.runs_dir).rows() if self.runs_dir.exists() else []
        return [r for r in rows if all(r["labels"].get(k) == v for k, v in (labels or {}).items())]

    def statuses(self, labels: dict[str, str] | None = None) -> list[RunStatus]:
        """The runs' statuses from the index, newest first, without their steps: what a listing shows.
        A run the index says is still going is read from its folder (its executor may have died)."""
        found = []
        for row in self._rows(labels):
            if Phase.of(row["phase"]) not in DONE:
                try:
                    found.append(LocalRun(self.runs_dir / row["name"], self.executor).status())
                except (OSError, ValueError, NotFoundError):
                    pass  # deleted or being laid out meanwhile
                continue
            found.append(RunStatus(name=row["name"], template=row["template"], phase=Phase.of(row["phase"]),
                                   progress=row["progress"], started_at=row["started_at"] or row["created_at"],
                                   finished_at=row["finished_at"], message=row["message"], labels=row["labels"]))
        return found

    def resubmit(self, run: Run, name: str | None = None) -> LocalRun:
        """A new run of the same workflow with the same parameters and labels (Argo's resubmit), started now;
        its output lands next to the old run's, under its own name."""
        old = self.run(run.name)
        workflow = old.workflow
        name = name or run_name(workflow["template"])
        prefix = workflow.get("outputPrefix")
        if prefix and prefix.rstrip("/").endswith("/" + old.name):
            prefix = prefix.rstrip("/")[: -len(old.name)] + name + ("/" if prefix.endswith("/") else "")
        run_dir = self.executor.create(workflow["workflowTemplate"], dict(workflow["parameters"]), name,
                                       dict(workflow.get("labels") or {}), prefix,
                                       annotations=dict(workflow.get("annotations") or {}))
        self.executor.start(run_dir)
        return LocalRun(run_dir, self.executor)

    def prune(self, older_than_seconds: float, outputs: bool = False, dry_run: bool = False) -> list[str]:
        """Delete the finished runs that ended more than `older_than_seconds` ago (their store outputs only with
        `outputs`); returns their names. Runs still going are never pruned."""
        cutoff = time.time() - older_than_seconds
        pruned = []
        for status in self.statuses():
            if not status.done or not status.finished_at:
                continue
            if _epoch(status.finished_at) >= cutoff:
                continue
            if not dry_run:
                self.run(status.name).delete(outputs=outputs)
            pruned.append(status.name)
        return pruned


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()
