"""Run a WorkflowTemplate's DAG on this machine: parameters, artifacts, steps as subprocesses, Argo phases."""
from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cvatflow.argo import Phase, progress
from cvatflow.atomic import atomic_write
from cvatflow.errors import (
    ConflictError,
    CvatflowError,
    RunError,
    StepFailed,
)
from cvatflow.exit_status import shell_status
from cvatflow.local.expressions import evaluate_when, substitute, substitute_all
from cvatflow.runs.run import now

# Commands the executor can run here: this package's own entry points (what our images run).
ENTRY_POINTS = {
    "cvatflow": [sys.executable, "-m", "cvatflow.cli"],
    "cvatflow-train": [sys.executable, "-m", "cvatflow.training.cli"],
}
TASK_ARTIFACT = re.compile(r"^{{\s*tasks\.([^.]+)\.outputs\.artifacts\.([^}\s]+)\s*}}$")
FAILED = (Phase.FAILED, Phase.ERROR, Phase.OMITTED)
#: The file a stop or terminate request is written to (its text: the strategy, "Stop" or "Terminate").
SHUTDOWN_FILE = "shutdown"
SHUTDOWN_STRATEGIES = ("Stop", "Terminate")
#: Seconds a step has between SIGTERM and SIGKILL (a pod's terminationGracePeriodSeconds is 30 by default),
#: time for the training harness to write checkpoints/last.pt.
GRACE_SECONDS = float(os.environ.get("CVATFLOW_STOP_GRACE", "30"))


def stopped_message(strategy: str) -> str:
    """The message Argo writes on a Workflow ended by `spec.shutdown` (workflow/controller/operator.go)."""
    return f"Stopped with strategy '{strategy}'"


