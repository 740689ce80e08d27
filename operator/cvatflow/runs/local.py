"""Runs on this machine: the local executor behind a backend, with runs kept under CVATFLOW_HOME."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

from cvatflow.argo import TEMPLATE_LABEL, Phase, run_name
from cvatflow.errors import NotFoundError
from cvatflow.local.executor import LocalExecutor, read_json
from cvatflow.params import Filled
from cvatflow.runs.backend import Backend
from cvatflow.runs.run import DONE, Run, RunStatus, StepStatus
from cvatflow.templates.render import render
from cvatflow.templates.template import Template

# Parsed events per run folder, keyed by the sizes and times of its logs; the 64 most recent runs are kept.
_EVENTS: OrderedDict[Path, tuple[tuple, list[dict]]] = OrderedDict()
_EVENTS_LOCK = threading.Lock()


class LocalRun(Run):
    """A run folder: workflow.json (what was asked), status.json (where it stands), logs/."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        if not (self.dir / "workflow.json").exists():
            raise NotFoundError(f"no local run {self.dir.name!r} in {self.dir.parent}; "
                                f"list runs with `cvatflow runs list`")
        self.workflow = read_json(self.dir / "workflow.json")
        super().__init__(self.workflow["name"], self.workflow["template"])

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
        return LocalRun(self.runs_dir / name)

    def runs(self, labels: dict[str, str] | None = None) -> list[LocalRun]:
        if not self.runs_dir.exists():
            return []
        runs = [LocalRun(d) for d in self.runs_dir.iterdir() if (d / "workflow.json").exists()]
        runs = [r for r in runs if all(r.workflow.get("labels", {}).get(k) == v for k, v in (labels or {}).items())]
        return sorted(runs, key=lambda r: r.workflow.get("createdAt", ""), reverse=True)
