"""kmock (an in-memory Kubernetes API) shaped like a cvatflow installation, for tests and benchmarks."""
from __future__ import annotations

import base64
from typing import Any

RUNS = "cvatflow.io/v1alpha1/trainingruns"
WORKFLOWS = "argoproj.io/v1alpha1/workflows"
WORKFLOW_TEMPLATES = "argoproj.io/v1alpha1/workflowtemplates"


def declare(kmock: Any, namespace: str, templates: list[dict[str, Any]] = (),
            secrets: dict[str, dict[str, str]] | None = None) -> None:
    """Our CRD, Argo's CRDs, Secrets and Events, plus what kopf discovers before it watches anything."""
    info = kmock.ResourceInfo
    crud = {"list", "watch", "get", "patch", "create", "delete"}
    kmock.resources[RUNS] = info(kind="TrainingRun", namespaced=True, verbs=crud, subresources={"status"})
    kmock.resources[WORKFLOWS] = info(kind="Workflow", namespaced=True, verbs=crud)
    kmock.resources[WORKFLOW_TEMPLATES] = info(kind="WorkflowTemplate", namespaced=True, verbs=crud)
    kmock.resources["v1/secrets"] = info(kind="Secret", namespaced=True, verbs={"get"})
    kmock.resources["v1/events"] = info(kind="Event", namespaced=True, verbs={"create"})
    kmock.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = info(
        kind="CustomResourceDefinition", namespaced=False, verbs={"list", "watch", "get"})
    kmock.resources["v1/namespaces"] = info(kind="Namespace", namespaced=False, verbs={"list", "watch"})
    for template in templates:
        name = template["metadata"]["name"]
        kmock.objects[WORKFLOW_TEMPLATES, namespace, name] = {
            **template, "metadata": {**template["metadata"], "namespace": namespace}}
    for name, data in (secrets or {}).items():
        kmock.objects["v1/secrets", namespace, name] = {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def add_run(kmock: Any, run: dict[str, Any]) -> None:
    """A TrainingRun as `kubectl apply` leaves it; kmock assigns no resourceVersion, which kopf's patches test."""
    run["metadata"].setdefault("resourceVersion", "1")
    kmock.objects[RUNS, run["metadata"]["namespace"], run["metadata"]["name"]] = run


def versioned_emulator() -> type:
    """kmock's emulator, plus what kopf relies on from a real API server: a new resourceVersion on every
    write (kopf waits up to 5 s to see its own patch echoed otherwise), 422 for a failed JSON-patch
    test (kopf retries that on its next cycle; kmock 0.8 answers 500), and a name for an object created with
    only `generateName` (kopf's Events: kmock 0.8 stores them all under no name and refuses all but the first
    with 409). A create of a name that exists is refused with 409, as kmock and the API server do.

    `keep_requests=N` forgets all but the last N recorded requests: kmock 0.8 matches every request by
    scanning all earlier ones, which makes thousands of requests quadratic (benchmarks need this; tests
    that assert on requests keep them all).
    """
    import attrs
    import jsonpatch
    from kmock import KubernetesEmulator, KubernetesError, action

    @attrs.define(kw_only=True)
    class VersionedEmulator(KubernetesEmulator):
        keep_requests: int | None = None
        _version: int = attrs.field(default=0, init=False)
        _generated: int = attrs.field(default=0, init=False)

        async def _handle(self, request):
            if request.resource is not None and request.action == action.CREATE and isinstance(request.data, dict):
                metadata = request.data.setdefault("metadata", {})
                if not metadata.get("name") and metadata.get("generateName"):
                    self._generated += 1
                    metadata["name"] = f"{metadata['generateName']}{self._generated:05d}"
            if self.keep_requests and len(self._requests) > 2 * self.keep_requests:
                del self._requests[:-self.keep_requests]
            if request.resource is not None and request.action in (action.CREATE, action.UPDATE):
                self._version += 1
                version = str(self._version)
                if isinstance(request.data, dict):
                    request.data.setdefault("metadata", {})["resourceVersion"] = version
                elif isinstance(request.data, list):  # JSON patch: after kopf's own test of the old version
                    request.data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})
            try:
                return await super()._handle(request)
            except jsonpatch.JsonPatchTestFailed as exc:
                raise KubernetesError(status=422, reason="Invalid", message=str(exc)) from None

    return VersionedEmulator


def stored_events(kmock: Any, namespace: str) -> list[dict[str, Any]]:
    """The Events the API server stored in `namespace`, oldest first (what `kubectl get events` lists)."""
    return [dict(obj) for key, obj in kmock.objects.items()
            if (key[0].group, key[0].version, key[0].plural) == ("", "v1", "events") and key[1] == namespace
            and not obj.deleted]