def write_json(path: Path, data: Any) -> None:
    """Write atomically, so a reader never sees half a status."""
    atomic_write(path, json.dumps(data, indent=2))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class LocalExecutor:
    """Executes runs whose folders live under `runs_dir`, against the object store at `store_uri`."""

    def __init__(self, runs_dir: Path, store_uri: str, repository=None,
                 on_log: Callable[[str, str], None] | None = None,
                 entry_points: dict[str, list[str]] | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        self.entry_points = {**ENTRY_POINTS, **(entry_points or {})}
        self.store_uri = store_uri
        self.repository = repository
        self.on_log = on_log
        self._store = None
        self._process: subprocess.Popen | None = None
        self._shutdown: str | None = None  # "Stop" or "Terminate" once asked

    @property
    def store(self):
        if self._store is None:
            from cvatflow.storage import open_store

            self._store = open_store(self.store_uri, self.repository)
        return self._store

    # -- creating and starting runs -------------------------------------------------------------

    def create(self, workflow_template: dict[str, Any], parameters: dict[str, str], name: str,
               labels: dict[str, str] | None = None, output_prefix: str | None = None,
               annotations: dict[str, str] | None = None) -> Path:
        """Lay out a run folder (workflow.json + status.json in phase Pending)."""
        run_dir = self.runs_dir / name
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise RunError(f"run {name!r} already exists in {self.runs_dir}; choose another name") from None
        (run_dir / "logs").mkdir()
        # status.json first: listings find runs by workflow.json, which must never lack a status.
        status = {"phase": Phase.PENDING, "nodes": {}, "startedAt": None, "finishedAt": None, "message": "",
                  "progress": ""}
        write_json(run_dir / "status.json", status)
        workflow = {
            "name": name,
            "uid": str(uuid.uuid4()),
            "template": workflow_template["metadata"]["name"],
            "createdAt": now(),
            "labels": labels or {},
            "annotations": annotations or {},
            "parameters": parameters,
            "storeUri": self.store_uri,
            "outputPrefix": output_prefix,
            "workflowTemplate": workflow_template,
        }
        write_json(run_dir / "workflow.json", workflow)
        self._save(run_dir, workflow, status)
        return run_dir

    def start(self, run_dir: Path) -> int:
        """Run it in a detached process (it outlives the CLI); returns the process id."""
        with open(run_dir / "executor.log", "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "cvatflow.local", str(run_dir)],
                                       stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, env=os.environ.copy())
        (run_dir / "pid").write_text(str(process.pid))
        return process.pid

    def request_shutdown(self, run_dir: Path, strategy: str) -> None:
        """Ask the run's executor to stop ("Stop") or terminate ("Terminate") it, as `spec.shutdown` asks Argo."""
        if strategy not in SHUTDOWN_STRATEGIES:
            raise RunError(f"shutdown strategy {strategy!r}: use one of {', '.join(SHUTDOWN_STRATEGIES)}")
        atomic_write(Path(run_dir) / SHUTDOWN_FILE, strategy)

    def reset_for_retry(self, run_dir: Path) -> dict[str, Any]:
        """Argo's retry: the failed, errored and omitted steps are reset (they run again), succeeded ones kept,
        the run's phase is Running again. RunError unless the run has ended without succeeding."""
        run_dir = Path(run_dir)
        workflow = read_json(run_dir / "workflow.json")
        status = read_json(run_dir / "status.json")
        if status.get("phase") not in (Phase.FAILED, Phase.ERROR):
            raise ConflictError(f"run {workflow['name']} is {status.get('phase')}; only a Failed or Error run can be "
                           f"retried (stop or terminate it first)")
        (run_dir / SHUTDOWN_FILE).unlink(missing_ok=True)
        status["nodes"] = {name: node for name, node in status.get("nodes", {}).items()
                           if node.get("phase") in (Phase.SUCCEEDED, Phase.SKIPPED)}
        status.update(phase=Phase.PENDING, message="", finishedAt=None)
        status.pop("pid", None)
        (run_dir / "pid").unlink(missing_ok=True)
        self._save(run_dir, workflow, status)
        return status

    # -- executing ------------------------------------------------------------------------------

    def execute(self, run_dir: Path) -> dict[str, Any]:
        """Run every task of the entrypoint DAG in dependency order; returns the final status.

        Steps that already succeeded (a retried run) are kept, not run again. A `shutdown` file in the run
        folder (see `request_shutdown`) ends the run the way Argo's `spec.shutdown` does.
        """
        run_dir = Path(run_dir)
        workflow = read_json(run_dir / "workflow.json")
        status = read_json(run_dir / "status.json")
        status.update(phase=Phase.RUNNING, startedAt=status.get("startedAt") or now(), pid=os.getpid())
        self._save(run_dir, workflow, status)
        self._shutdown = None
        done = threading.Event()
        watcher = threading.Thread(target=self._watch_shutdown, args=(run_dir, done), daemon=True)
        watcher.start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._stop)
        try:
            self._execute(run_dir, workflow, status)
        except CvatflowError as exc:
            status["phase"], status["message"] = Phase.ERROR, str(exc)
        except KeyboardInterrupt:
            self._shutdown = self._shutdown or "Terminate"
        finally:
            done.set()
        failed = [n for n, s in status["nodes"].items() if s["phase"] in (Phase.FAILED, Phase.ERROR)]
        for node in status["nodes"].values():  # every step ends in a final phase, as Argo's nodes do
            if node["phase"] in (Phase.RUNNING, Phase.PENDING):
                node.update(phase=Phase.FAILED, message=stopped_message(self._shutdown or "Terminate"),
                            finishedAt=now())
        if self._shutdown:
            status["phase"], status["message"] = Phase.FAILED, stopped_message(self._shutdown)
        elif status["phase"] == Phase.RUNNING:
            status["phase"] = Phase.FAILED if failed else Phase.SUCCEEDED
            if failed:
                first = status["nodes"][failed[0]]
                status["message"] = f"step {failed[0]} failed: {first.get('message', '')}".strip()
        status["finishedAt"] = now()
        self._save(run_dir, workflow, status)
        return status

    def _save(self, run_dir: Path, workflow: dict[str, Any], status: dict[str, Any]) -> None:
        """Write status.json, then the runs index (a listing reads the index, not every folder)."""
        if status.get("nodes") or status.get("phase") != Phase.PENDING:
            # As Argo counts it (steps ended / steps started), at every write, so the numbers mean the same
            # while the run goes and at its end; a skipped task is neither.
            status["progress"] = progress(node.get("phase") for node in (status.get("nodes") or {}).values())
        write_json(run_dir / "status.json", status)
        from cvatflow.runs.index import RunIndex

        RunIndex(run_dir.parent).update(workflow, status)

    def _watch_shutdown(self, run_dir: Path, done: threading.Event) -> None:
        """Poll for a stop or terminate request; signal the running step's process group, then kill it
        after the grace period (a pod deleted by Argo gets SIGTERM, then SIGKILL)."""
        request = run_dir / SHUTDOWN_FILE
        while not done.wait(0.2):
            if not request.exists():
                continue
            text = request.read_text().strip()
            self._shutdown = text if text in SHUTDOWN_STRATEGIES else "Terminate"
            process = self._process
            if process is None or process.poll() is not None:
                continue  # between steps: the loop will not start the next one
            _signal_group(process, signal.SIGTERM)
            deadline = time.monotonic() + GRACE_SECONDS
            while process.poll() is None and time.monotonic() < deadline and not done.is_set():
                time.sleep(0.1)
            if process.poll() is None:
                _signal_group(process, signal.SIGKILL)

    def _stop(self, signum, frame) -> None:
        if self._process and self._process.poll() is None:
            _signal_group(self._process, signal.SIGTERM)
        raise KeyboardInterrupt

    def _execute(self, run_dir: Path, workflow: dict[str, Any], status: dict[str, Any]) -> None:
        spec = workflow["workflowTemplate"]["spec"]
        templates = {t["name"]: t for t in spec.get("templates") or []}
        defaults = {p["name"]: p.get("value", "") for p in (spec.get("arguments") or {}).get("parameters") or []}
        scope = {f"workflow.parameters.{k}": str(v) for k, v in {**defaults, **workflow["parameters"]}.items()}
        scope.update({"workflow.name": workflow["name"], "workflow.namespace": "local",
                      "workflow.uid": workflow["uid"], "workflow.creationTimestamp": workflow["createdAt"],
                      "workflow.serviceAccountName": "default"})
        for claim in spec.get("volumeClaimTemplates") or []:
            (run_dir / "volumes" / claim["metadata"]["name"]).mkdir(parents=True, exist_ok=True)
        entry = templates.get(spec.get("entrypoint"))
        if entry is None:
            raise RunError(f"entrypoint {spec.get('entrypoint')!r} is not a template of this workflow")
        tasks = entry["dag"]["tasks"] if "dag" in entry else [{"name": entry["name"], "template": entry["name"]}]
        ordered = _topological(tasks)
        outputs: dict[str, dict[str, Path]] = {}
        for task in ordered:
            name = task["name"]
            node = status["nodes"].get(name)
            if node is not None and node.get("phase") in (Phase.SUCCEEDED, Phase.SKIPPED):
                # A retried run keeps what succeeded, as Argo's retry does; its outputs are where they were.
                outputs[name] = {k: Path(v) for k, v in (node.get("localOutputs") or {}).items()}
                continue
            if self._shutdown:
                break  # like Argo after spec.shutdown: no new step starts
            node = status["nodes"].setdefault(name, {"phase": Phase.PENDING, "template": task["template"]})
            deps = _dependencies(task)
            if any(status["nodes"].get(d, {}).get("phase") in FAILED for d in deps):
                node.update(phase=Phase.OMITTED, message="a task it depends on did not succeed")
            elif "when" in task and not evaluate_when(substitute(task["when"], scope, f"task {name} when")):
                node.update(phase=Phase.SKIPPED, message=f"when: {task['when']} was false")
            else:
                node.update(phase=Phase.RUNNING, startedAt=now(), message="")
                node.pop("finishedAt", None)
                self._save(run_dir, workflow, status)
                try:
                    outputs[name] = self._run_task(run_dir, workflow, templates, task, scope, outputs, node)
                    node["phase"] = Phase.SUCCEEDED
                    node["localOutputs"] = {k: str(v) for k, v in outputs[name].items()}
                except StepFailed as exc:
                    node.update(phase=Phase.FAILED,
                                message=stopped_message(self._shutdown) if self._shutdown else str(exc))
                except CvatflowError as exc:
                    node.update(phase=Phase.ERROR, message=str(exc))
                node["finishedAt"] = now()
            self._save(run_dir, workflow, status)

    def _run_task(self, run_dir: Path, workflow: dict[str, Any], templates: dict[str, Any], task: dict[str, Any],
                  scope: dict[str, str], outputs: dict[str, dict[str, Path]], node: dict[str, Any]) -> dict[str, Path]:
        name = task["name"]
        template = templates.get(task["template"])
        if template is None:
            raise RunError(f"task {name} calls template {task['template']!r}, which does not exist")
        if isinstance(template.get("resource"), dict):
            return self._run_resource(run_dir, template, task, scope, node)
        body = template.get("container") or template.get("script")
        if body is None:
            raise StepFailed(f"template {template['name']!r} is not a container or script; "
                             f"the local executor runs container steps only")
        step_dir = run_dir / "steps" / name
        root = step_dir / "fs"  # stands in for the container's filesystem
        root.mkdir(parents=True, exist_ok=True)
        mounts = {container_path(m["mountPath"]): run_dir / "volumes" / m["name"]
                  for m in body.get("volumeMounts") or []}

        def host(path: str) -> Path:
            path = container_path(path)
            for mount_path in sorted(mounts, key=len, reverse=True):
                if path == mount_path or path.startswith(mount_path.rstrip("/") + "/"):
                    return mounts[mount_path] / path[len(mount_path):].lstrip("/")
            return root / path.lstrip("/")

        local = dict(scope)
        arguments = task.get("arguments") or {}
        given = {p["name"]: substitute(str(p.get("value", "")), scope, f"task {name}")
                 for p in arguments.get("parameters") or []}
        for p in (template.get("inputs") or {}).get("parameters") or []:
            value = given.get(p["name"], p.get("value", p.get("default")))
            if value is None:
                raise RunError(f"task {name}: input parameter {p['name']!r} has no value")
            local[f"inputs.parameters.{p['name']}"] = str(value)
        sources = {a["name"]: a for a in arguments.get("artifacts") or []}
        for artifact in (template.get("inputs") or {}).get("artifacts") or []:
            target = host(artifact["path"])
            local[f"inputs.artifacts.{artifact['name']}.path"] = artifact["path"]
            self._materialise(artifact, sources.get(artifact["name"]), target, local, outputs, name)

        command = substitute_all(list(body.get("command") or []), local, f"task {name}")
        args = substitute_all(list(body.get("args") or []), local, f"task {name}")
        if "source" in body:
            raise StepFailed(f"task {name}: script templates run their source inside image {body.get('image')!r}; "
                             f"the local executor cannot; run this template on a cluster (--kube)")
        argv = self._argv(command, args, body.get("image", ""), name)
        prefixes = sorted({*mounts, *(a["path"] for a in _artifacts(template)), "/mnt"}, key=len, reverse=True)
        argv = [_rewrite_paths(a, prefixes, host) for a in argv]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CVATFLOW_RUN": scope["workflow.name"]}
        for item in body.get("env") or []:
            if "value" in item:
                env[item["name"]] = _rewrite_paths(substitute(str(item["value"]), local, f"task {name}"),
                                                   prefixes, host)
        workdir = host(body["workingDir"]) if body.get("workingDir") else step_dir
        workdir.mkdir(parents=True, exist_ok=True)
        self._spawn(argv, env, workdir, run_dir / "logs" / f"{name}.log", template, name, node)

        produced: dict[str, Path] = {}
        for artifact in (template.get("outputs") or {}).get("artifacts") or []:
            path = host(artifact["path"])
            if not path.exists():
                if artifact.get("optional"):
                    continue
                raise StepFailed(f"output artifact {artifact['name']!r}: {artifact['path']} was not created")
            produced[artifact["name"]] = path
            key = _location_key(artifact)
            if key is not None:
                key = substitute(key, local, f"task {name}").strip("/")
                uploader = self.store.upload_dir if path.is_dir() else self.store.put_file
                uploader(path, key)
                node.setdefault("outputs", {})[artifact["name"]] = self.store.uri_for(key)
        return produced

    def _materialise(self, artifact: dict[str, Any], source: dict[str, Any] | None, target: Path,
                     scope: dict[str, str], outputs: dict[str, dict[str, Path]], task: str) -> None:
        """Put an input artifact where the step expects it (the store, another task's output, raw data)."""
        what = f"task {task}: input artifact {artifact['name']!r}"
        if source and "from" in source:
            match = TASK_ARTIFACT.match(source["from"])
            if not match or match.group(2) not in outputs.get(match.group(1), {}):
                raise RunError(f"{what}: {source['from']} is not an output of an earlier task")
            _copy(outputs[match.group(1)][match.group(2)], target)
            return
        if "raw" in artifact:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(substitute(artifact["raw"].get("data", ""), scope, what))
            return
        key = _location_key(artifact)
        if key is not None:
            key = substitute(key, scope, what).strip("/")
            if key and self.store.exists(key):
                self.store.download_prefix(key, target)
                return
            if artifact.get("optional"):
                return
            raise StepFailed(f"{what}: nothing at {self.store.uri_for(key)}; check the path parameter")
        if artifact.get("optional"):
            return
        kinds = [k for k in ("git", "http", "artifactory", "hdfs", "oss", "azure") if k in artifact]
        raise StepFailed(f"{what}: {'/'.join(kinds) or 'this'} artifacts are not fetched by the local executor; "
                         f"run this template on a cluster (--kube)")

    def _run_resource(self, run_dir: Path, template: dict[str, Any], task: dict[str, Any], scope: dict[str, str],
                      node: dict[str, Any]) -> dict[str, Path]:
        """A resource step that creates a JobSet (multi-node training) runs its pods' work here: the init containers
        in order, then the main container's torchrun as one standalone torchrun with nodes x processes workers on
        this machine (gloo on the CPU), so the template that runs on a cluster runs end to end on a laptop."""
        from cvatflow.templates.jobset import API_VERSION, local_pod

        name = task["name"]
        resource = template["resource"]
        manifest = substitute(str(resource.get("manifest") or ""), scope, f"task {name}")
        try:
            doc = yaml.safe_load(manifest)
        except yaml.YAMLError as exc:
            raise StepFailed(f"task {name}: the resource manifest is not valid YAML after substitution: "
                             f"{str(exc).splitlines()[0]}") from None
        kind = f"{(doc or {}).get('apiVersion')}/{(doc or {}).get('kind')}" if isinstance(doc, dict) else "?"
        if kind != f"{API_VERSION}/JobSet" or resource.get("action") != "create":
            raise StepFailed(f"task {name}: the local executor runs resource steps that create a {API_VERSION} "
                             f"JobSet only, not {resource.get('action')!r} of {kind}; run this template on a "
                             f"cluster (--kube)")
        step_dir = run_dir / "steps" / name
        root = step_dir / "fs"  # the pods' emptyDirs, shared here since every rank runs on this machine
        root.mkdir(parents=True, exist_ok=True)

        def host(path: str) -> Path:
            return root / container_path(path).lstrip("/")

        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CVATFLOW_RUN": scope["workflow.name"],
               # The pods read the store from a Secret (envFrom); here it is the executor's own store.
               "CVATFLOW_STORE": self.store_uri}
        for container in local_pod(doc):
            argv = self._argv(list(container.get("command") or []), list(container.get("args") or []),
                              container.get("image", ""), name)
            argv = [_rewrite_paths(a, ["/mnt"], host) for a in argv]
            extra = {e["name"]: _rewrite_paths(str(e["value"]), ["/mnt"], host) for e in container.get("env") or []
                     if "value" in e and not e["name"].startswith("PET_")}  # torchrun's multi-node flags stay out
            self._spawn(argv, {**env, **extra}, step_dir, run_dir / "logs" / f"{name}.log", template, name, node)
        return {}

    def _argv(self, command: list[str], args: list[str], image: str, task: str) -> list[str]:
        words = command + args
        launcher = 2 if words[:2] == ["cvatflow-train", "torchrun"] else 1 if words[:1] == ["torchrun"] else 0
        if launcher and "--no-python" in words:
            # torchrun runs the program itself (--no-python): this machine's Python runs the launcher (torch's,
            # with a killed worker's exit status: cvatflow.training.launch) and the program's entry point.
            cut = words.index("--no-python") + 1
            return ([sys.executable, "-m", "cvatflow.training.launch", *words[launcher:cut]]
                    + self._argv(words[cut:], [], image, task))
        if words[:3] == ["cvatflow", "store", "sync"] and "--" in words:
            cut = words.index("--")
            return self.entry_points["cvatflow"] + words[1:cut + 1] + self._argv(words[cut + 1:], [], image, task)
        if words and words[0] in self.entry_points:
            return self.entry_points[words[0]] + words[1:]
        if words[:2] == ["python", "-m"] and len(words) > 2 and words[2].startswith("cvatflow"):
            return [sys.executable] + words[1:]
        raise StepFailed(f"task {task}: image {image!r} runs {' '.join(words[:3]) or 'its default command'!r}, "
                         f"which is not a cvatflow entry point; this step needs its container image, so run the "
                         f"template on a cluster (--kube or --argo-server)")

    def _spawn(self, argv: list[str], env: dict[str, str], workdir: Path, log_path: Path,
               template: dict[str, Any], task: str, node: dict[str, Any]) -> None:
        retries = _retry_limit(template, task)
        for attempt in range(retries + 1):
            with open(log_path, "a", buffering=1) as log:
                self._process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                                 cwd=workdir, env=env, start_new_session=True)
                for line in self._process.stdout:
                    log.write(line)
                    if self.on_log:
                        self.on_log(task, line)
                code = shell_status(self._process.wait())  # as a container's status says it: 137, not -9
            node["exitCode"] = code
            if code == 0:
                return
            # Like the templates' retry expression: only a killed pod (preemption) is retried.
            if code in (137, 143) and attempt < retries and not self._shutdown:
                node["retries"] = attempt + 1
                time.sleep(0.5)
                continue
            tail = log_path.read_text().strip().splitlines()[-1:] or [""]
            raise StepFailed(f"exit code {code}: {tail[0][:300]} (full log: {log_path})")


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    """Signal the step and every process it started (torchrun's workers): it leads its own session."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _artifacts(template: dict[str, Any]):
    for side in ("inputs", "outputs"):
        yield from (template.get(side) or {}).get("artifacts") or []


def _location_key(artifact: dict[str, Any]) -> str | None:
    for kind in ("s3", "gcs", "azure", "oss"):
        if isinstance(artifact.get(kind), dict) and "key" in artifact[kind]:
            return str(artifact[kind]["key"])
    return None


def container_path(path: str) -> str:
    """A path inside the container, absolute and without `..`: in a container /.. is /, so a template's path
    never leads out of the folder that stands in for the container's filesystem (or a volume's)."""
    return posixpath.normpath("/" + path.lstrip("/"))  # one leading slash: normpath keeps no "//" then


def _rewrite_paths(text: str, prefixes: list[str], host: Callable[[str], Path]) -> str:
    """Point container paths in an argument at their folders on this machine: the whole path, so that a `..` in
    it climbs inside the container's stand-in folder only (a trailing / is kept)."""
    for prefix in prefixes:
        pattern = re.compile(r"(?<![\w/.-])" + re.escape(prefix.rstrip("/")) + r"(?:/[^\s'\",;:=]*)?(?=$|[\s'\",;:=])")
        text = pattern.sub(lambda m: str(host(m.group(0))) + ("/" if m.group(0).endswith("/") else ""), text)
    return text


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)


