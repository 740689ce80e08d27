"""The kopf handlers: thin glue from kopf's causes to plain functions; tests call them directly."""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import kopf

from cvatflow import argo, config
from cvatflow.controller import resource as r
from cvatflow.controller.deps import Deps
from cvatflow.controller.mirror import follow, transition
from cvatflow.controller.submit import Retry, submit

RUN = (r.GROUP, r.VERSION, r.PLURAL)
WORKFLOWS = (argo.GROUP, argo.VERSION, argo.WORKFLOWS)
# How often a running run's metrics are re-read from its pod logs (the Workflow does not change meanwhile).
METRICS_INTERVAL = config.metrics_interval()


@kopf.on.login()
def login(**kwargs: Any):
    """$CVATFLOW_KUBE_URL (tests, local development), else in-cluster or the kubeconfig."""
    if url := config.load_settings().kube_url:
        return kopf.ConnectionInfo(server=url, insecure=True)
    return kopf.login_via_client(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf's bookkeeping in annotations (status belongs to the run), fewer Events, and the collaborators."""
    settings.persistence.finalizer = r.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=r.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=r.GROUP, key="last-handled-configuration")
    # Events carry the run's transitions (posted explicitly) and warnings, not every log line.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    if memo.get("deps") is None:
        memo["deps"] = Deps.from_environment()


def deps_of(memo: Any) -> Deps:
    return memo["deps"]


@kopf.on.resume(*RUN)
@kopf.on.create(*RUN)
def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """Make sure the run's one Workflow exists (dumping the task first if needed), or say why not."""
    status = body.get("status") or {}
    generation = body.get("metadata", {}).get("generation")
    if status.get("workflowName"):
        return  # submitted before (a retry, a resume): the Workflow's events keep the status current
    if status.get("phase") == r.INVALID and status.get("observedGeneration") == generation:
        return  # judged already; a spec change re-judges it
    try:
        result = submit(_plain(body), deps_of(memo))
    except Retry as exc:
        patch.status.update(exc.status)
        deps_of(memo).post_event(body, "Warning", "Retrying", str(exc))
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from None
    patch.status.update(result)
    announce(deps_of(memo), body, status, result)


@kopf.on.update(*RUN, field="spec")
def spec_changed(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, diff: Any = None,
                 **_: Any) -> None:
    """A submitted run is immutable: a spec change is refused with a condition, never silently re-run."""
    status = body.get("status") or {}
    if diff is not None and all(_is_shutdown(path) for _, path, _, _ in diff):
        return  # spec.shutdown is the one field that may change: `shutdown_changed` passes it to the Workflow
    if not status.get("workflowName"):
        reconcile(body=body, patch=patch, memo=memo, logger=logger)  # not submitted (Invalid): judge the new spec
        return
    message = (f"spec changed after Workflow {status['workflowName']} was submitted; the run keeps its original "
               f"spec. Create a new TrainingRun to train with the new one.")
    patch.status["conditions"] = r.set_condition(status.get("conditions"), "SpecChangeRefused", True,
                                                 "RunIsImmutable", message, body.get("metadata", {}).get("generation"))
    deps_of(memo).post_event(body, "Warning", "SpecChangeRefused", message)


def _is_shutdown(path: Any) -> bool:
    path = tuple(path or ())
    return path[:1] == ("shutdown",) or path[:2] == ("spec", "shutdown")


@kopf.on.field(*RUN, field="spec.shutdown")
def shutdown_changed(body: kopf.Body, new: Any, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """spec.shutdown (Stop or Terminate) goes to the Workflow's spec.shutdown, which Argo acts on."""
    name = (body.get("status") or {}).get("workflowName")
    if name and new in ("Stop", "Terminate") and \
            deps_of(memo).cluster.shutdown_workflow(body["metadata"]["namespace"], name, new):
        logger.info("Workflow %s: shutdown %s", name, new)
        deps_of(memo).post_event(body, "Normal", "Shutdown", f"Workflow {name}: spec.shutdown set to {new}")


@kopf.on.delete(*RUN)
def delete_workflow(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """Terminate the run's Workflow (Argo ends its pods at once), then delete it now (the ownerReference would
    let the garbage collector do it too)."""
    name = (body.get("status") or {}).get("workflowName")
    if not name:
        return
    cluster = deps_of(memo).cluster
    namespace = body["metadata"]["namespace"]
    if cluster.shutdown_workflow(namespace, name, "Terminate") and cluster.delete_workflow(namespace, name):
        logger.info("terminated and deleted Workflow %s", name)


@kopf.timer(*RUN, interval=METRICS_INTERVAL, idle=METRICS_INTERVAL,
            when=lambda status, **_: status.get("phase") == r.RUNNING)
def refresh_metrics(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """While training runs, its pod logs grow without the Workflow changing: re-read them now and then."""
    status = body.get("status") or {}
    deps = deps_of(memo)
    workflow = deps.cluster.workflow(body["metadata"]["namespace"], status.get("workflowName", ""))
    if workflow is not None:
        patch.status.update(follow(workflow, dict(status), deps))


@kopf.on.event(*WORKFLOWS, labels={r.RUN_LABEL: kopf.PRESENT})
def mirror(event: dict[str, Any], body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """Copy a Workflow's state into its TrainingRun's status whenever the Workflow changes."""
    workflow = _plain(body)
    owner = r.owner_body(workflow)
    if owner is None:
        return  # labelled by hand, not created by this operator
    namespace, run_name = owner["metadata"]["namespace"], owner["metadata"]["name"]
    deps = deps_of(memo)
    if event.get("type") == "DELETED":
        workflow_deleted(deps, owner)
        return
    # Argo rewrites the Workflow often with the same status (labels, annotations): skip those.
    fingerprint = hashlib.sha1(json.dumps(workflow.get("status") or {}, sort_keys=True).encode()).hexdigest()
    if memo.get("fingerprint") == fingerprint:
        return
    run = deps.cluster.run(namespace, run_name)
    if run is None or run["metadata"].get("uid") != owner["metadata"]["uid"]:
        return  # the run is gone; the garbage collector takes the Workflow
    before = run.get("status") or {}
    after = follow(workflow, before, deps)
    if deps.cluster.patch_run_status(namespace, run_name, after):
        memo["fingerprint"] = fingerprint
        announce(deps, owner, before, after)


def workflow_deleted(deps: Deps, owner: dict[str, Any]) -> None:
    """A Workflow deleted under a run that has not finished: the run ends in Error, saying so."""
    namespace, name = owner["metadata"]["namespace"], owner["metadata"]["name"]
    run = deps.cluster.run(namespace, name)
    if run is None or run["metadata"].get("deletionTimestamp") or run["metadata"].get("uid") != owner["metadata"]["uid"]:
        return
    before = run.get("status") or {}
    if before.get("phase") in r.DONE:
        return
    after = {"phase": r.ERROR, "message": f"Workflow {before.get('workflowName', name)} was deleted before it "
                                          f"finished; create a new TrainingRun to train again"}
    if deps.cluster.patch_run_status(namespace, name, after):
        announce(deps, owner, before, after)


def announce(deps: Deps, run: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
    """A Kubernetes Event on the run for a phase transition."""
    change = transition(before, after)
    if change is not None:
        kind, reason, message = change
        deps.post_event(run, kind, reason, message[:1000])


def _plain(body: Any) -> dict[str, Any]:
    # kopf's Body is a read-only live view; the plain functions want an ordinary JSON-like dict.
    return json.loads(json.dumps(dict(body), default=dict))
