"""A Workflow's state as TrainingRun status: phase, steps, times, latest metrics from its events, outputs."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cvatflow import events as ev
from cvatflow.argo import Phase, pod_name, status_from_workflow
from cvatflow.controller import resource as r
from cvatflow.runs.run import output_uris

STARTED = (Phase.RUNNING, Phase.SUCCEEDED, Phase.FAILED, Phase.ERROR)


def workflow_status(workflow: dict[str, Any]) -> dict[str, Any]:
    """The Workflow's phase, progress, times, message and steps, in TrainingRun status fields."""
    run = status_from_workflow(workflow)
    # Argo leaves the phase empty until its controller picks the Workflow up.
    phase = run.phase if (workflow.get("status") or {}).get("phase") else r.SUBMITTED
    out: dict[str, Any] = {"phase": phase, "progress": run.progress or None, "startedAt": run.started_at,
                           "finishedAt": run.finished_at,
                           "steps": [_present({"name": s.name, "phase": s.phase, "startedAt": s.started_at,
                                               "finishedAt": s.finished_at, "message": s.message or None})
                                     for s in run.steps]}
    if run.message:
        out["message"] = run.message
    return out


def outputs(prefix: str) -> dict[str, str]:
    """URIs of the run's output folder and of model/, checkpoints/, report/... inside it."""
    return output_uris(prefix)


def metrics(summary: ev.Summary) -> dict[str, Any]:
    """The latest metrics of a run from its events; `mAP` is the best validation mAP so far."""
    out = {"epoch": summary.epoch, "step": summary.step, "totalSteps": summary.total_steps,
           "progress": round(summary.progress, 4) if summary.progress is not None else None,
           "mAP": summary.best_map, "train": summary.train or None, "val": summary.val or None,
           "checkpoints": len(summary.checkpoints) or None}
    return _present(out)


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def step_pods(workflow: dict[str, Any]) -> list[tuple[str, str]]:
    """(pod name, phase) of every started pod of the Workflow, in start order (retries included)."""
    name = (workflow.get("metadata") or {}).get("name", "")
    nodes = (workflow.get("status") or {}).get("nodes") or {}
    pods = [(node.get("startedAt") or "~", pod_name(name, node_id, node), node.get("phase", ""))
            for node_id, node in nodes.items() if node.get("type") == "Pod" and node.get("phase") in STARTED]
    return [(pod, phase) for _, pod, phase in sorted(pods)]


def read_events(workflow: dict[str, Any], read_log: Callable[[str, str], str | None],
                cache: dict[str, list] | None = None) -> list[dict[str, Any]] | None:
    """The events the Workflow's pods printed, or None when no log could be read (pods gone)."""
    namespace = (workflow.get("metadata") or {}).get("namespace", "")
    found, events = False, []
    for pod, phase in step_pods(workflow):
        key = f"{namespace}/{pod}"
        if cache is not None and key in cache:
            found = True
            events += cache[key]
            continue
        text = read_log(namespace, pod)
        if text is None:
            continue
        found = True
        parsed = list(ev.parse_lines(text.splitlines()))
        if cache is not None and phase != Phase.RUNNING:  # a finished pod's log is final
            cache[key] = parsed
        events += parsed
    return events if found else None


def forget(workflow: dict[str, Any], cache: dict[str, list]) -> None:
    """Drop a finished Workflow's cached logs: its metrics are in the run's status now."""
    namespace = (workflow.get("metadata") or {}).get("namespace", "")
    for pod, _ in step_pods(workflow):
        cache.pop(f"{namespace}/{pod}", None)


def follow(workflow: dict[str, Any], run_status: dict[str, Any], deps) -> dict[str, Any]:
    """The run's status fields from its Workflow now: state, latest metrics from the pods' events, conditions."""
    out = workflow_status(workflow)
    cache = deps.log_cache
    found = read_events(workflow, deps.cluster.pod_log, cache)
    if found is not None:
        summary = metrics(ev.summarize(found))
        if summary:
            out["metrics"] = summary
    if out["phase"] in r.DONE:
        forget(workflow, cache)
        if run_status.get("phase") not in r.DONE:
            out["conditions"] = r.set_condition(run_status.get("conditions"), "Completed", True, out["phase"],
                                                out.get("message") or f"Workflow {out['phase'].lower()}")
    return out


def transition(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, str, str] | None:
    """(event type, reason, message) when the phase changed, for a Kubernetes Event on the run."""
    old, new = before.get("phase"), after.get("phase")
    if not new or new == old:
        return None
    kind = "Warning" if new in (r.FAILED, r.ERROR, r.INVALID) else "Normal"
    detail = after.get("message") or ""
    return kind, new, f"{old or 'New'} -> {new}" + (f": {detail}" if detail else "")