def _dependencies(task: dict[str, Any]) -> set[str]:
    deps = set(task.get("dependencies") or [])
    if isinstance(task.get("depends"), str):
        deps |= {w.split(".")[0] for w in re.findall(r"[A-Za-z0-9][-A-Za-z0-9.]*", task["depends"])}
    return deps


def _topological(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {t["name"]: t for t in tasks}
    ordered, seen = [], set()

    def visit(task: dict[str, Any], path: tuple[str, ...]) -> None:
        if task["name"] in seen:
            return
        if task["name"] in path:
            raise RunError(f"tasks depend on each other in a cycle: {' -> '.join(path + (task['name'],))}")
        for dep in sorted(_dependencies(task)):
            if dep in by_name:
                visit(by_name[dep], path + (task["name"],))
        seen.add(task["name"])
        ordered.append(task)

    for task in tasks:
        visit(task, ())
    return ordered


def _retry_limit(template: dict[str, Any], task: str) -> int:
    """retryStrategy.limit as a count (Argo's IntOrString; null or empty = no retry); StepFailed when it is text
    that is no whole number, e.g. an expression this executor cannot evaluate."""
    limit = (template.get("retryStrategy") or {}).get("limit")
    if limit is None or str(limit).strip() == "":
        return 0
    try:
        return max(0, int(str(limit).strip()))
    except ValueError:
        raise StepFailed(f"task {task}: retryStrategy.limit {str(limit)[:80]!r} is not a whole number; the local "
                         f"executor needs a number there (or a parameter that gives one)") from None
